"""Learning-rate schedules as multipliers of the base learning rate, stepped once per optimizer step.

With t the optimizer step (0-based), T the total steps of the run (``epochs`` × steps per epoch),
E = steps per epoch and lr₀ the configured ``lr``, the learning rate is lr_t = lr₀ · f(t):

- ``constant``:      f(t) = 1
- ``step``:          f(t) = γ^⌊t / (E · step_epochs)⌋                                 (γ = ``step_gamma``)
- ``cosine``:        f(t) = ½ (1 + cos(π t / T))
- ``warmup_cosine``: f(t) = (t + 1) / W for t < W, then ½ (1 + cos(π (t − W) / (T − W)))
  (W = E · ``warmup_epochs``)
- ``onecycle``:      Smith & Topin (2019) as in ``torch.optim.lr_scheduler.OneCycleLR`` (cosine
  annealing, learning rate only): from lr₀/25 up to lr₀ over the first ``pct_start``·T steps,
  then down to lr₀/(25·10⁴): f = a + (b − a) · ½ (1 − cos(π τ)) with τ the phase's progress.

:func:`make_scheduler` wraps f in a ``torch.optim.lr_scheduler.LambdaLR``, so its state is
``last_epoch`` (= t) and ``base_lrs``; the loop re-derives ``base_lrs`` from the config when it
restores a checkpoint, so a mutated ``lr`` (PBT) takes effect.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["SCHEDULES", "factor", "make_scheduler"]

SCHEDULES = ("constant", "step", "cosine", "warmup_cosine", "onecycle")

_ONECYCLE_DIV = 25.0
_ONECYCLE_FINAL_DIV = 1e4


def _cos_ramp(a: float, b: float, tau: float) -> float:
    """a → b along a half cosine as τ goes 0 → 1."""
    return a + (b - a) * 0.5 * (1.0 - math.cos(math.pi * min(max(tau, 0.0), 1.0)))


def factor(
    t: int,
    kind: str,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float = 1.0,
    step_epochs: int = 10,
    step_gamma: float = 0.1,
    pct_start: float = 0.3,
) -> float:
    """The multiplier f(t) of the module docstring."""
    T = max(total_steps, 1)
    if kind == "constant":
        return 1.0
    if kind == "step":
        return step_gamma ** (t // (steps_per_epoch * step_epochs))
    if kind == "cosine":
        return _cos_ramp(1.0, 0.0, t / T)
    if kind == "warmup_cosine":
        W = max(int(round(warmup_epochs * steps_per_epoch)), 0)
        if t < W:
            return (t + 1) / W
        return _cos_ramp(1.0, 0.0, (t - W) / max(T - W, 1))
    if kind == "onecycle":
        up = max(pct_start * T - 1, 1.0)
        lo = 1.0 / _ONECYCLE_DIV
        if t <= up:
            return _cos_ramp(lo, 1.0, t / up)
        return _cos_ramp(1.0, lo / _ONECYCLE_FINAL_DIV, (t - up) / max(T - 1 - up, 1.0))
    raise ValueError(f"unknown schedule {kind!r}")


def make_scheduler(
    optimizer: torch.optim.Optimizer, kind: str, total_steps: int, steps_per_epoch: int, **kwargs: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying ``factor(t, kind, ...)`` to every parameter group's base lr."""
    f = functools.partial(
        factor, kind=kind, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **kwargs
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)
