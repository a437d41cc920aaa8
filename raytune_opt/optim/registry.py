"""The optimizer registry: ``create(name, params_or_module, **hparams)`` and ``available()``.

The signature is the spec: each optimizer class's constructor holds its hyperparameters' defaults,
as ``torch.optim.Adam.__init__(params, lr=1e-3, betas=(0.9, 0.999), …)`` does. Each optimizer module
registers its class with one entry per constructor parameter, saying only how it is searched —
:class:`Range` (a numeric range), :class:`Choices` (categorical values) or :class:`Fixed` (not searched)
— and the registry reads the defaults with ``inspect.signature``. ``register`` refuses a class whose
parameters and entries differ, so no parameter can be missing from the search space's view and no
default is written twice. The search package builds its optimizer-aware spaces from ``available()``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = [
    "Choices",
    "Fixed",
    "HParam",
    "NONNEGATIVE",
    "OptimizerSpec",
    "Range",
    "UNIT",
    "available",
    "create",
    "param_groups",
    "register",
    "signature_defaults",
    "spec",
]


@dataclass(frozen=True)
class HParam:
    """One hyperparameter as registered: its default (the constructor's) and the range worth searching.

    ``low``/``high`` bound the recommended search range (``log`` for log-uniform);
    ``choices`` replaces them for categorical values; both ``None`` means "not searched".
    ``bounds`` are the hard bounds of a numeric one: how far a search range may ever be widened
    (``raytune_opt.report.edges.widen`` clamps to them; the constructor's own check still decides
    whether a bound itself is allowed, e.g. a momentum's 1 is not).
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    bounds: tuple[float, float] | None = None

    @property
    def searched(self) -> bool:
        return self.choices is not None or self.low is not None


#: the hard bounds of a numeric hyperparameter unless its Range says otherwise: a rate or coefficient >= 0
NONNEGATIVE = (0.0, math.inf)
#: the hard bounds of a momentum or decay rate (the constructors refuse 1 unless the rate allows it)
UNIT = (0.0, 1.0)


@dataclass(frozen=True)
class Range:
    """A numeric constructor parameter searched over [``low``, ``high``] (log-uniform with ``log``),
    within the hard ``bounds`` no widened range may cross (default ``[0, inf)``; a momentum's
    ``(0, 1)``)."""

    name: str
    low: float
    high: float
    log: bool = False
    doc: str = ""
    bounds: tuple[float, float] = NONNEGATIVE

    def __post_init__(self) -> None:
        lo, hi = self.bounds
        if not lo <= self.low < self.high <= hi:
            raise TypeError(
                f"Range({self.name!r}): [{self.low}, {self.high}] is not inside bounds {self.bounds}"
            )

    def hparam(self, default: Any) -> HParam:
        return HParam(self.name, default, self.low, self.high, self.log, None, self.doc, self.bounds)


@dataclass(frozen=True)
class Choices:
    """A constructor parameter searched over the categorical ``values``."""

    name: str
    values: tuple[Any, ...]
    doc: str = ""

    def hparam(self, default: Any) -> HParam:
        return HParam(self.name, default, choices=tuple(self.values), doc=self.doc)


@dataclass(frozen=True)
class Fixed:
    """A constructor parameter that is not searched (it stays at its default unless set)."""

    name: str
    doc: str = ""

    def hparam(self, default: Any) -> HParam:
        return HParam(self.name, default, doc=self.doc)


Entry = Range | Choices | Fixed


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


def signature_defaults(cls: type) -> dict[str, Any]:
    """Every constructor parameter of ``cls`` after ``params``, with its default, in signature order."""
    out = {}
    for i, p in enumerate(inspect.signature(cls.__init__).parameters.values()):
        if i < 2 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):  # self, params
            continue
        if p.default is p.empty:
            raise TypeError(f"{cls.__name__}.__init__: parameter {p.name!r} has no default")
        out[p.name] = p.default
    return out


def register(
    name: str, cls: type[torch.optim.Optimizer], kind: str, summary: str, hparams: Iterable[Entry]
) -> OptimizerSpec:
    """Register ``cls`` under ``name`` (called by each optimizer module at import).

    ``hparams`` has one entry per constructor parameter (after ``params``); the defaults come from the
    signature. A parameter without an entry, an entry without a parameter, or a default outside its
    ``Choices`` is a ``TypeError`` (a programming error, raised at import).
    """
    defaults = signature_defaults(cls)
    entries = {h.name: h for h in hparams}
    missing, extra = set(defaults) - set(entries), set(entries) - set(defaults)
    if missing or extra:
        raise TypeError(
            f"register({name!r}): {cls.__name__}'s parameters and registry entries differ: "
            f"not registered {sorted(missing)}, not parameters {sorted(extra)}"
        )
    out = {k: entries[k].hparam(v) for k, v in defaults.items()}
    for h in out.values():
        if h.choices is not None and h.default not in h.choices:
            raise TypeError(f"register({name!r}): default {h.name}={h.default!r} is not in {h.choices}")
    _REGISTRY[name] = s = OptimizerSpec(name, cls, kind, summary, out)
    return s


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
