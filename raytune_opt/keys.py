"""Optimizer-aware keys: ``"<optimizer>.<hparam>"``, the one parser of the convention.

A search over several optimizers (``SearchSpace.for_optimizers``) names each optimizer's own
hyperparameters ``"lion.lr"``, ``"adamw.weight_decay"``: every trial's config carries all of them
(Tune samples a conditional space flat), and only the chosen optimizer's apply. Shared keys (the
loop's ``batch_size``, ``epochs`` ...) have no dot.

    >>> split("lion.lr")
    ('lion', 'lr')
    >>> split("batch_size") is None
    True
    >>> active({"optimizer": "lion", "lion.lr": 3e-4, "adamw.lr": 1e-3, "epochs": 9})
    {'optimizer': 'lion', 'epochs': 9, 'lr': 0.0003}

Every module that reads or writes such keys (train's config, the search space, the live status line,
the report, the benchmarks) goes through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SEP", "key", "split", "owner", "active", "clashes"]

#: the separator between an optimizer's name and its hyperparameter
SEP = "."


def key(optimizer: str, hparam: str) -> str:
    """``key("lion", "lr") == "lion.lr"``: the optimizer-aware name of ``optimizer``'s ``hparam``."""
    return f"{optimizer}{SEP}{hparam}"


def split(name: Any) -> tuple[str, str] | None:
    """``("lion", "lr")`` for ``"lion.lr"``; ``None`` for a shared key (no dot, or not a string)."""
    if not isinstance(name, str) or SEP not in name:
        return None
    optimizer, _, hparam = name.partition(SEP)
    return optimizer, hparam


def owner(name: Any) -> str | None:
    """The optimizer an optimizer-aware key belongs to (``"lion"`` for ``"lion.lr"``), else ``None``."""
    parts = split(name)
    return parts[0] if parts else None


def active(config: Mapping[str, Any], optimizer: str | None = None) -> dict[str, Any]:
    """The shared keys plus ``optimizer``'s own keys made flat (``"lion.lr"`` → ``"lr"``); other
    optimizers' keys (inactive branches of the space) are dropped. ``optimizer`` defaults to
    ``config["optimizer"]``. A flat key that is also given optimizer-aware keeps the flat value
    (callers that must refuse the ambiguity check :func:`clashes`)."""
    name = config.get("optimizer") if optimizer is None else optimizer
    out = {k: v for k, v in config.items() if split(k) is None}
    for k, v in config.items():
        parts = split(k)
        if parts is not None and parts[0] == name:
            out.setdefault(parts[1], v)
    return out


def clashes(config: Mapping[str, Any], optimizer: str) -> list[str]:
    """Optimizer-aware keys of ``optimizer`` whose flat name is also in ``config`` (ambiguous)."""
    return [k for k in config if (p := split(k)) is not None and p[0] == optimizer and p[1] in config]
