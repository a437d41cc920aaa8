"""Which hyperparameters an experiment searched, read back from the trials' configs.

A config column is *searched* when its values differ between trials. In the optimizer-aware
space (``optimizer`` plus ``<optimizer>.<hparam>`` keys, e.g. ``lion.lr``) a column
``<opt>.<hp>`` belongs to the trials whose ``optimizer`` is ``<opt>`` only, and is judged on them.
A numeric parameter is shown on a log axis when its positive values span more than two decades:
``max / min > 100``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from raytune_opt import keys
from raytune_opt.report.results import CONFIG_PREFIX

__all__ = ["Param", "searched_params", "is_log_range", "own_params", "OPTIMIZER"]

OPTIMIZER = f"{CONFIG_PREFIX}optimizer"


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: its column, display name, the optimizer it belongs to (or None),
    whether it is numeric and whether a log axis suits it."""

    column: str
    name: str
    optimizer: str | None
    numeric: bool
    log: bool


def is_log_range(values: pd.Series | np.ndarray | list[float]) -> bool:
    """Whether positive finite values span more than two decades (``max / min > 100``)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2 or (v <= 0).any():
        return False
    return bool(v.max() / v.min() > 100.0)


def owner(column: str, optimizers: list[str]) -> str | None:
    """The optimizer ``<opt>`` a column ``config/<opt>.<hp>`` belongs to, or ``None`` for shared keys."""
    head = keys.owner(column[len(CONFIG_PREFIX) :])
    return head if head in optimizers else None


def rows_of(trials: pd.DataFrame, param: Param) -> pd.DataFrame:
    """The trials a parameter applies to: those of its optimizer, or all for a shared key."""
    if param.optimizer is None or OPTIMIZER not in trials:
        return trials
    return trials[trials[OPTIMIZER].astype(str) == param.optimizer]


def searched_params(trials: pd.DataFrame) -> list[Param]:
    """Every config column (``optimizer`` aside) whose values differ among the trials it applies to."""
    optimizers = sorted(str(v) for v in trials[OPTIMIZER].dropna().unique()) if OPTIMIZER in trials else []
    out: list[Param] = []
    for col in sorted(c for c in trials.columns if c.startswith(CONFIG_PREFIX) and c != OPTIMIZER):
        opt = owner(col, optimizers)
        sub = trials if opt is None else trials[trials[OPTIMIZER].astype(str) == opt]
        values = sub[col].dropna()
        if values.astype(str).nunique() < 2:
            continue
        numeric_values = pd.to_numeric(values, errors="coerce")
        is_bool = values.map(lambda x: isinstance(x, bool | np.bool_)).any()
        numeric = bool(numeric_values.notna().all()) and not is_bool
        out.append(
            Param(
                column=col,
                name=col[len(CONFIG_PREFIX) :],
                optimizer=opt,
                numeric=numeric,
                log=numeric and is_log_range(numeric_values),
            )
        )
    return out


def own_params(row: pd.Series, params: list[Param]) -> dict[str, object]:
    """The searched values of one trial: shared keys, and ``<opt>.<hp>`` keys of its own optimizer
    (with the ``<opt>.`` prefix dropped)."""
    opt = str(row.get(OPTIMIZER)) if OPTIMIZER in row else None
    out: dict[str, object] = {}
    for p in params:
        if p.optimizer is not None and p.optimizer != opt:
            continue
        value = row.get(p.column)
        if value is None or (np.ndim(value) == 0 and pd.isna(value)):
            continue
        name = p.name[len(p.optimizer) + 1 :] if p.optimizer else p.name
        out[name] = value
    return out
