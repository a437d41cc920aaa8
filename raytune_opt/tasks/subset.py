"""Seeded, class-stratified training subsets: the ``data_fraction`` fidelity knob.

For a fraction f of N samples the subset has n = max(C, round(f·N)) samples (C = number of
classes present). Each class c with N_c samples gets a quota n·N_c/N, rounded by largest
remainder so the quotas add up to n and every class keeps at least one sample; its members
are the first quota entries of a permutation of that class drawn from ``seed``. Because the
permutation depends only on ``seed``, a smaller fraction's subset is (up to rounding) contained
in a larger one's — successive fidelities see more of the same data, as in Fabolas.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = ["stratified_subset", "check_fraction", "holdout"]


def check_fraction(fraction: object, field: str = "data_fraction") -> float:
    """``fraction`` as a float in (0, 1]; a ``ConfigError`` otherwise."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ConfigTypeError.invalid(field, fraction, "a number in (0, 1]")
    if not (0.0 < float(fraction) <= 1.0) or math.isnan(fraction):
        raise ConfigError.invalid(field, fraction, "a number in (0, 1]")
    return float(fraction)


def _largest_remainder(total: int, weights: Tensor) -> Tensor:
    """Integer quotas ≥ 1 proportional to ``weights`` that add up to ``total`` (≥ len(weights))."""
    k = len(weights)
    exact = (total - k) * weights / weights.sum()
    quota = exact.floor().long()
    short = total - k - int(quota.sum())
    if short > 0:
        order = torch.argsort(exact - quota, descending=True, stable=True)
        quota[order[:short]] += 1
    return quota + 1


def stratified_subset(y: Tensor, fraction: float, seed: int = 0, stratify: bool = True) -> Tensor:
    """Sorted indices of a seeded subset of ``len(y)·fraction`` samples, class-balanced as ``y`` is.

    ``stratify=False`` (regression targets) draws a plain seeded random subset instead.
    ``fraction == 1`` returns every index.
    """
    fraction = check_fraction(fraction)
    n_all = len(y)
    if fraction == 1.0:
        return torch.arange(n_all)
    g = torch.Generator().manual_seed(int(seed))
    if not stratify:
        n = max(1, round(fraction * n_all))
        return torch.randperm(n_all, generator=g)[:n].sort().values
    classes, counts = torch.unique(y, return_counts=True)
    n = max(len(classes), round(fraction * n_all))
    quota = _largest_remainder(n, counts.double())
    picked = []
    for c, q in zip(classes.tolist(), quota.tolist(), strict=False):
        members = torch.nonzero(y == c, as_tuple=True)[0]
        picked.append(members[torch.randperm(len(members), generator=g)[:q]])
    return torch.cat(picked).sort().values


def holdout(y: Tensor, fraction: float, seed: int = 0, stratify: bool = True) -> tuple[Tensor, Tensor]:
    """``(kept, held)``: sorted indices of a seeded, class-stratified split of ``len(y)`` samples, the
    held part ``len(y)·fraction`` of them (:func:`stratified_subset`), the kept part the rest. How a
    task carves its validation set from a training set when the data set ships only train / test."""
    held = stratified_subset(y, fraction, seed=seed, stratify=stratify)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held
