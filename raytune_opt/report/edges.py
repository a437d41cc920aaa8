"""Searched hyperparameters whose best value sits at an edge of its range (the range may exclude the optimum).

The ranges are the search space the experiment ran: the stored ``search`` section of
``experiment.json`` — ``SearchSpace.for_optimizers(search.optimizers)`` with ``search.space``'s entries
added or overriding (as :mod:`raytune_opt.experiment.plan` builds it). For each numeric parameter
``[low, high]`` active in the best configuration, its position is

    u = (v - low) / (high - low)                        (uniform ranges)
    u = (log v - log low) / (log high - log low)        (log ranges)

and it is flagged when ``u ≤ margin`` (``side = "low"``) or ``u ≥ 1 - margin`` (``"high"``), margin 5 %.
A flagged range suggests widening it past that edge and searching again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["EDGE_MARGIN", "search_space", "edge_params"]

#: the fraction of the (log-)range counted as its edge
EDGE_MARGIN = 0.05


def search_space(search: Mapping[str, Any] | None) -> Any:
    """The ``raytune_opt.search.SearchSpace`` of a stored ``search`` section (``None`` without one)."""
    from raytune_opt.search import Param, SearchSpace

    if not search:
        return None
    user = SearchSpace(search["space"]) if search.get("space") else None
    if not search.get("optimizers"):
        return user
    base = SearchSpace.for_optimizers(search["optimizers"])
    if user is None:
        return base
    mine = {p.name: p for p in user}
    params = []
    for p in base:
        q = mine.pop(p.name, None)
        params.append(p if q is None else Param(q.name, q.domain, q.when or p.when))
    return SearchSpace([*params, *mine.values()])


def edge_params(
    info: Mapping[str, Any], best_config: Mapping[str, Any] | None, margin: float = EDGE_MARGIN
) -> list[dict[str, Any]]:
    """``[{"name", "value", "low", "high", "log", "position", "side"}]``: every searched numeric
    parameter of the best configuration within ``margin`` of its range's edge. ``info`` is
    experiment.json (empty for a folder the runner did not write: nothing is flagged)."""
    from raytune_opt.errors import ConfigError
    from raytune_opt.search import Float, Int

    search = (info.get("experiment") or {}).get("search")
    if not best_config or not search:
        return []
    try:
        space = search_space(search)
    except ConfigError:  # a stored section this version cannot read: no ranges to compare with
        return []
    out: list[dict[str, Any]] = []
    for p in space or ():
        if not isinstance(p.domain, Float | Int) or p.name not in best_config:
            continue
        if not space.is_active(p.name, best_config):
            continue
        try:
            v = float(best_config[p.name])
        except (TypeError, ValueError):
            continue
        lo, hi, log = float(p.domain.low), float(p.domain.high), bool(p.domain.log)
        if not math.isfinite(v) or (log and v <= 0):
            continue
        u = (math.log(v / lo) / math.log(hi / lo)) if log else (v - lo) / (hi - lo)
        side = "low" if u <= margin else "high" if u >= 1 - margin else None
        if side is not None:
            out.append(
                {"name": p.name, "value": v, "low": lo, "high": hi, "log": log, "position": u, "side": side}
            )
    return out
