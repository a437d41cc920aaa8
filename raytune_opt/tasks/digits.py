"""scikit-learn's bundled 8×8 digits (1797 images): train / val / test, class-stratified, fixed seeds.

The test set is 20 % of the images (359, seed 0), held out from every trial; the validation set is
20 % of the rest (288, seed 1); 1150 train. Pixels (0–16) are scaled to [0, 1]. Task: ``digits-mlp``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from raytune_opt.tasks.models import MLP
from raytune_opt.tasks.registry import TaskSpec, register_task
from raytune_opt.tasks.subset import holdout

__all__ = ["load_digits"]


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[torch.Tensor, ...]:
    """``(x, y, x_val, y_val, x_test, y_test)``: 1150 / 288 / 359 digits as float32 in [0, 1]."""
    data = _digits_table()
    x = torch.from_numpy(data[:, :-1]).float() / 16.0
    y = torch.from_numpy(data[:, -1].astype(np.int64))
    rest, test = holdout(y, 0.2, seed=0)
    train, val = holdout(y[rest], 0.2, seed=1)
    train, val = rest[train], rest[val]
    return x[train], y[train], x[val], y[val], x[test], y[test]


def _digits_table() -> np.ndarray:
    """The 1797 × 65 table scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixels, then
    the label), read as ``sklearn.datasets.load_digits`` reads it but without importing
    ``sklearn.datasets`` (seconds in every fresh trial worker)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits tasks need scikit-learn: pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        return np.loadtxt(f, delimiter=",")


@register_task("digits-mlp", _builtin=True)
def digits_mlp(hidden: int = 128) -> TaskSpec:
    """scikit-learn digits with a 64-hidden-10 ReLU MLP."""
    x, y, xv, yv, xt, yt = load_digits()
    return TaskSpec(
        train=(x, y),
        val=(xv, yv),
        test=(xt, yt),
        model=MLP(64, 10, (hidden,)),
        loss=F.cross_entropy,
        num_classes=10,
    )
