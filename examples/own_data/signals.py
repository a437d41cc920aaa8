"""The user's own code: a Dataset that reads signal files from disk, a model, and the task that joins
them (what an experiment's ``imports: [signals.py]`` registers).

``SignalFolder`` is a plain map-style ``torch.utils.data.Dataset``: it keeps only the file list and
labels in memory and loads one ``.npy`` per item (in the DataLoader's worker processes when
``train.data.num_workers`` > 0). Its ``targets`` attribute lets ``data_fraction`` (Fabolas) draw
class-stratified subsets of indices.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from raytune_opt.tasks import TaskSpec, register_task

#: the example's data folder (``python examples/own_data/write_data.py`` writes it)
DEFAULT_ROOT = Path(__file__).resolve().parent / "data"


class SignalFolder(Dataset):
    """``<root>/<split>/*.npy`` with ``labels.csv``: items ``(signal [1, 128] float32, label)``."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.folder = Path(root) / split
        with open(self.folder / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        self.files = [row["file"] for row in rows]
        self.targets = torch.tensor([int(row["label"]) for row in rows])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.load(self.folder / self.files[i]))
        return x.unsqueeze(0), self.targets[i]


class SignalNet(nn.Module):
    """The user's own model: two 1-D convolutions, global max pooling, a linear classifier."""

    def __init__(self, channels: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 7, padding=3),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(channels, channels, 5, padding=2),
            nn.ReLU(),
            nn.AdaptiveMaxPool1d(1),
        )
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@register_task("own-signals", overwrite=True)
def own_signals(root: str = "", channels: int = 16) -> TaskSpec:
    """Signal files on disk (examples/own_data) with a small 1-D CNN."""
    root = root or str(DEFAULT_ROOT)
    return TaskSpec(
        train=SignalFolder(root, "train"),
        val=SignalFolder(root, "val"),
        test=SignalFolder(root, "test"),
        model=SignalNet(channels),
        loss=nn.functional.cross_entropy,
        num_classes=3,
    )
