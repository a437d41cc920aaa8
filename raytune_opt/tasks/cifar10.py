"""CIFAR-10 from a local copy in torchvision's on-disk format (no download).

``data_dir`` is the folder that holds ``cifar-10-batches-py/`` (what ``torchvision.datasets.CIFAR10(root)``
takes) or that folder itself. It contains the pickles ``data_batch_1`` … ``data_batch_5`` and
``test_batch``, each a dict with ``data`` (uint8, N × 3072, channel-major 3×32×32 rows) and
``labels`` (N ints). They are Python pickles: only point ``data_dir`` at files you trust.

Task: ``cifar10-resnet`` — a small ResNet (:class:`~raytune_opt.tasks.models.ResNet`) on uint8 images it
normalises itself, with the standard augmentation (4-pixel padded random crop, horizontal flip).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from raytune_opt.errors import ConfigError
from raytune_opt.tasks.models import ResNet
from raytune_opt.tasks.registry import TaskSpec, register_task
from raytune_opt.tasks.subset import holdout

__all__ = ["FOLDER", "TRAIN_FILES", "TEST_FILES", "load_cifar10", "random_crop_flip", "write_cifar10"]

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
#: the share of the training images held out as the validation set
VAL_FRACTION = 0.1


def _folder(data_dir: str | Path) -> Path:
    root = Path(data_dir).expanduser()
    for candidate in (root / FOLDER, root):
        if all((candidate / f).is_file() for f in TRAIN_FILES + TEST_FILES):
            return candidate
    raise ConfigError.invalid(
        "task_args.data_dir",
        str(data_dir),
        f"a folder holding {FOLDER}/ with {', '.join(TRAIN_FILES + TEST_FILES)} "
        "(torchvision's CIFAR-10 layout)",
    )


def _read(files: list[Path]) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for f in files:
        with open(f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise ConfigError(f"{f}: expected 'data' of shape (N, 3072) and N 'labels', got {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


@functools.lru_cache(maxsize=2)
def _load(folder: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    root = Path(folder)
    x, y = _read([root / f for f in TRAIN_FILES])
    xt, yt = _read([root / f for f in TEST_FILES])
    return x, y, xt, yt


def load_cifar10(data_dir: str | Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x, y, x_test, y_test)``: uint8 images ``(N, 3, 32, 32)`` and int64 labels."""
    return _load(str(_folder(data_dir).resolve()))


def write_cifar10(root: str | Path, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> Path:
    """Write uint8 images ``(N, 3, 32, 32)`` and labels as ``root/cifar-10-batches-py`` in the
    format :func:`load_cifar10` reads (the training set split over the five batch files), e.g.
    to turn another image set into a task or to make a small fixture. Returns the folder."""
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    parts = list(
        zip(TRAIN_FILES, torch.tensor_split(torch.arange(len(train[1])), len(TRAIN_FILES)), strict=True)
    )
    parts.append((TEST_FILES[0], torch.arange(len(test[1]))))
    for name, idx in parts:
        x, y = train if name != TEST_FILES[0] else test
        entry = {
            "batch_label": name,
            "labels": [int(v) for v in y[idx]],
            "data": x[idx].reshape(len(idx), -1).numpy().astype(np.uint8),
            "filenames": [f"{name}_{i}.png" for i in range(len(idx))],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
    return folder


def random_crop_flip(x: Tensor, padding: int = 4) -> Tensor:
    """Per image: zero-pad by ``padding``, crop a random H×W window, flip left-right with probability ½."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dev = x.device
    top = torch.randint(0, 2 * padding + 1, (n, 1), device=dev) + torch.arange(h, device=dev)
    left = torch.randint(0, 2 * padding + 1, (n, 1), device=dev) + torch.arange(w, device=dev)
    flip = torch.rand(n, device=dev) < 0.5
    left = torch.where(flip[:, None], left.flip(1), left)
    idx_n = torch.arange(n, device=dev)[:, None, None, None]
    idx_c = torch.arange(c, device=dev)[None, :, None, None]
    return padded[idx_n, idx_c, top[:, None, :, None], left[:, None, None, :]]


@register_task("cifar10-resnet", _builtin=True)
def cifar10_resnet(data_dir: str = "", blocks: int = 1, width: int = 16, augment: bool = True) -> TaskSpec:
    """CIFAR-10 (local torchvision-format copy in ``data_dir``) with a ResNet-(6·blocks+2).

    Train / val / test: ``test_batch`` is the test set, held out from every trial; the validation set
    is :data:`VAL_FRACTION` of the training batches (5000 of 50 000), class-stratified, seed 0."""
    x, y, xt, yt = load_cifar10(data_dir)
    kept, held = holdout(y, VAL_FRACTION, seed=0)
    return TaskSpec(
        train=(x[kept], y[kept]),
        val=(x[held], y[held]),
        test=(xt, yt),
        model=ResNet(10, blocks, width),
        loss=F.cross_entropy,
        num_classes=10,
        augment=random_crop_flip if augment else None,
    )
