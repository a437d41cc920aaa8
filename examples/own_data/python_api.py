"""Your data on disk and your own model, tuned from Python: the experiment of ``signals.yaml`` as a dict.

``imports`` loads ``signals.py`` (the Dataset, the model and the task ``own-signals``) exactly as
the YAML does; the rest is the Python API (``raytune_opt.Experiment``).

    python examples/own_data/write_data.py
    python examples/own_data/python_api.py [--samples 8] [--epochs 9] [--root DIR] [--dry-run]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from raytune_opt import Experiment

HERE = Path(__file__).resolve().parent


def experiment(root: str = "", samples: int = 8, epochs: int = 9, storage: str = "results") -> Experiment:
    """The experiment: ASHA over AdamW and Lion on the signal files under ``root``."""
    spec: dict[str, Any] = {
        "name": "own-signals-api",
        "imports": [str(HERE / "signals.py")],
        "task": {"name": "own-signals", "args": {"root": root, "channels": 16}},
        "train": {
            "epochs": epochs,
            "batch_size": 64,
            "checkpoint_every": 0,
            "data": {"num_workers": 1, "persistent_workers": True},
        },
        "search": {
            "strategy": "asha",
            "optimizers": ["adamw", "lion"],
            "num_samples": samples,
            "metric": "val_accuracy",
            "mode": "max",
            "seed": 0,
        },
        "run": {"storage_path": storage, "max_failures": 1},
    }
    return Experiment.from_dict(spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="", help="the data folder (default: examples/own_data/data)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--storage", default="results")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    exp = experiment(args.root, args.samples, args.epochs, args.storage)
    print(exp.plan())
    if not args.dry_run:
        result = exp.run()
        print(f"best {result.summary.get('metric')}: {result.summary.get('best_metric')}")


if __name__ == "__main__":
    main()
