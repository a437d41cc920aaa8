"""Write the example's data set on disk: small signal files, one ``.npy`` each, and their labels.

Three classes of 1-D signals of 128 samples — a sine, a square and a sawtooth wave of random
frequency and phase, plus noise — as ``<root>/<split>/<index>.npy`` (float32) with
``<root>/<split>/labels.csv`` (``file,label``), for the splits train / val / test. What a user's
own data often looks like: a folder of files and a label list, read one file per sample.

    python examples/own_data/write_data.py           # 2400 / 600 / 600 files in examples/own_data/data
    python examples/own_data/write_data.py --root /tmp/signals --train 300
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

#: where signals.py's task looks when its ``root`` is "" (not imported from there: importing signals.py
#: registers its task from a module the Ray workers cannot import; ``imports:`` loads it by value)
DEFAULT_ROOT = Path(__file__).resolve().parent / "data"

LENGTH = 128
CLASSES = ("sine", "square", "sawtooth")


def signal(kind: int, rng: np.random.Generator) -> np.ndarray:
    """One noisy signal of class ``kind`` (an index into :data:`CLASSES`)."""
    t = np.arange(LENGTH) / LENGTH
    phase = 2 * np.pi * (rng.uniform(1.5, 4.0) * t + rng.uniform())
    wave = (np.sin(phase), np.sign(np.sin(phase)), (phase / np.pi) % 2 - 1)[kind]
    return (wave + rng.normal(scale=0.6, size=LENGTH)).astype(np.float32)


def write_signals(
    root: str | Path = DEFAULT_ROOT, train: int = 2400, val: int = 600, test: int = 600, seed: int = 0
) -> Path:
    """Write the three splits under ``root`` (balanced classes); returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val), ("test", test)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        labels = rng.permutation(np.arange(n) % len(CLASSES))
        with open(folder / "labels.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["file", "label"])
            for i, label in enumerate(labels):
                np.save(folder / f"{i:06d}.npy", signal(int(label), rng))
                out.writerow([f"{i:06d}.npy", int(label)])
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(DEFAULT_ROOT))
    parser.add_argument("--train", type=int, default=2400)
    parser.add_argument("--val", type=int, default=600)
    parser.add_argument("--test", type=int, default=600)
    args = parser.parse_args()
    print(f"wrote {write_signals(args.root, args.train, args.val, args.test)}")


if __name__ == "__main__":
    main()
