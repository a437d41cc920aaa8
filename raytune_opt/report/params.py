"""Which hyperparameters an experiment searched: read from its search space, else guessed from the data.

An experiment run by ``raytune-opt`` keeps its description in ``experiment.json``; the report rebuilds
its :class:`~raytune_opt.search.SearchSpace` from it (``search.space`` merged into
``SearchSpace.for_optimizers(search.optimizers)``, as the plan did: :func:`space_of`) and takes each
parameter's domain, scale (log or not) and condition (``when: {optimizer: lion}``) from there. A
parameter counts as searched when its domain is not a fixed value, however many trials drew it.

A raw Ray Tune folder has no such file; there the parameters are *guessed* from the trials' configs: a
column is searched when its values differ between the trials it applies to (``<opt>.<hp>`` columns,
e.g. ``lion.lr``, apply to the trials of that optimizer only), and a numeric one gets a log axis when
its positive values span more than two decades (``max / min > 100``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt import keys
from raytune_opt.report.results import CONFIG_PREFIX

__all__ = ["Param", "searched_params", "space_of", "is_log_range", "own_params", "rows_of", "OPTIMIZER"]

OPTIMIZER = f"{CONFIG_PREFIX}optimizer"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: its column, display name, the optimizer it belongs to (or None),
    whether it is numeric and whether a log axis suits it. From a search space (``from_space``) it also
    has its domain's bounds ``low`` / ``high`` and its condition ``when`` (``(parent, values)``)."""

    column: str
    name: str
    optimizer: str | None
    numeric: bool
    log: bool
    low: float | None = None
    high: float | None = None
    when: tuple[str, tuple[Any, ...]] | None = None
    from_space: bool = False


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
    """The trials a parameter applies to: those where its condition holds (those of its optimizer),
    or all for an unconditional key."""
    if param.when is not None:
        parent = f"{CONFIG_PREFIX}{param.when[0]}"
        if parent in trials:
            return trials[trials[parent].astype(str).isin([str(v) for v in param.when[1]])]
    if param.optimizer is None or OPTIMIZER not in trials:
        return trials
    return trials[trials[OPTIMIZER].astype(str) == param.optimizer]


def space_of(info: Mapping[str, Any]) -> Any:
    """The :class:`~raytune_opt.search.SearchSpace` of the experiment stored in ``experiment.json``
    (``info``): ``None`` when it has none (no ``search`` section, a raw Tune folder) or when it cannot
    be rebuilt here (e.g. an ``imports`` file that is gone: logged, and the report guesses)."""
    exp = info.get("experiment")
    search = exp.get("search") if isinstance(exp, Mapping) else None
    if not isinstance(search, Mapping):
        return None
    from raytune_opt.errors import ConfigError
    from raytune_opt.experiment.plugins import import_plugins
    from raytune_opt.search import SearchSpace

    try:
        import_plugins(exp.get("imports") or [], base=Path.cwd(), where="experiment.json: imports")
        return SearchSpace.merged(search.get("optimizers"), search.get("space") or {})  # the plan's merge
    except (ConfigError, TypeError, ValueError) as e:
        log.warning("the report guesses the searched parameters from the trials: %s", e)
        return None


def _from_space(space: Any, optimizers: list[str]) -> list[Param]:
    from raytune_opt.search import Float, Int

    out: list[Param] = []
    for p in space:
        if not p.searched or p.name == "optimizer":
            continue
        d = p.domain
        numeric = isinstance(d, Float | Int)
        opt = None
        if p.when is not None and p.when[0] == "optimizer" and len(p.when[1]) == 1:
            opt = str(p.when[1][0])
        elif keys.owner(p.name) in optimizers:
            opt = keys.owner(p.name)
        out.append(
            Param(
                column=f"{CONFIG_PREFIX}{p.name}",
                name=p.name,
                optimizer=opt,
                numeric=numeric,
                log=bool(numeric and d.log),
                low=float(d.low) if numeric else None,
                high=float(d.high) if numeric else None,
                when=p.when,
                from_space=True,
            )
        )
    return out


def searched_params(trials: pd.DataFrame, space: Any = None) -> list[Param]:
    """The searched parameters (``optimizer`` aside): from ``space`` when given (every parameter whose
    domain is not a fixed value), else guessed: every config column whose values differ among the
    trials it applies to."""
    optimizers = sorted(str(v) for v in trials[OPTIMIZER].dropna().unique()) if OPTIMIZER in trials else []
    if space is not None:  # a parameter no trial took (an optimizer never sampled) has no column
        return [p for p in _from_space(space, optimizers) if p.column in trials.columns]
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
        own = p.optimizer is not None and p.name.startswith(p.optimizer + keys.SEP)
        name = p.name[len(p.optimizer) + 1 :] if own else p.name
        out[name] = value
    return out
