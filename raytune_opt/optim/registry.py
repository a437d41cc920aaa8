"""The optimizer registry: ``create(name, params_or_module, **hparams)`` and ``available()``.

Each optimizer module registers its class with an :class:`OptimizerSpec` that lists its
hyperparameters, their defaults and a recommended search range (from the seed's practical
considerations). The search package builds its optimizer-aware spaces from ``available()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = ["HParam", "OptimizerSpec", "register", "available", "create", "param_groups"]


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its default and the range worth searching.

    ``low``/``high`` bound the recommended search range (``log`` for log-uniform);
    ``choices`` replaces them for categorical values; both ``None`` means "not searched".
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    doc: str = ""


@dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer: its class, kind (``first-order`` / ``second-order``) and hyperparameters."""

    name: str
    cls: type[torch.optim.Optimizer]
    kind: str
    summary: str
    hparams: dict[str, HParam] = field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hparams.values()}


_REGISTRY: dict[str, OptimizerSpec] = {}


def register(
    name: str, cls: type[torch.optim.Optimizer], kind: str, summary: str, hparams: Iterable[HParam]
) -> None:
    """Register ``cls`` under ``name`` (called by each optimizer module at import)."""
    _REGISTRY[name] = OptimizerSpec(name, cls, kind, summary, {h.name: h for h in hparams})


def available(kind: str | None = None) -> dict[str, OptimizerSpec]:
    """Every registered optimizer by name (optionally only one ``kind``), in registration order."""
    if kind is not None and kind not in {s.kind for s in _REGISTRY.values()}:
        raise ConfigError.unknown("kind", kind, {s.kind for s in _REGISTRY.values()})
    return {n: s for n, s in _REGISTRY.items() if kind is None or s.kind == kind}


def spec(name: str) -> OptimizerSpec:
    """The spec registered under ``name``; a ``ConfigError`` listing the names otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError.unknown("optimizer", name, _REGISTRY)
    return _REGISTRY[name]


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights (``ndim >= 2``) decayed by ``weight_decay``; biases and norms not.

    The seed's AdamW decays weights w only, never biases b; normalisation scales and shifts
    are treated like biases. Parameters with ``requires_grad=False`` are left out.
    """
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def create(name: str, params_or_module: Any, **hparams: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` over a module or an iterable of parameters.

    Given an ``nn.Module``, biases and normalisation parameters (``ndim < 2``) go in a group
    with ``weight_decay=0``. Unknown hyperparameters raise a ``ConfigError`` naming the allowed ones.
    """
    s = spec(name)
    for key in hparams:
        if key not in s.hparams:
            raise ConfigError.unknown(f"{name}.{key} (hyperparameter)", key, s.hparams)
    if isinstance(params_or_module, nn.Module):
        if "weight_decay" in s.hparams:
            wd = hparams.get("weight_decay", s.hparams["weight_decay"].default)
            params: Any = param_groups(params_or_module, wd)
        else:
            params = params_or_module.parameters()
    elif isinstance(params_or_module, (torch.Tensor, str, bytes)) or not isinstance(
        params_or_module, Iterable
    ):
        raise ConfigTypeError(
            f"{name}: params = {type(params_or_module).__name__} is not allowed: expected an nn.Module "
            "or an iterable of tensors / parameter-group dicts"
        )
    else:
        params = params_or_module
    return s.cls(params, **hparams)
