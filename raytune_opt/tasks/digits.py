"""scikit-learn's bundled 8×8 digits (1797 images), split 80/20 class-stratified with a fixed seed.

Pixels (0–16) are scaled to [0, 1]. Task: ``digits-mlp``.
"""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F

from raytune_opt.tasks.models import MLP
from raytune_opt.tasks.registry import TaskSpec, register_task
from raytune_opt.tasks.subset import stratified_subset

__all__ = ["load_digits"]


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, y, x_val, y_val)``: 1437 training and 360 validation digits as float32 in [0, 1]."""
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    x = torch.from_numpy(d.data).float() / 16.0
    y = torch.from_numpy(d.target).long()
    train = torch.zeros(len(y), dtype=torch.bool)
    train[stratified_subset(y, 0.8, seed=0)] = True
    return x[train], y[train], x[~train], y[~train]


@register_task("digits-mlp", _builtin=True)
def digits_mlp(hidden: int = 128) -> TaskSpec:
    """scikit-learn digits with a 64-hidden-10 ReLU MLP."""
    x, y, xv, yv = load_digits()
    return TaskSpec(
        train=(x, y), val=(xv, yv), model=MLP(64, 10, (hidden,)), loss=F.cross_entropy, num_classes=10
    )
