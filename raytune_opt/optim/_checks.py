"""Hyperparameter checks shared by the optimizers: each raises a ``ConfigError`` naming
the optimizer, the field, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import torch

from raytune_opt.errors import ConfigError


def _is_number(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.numel() == 1
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_nonneg(opt: str, field: str, value: Any) -> None:
    """``value`` is a finite number >= 0 (learning rates, weight decay, damping)."""
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) < 0:
        raise ConfigError.invalid(f"{opt}.{field}", value, "a finite number >= 0")


def check_positive(opt: str, field: str, value: Any) -> None:
    """``value`` is a finite number > 0 (eps, tolerances)."""
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ConfigError.invalid(f"{opt}.{field}", value, "a finite number > 0")


def check_unit(opt: str, field: str, value: Any, *, closed: bool = False) -> None:
    """``value`` lies in [0, 1) (or [0, 1] with ``closed``): momentum, decay rates."""
    ok = _is_number(value) and float(value) >= 0.0 and (float(value) <= 1.0 if closed else float(value) < 1.0)
    if not ok:
        allowed = "a number in [0, 1]" if closed else "a number in [0, 1)"
        raise ConfigError.invalid(f"{opt}.{field}", value, allowed)


def check_betas(opt: str, betas: Any) -> None:
    """``betas`` is a pair of numbers, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ConfigError.invalid(f"{opt}.betas", betas, "a pair (beta1, beta2), each in [0, 1)")
    for i, b in enumerate(betas):
        check_unit(opt, f"betas[{i}]", b)


def check_int(opt: str, field: str, value: Any, low: int = 1) -> None:
    """``value`` is an integer >= ``low`` (history sizes, iteration counts)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError.invalid(f"{opt}.{field}", value, f"an integer >= {low}")


def check_choice(opt: str, field: str, value: Any, choices: tuple[Any, ...]) -> None:
    """``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError.unknown(f"{opt}.{field}", value, [str(c) for c in choices])
