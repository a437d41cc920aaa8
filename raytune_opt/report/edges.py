"""Searched hyperparameters whose best value sits at an edge of its range (the range may exclude the optimum).

The ranges are the search space the experiment ran: the stored ``search`` section of
``experiment.json`` — ``SearchSpace.for_optimizers(search.optimizers)`` with ``search.space``'s entries
added or overriding (as :mod:`raytune_opt.experiment.plan` builds it). For each numeric parameter
``[low, high]`` active in the best configuration, its position is

    u = (v - low) / (high - low)                        (uniform ranges)
    u = (log v - log low) / (log high - log low)        (log ranges)

and it is flagged when ``u ≤ margin`` (``side = "low"``) or ``u ≥ 1 - margin`` (``"high"``), margin 5 %.
A flagged range suggests widening it past that edge and searching again (a comparison does it with
``search.compare_widen``): :func:`widen` moves the flagged bound :data:`WIDEN_FACTOR` = 10× further
in log space (log ranges: ``low / 10`` or ``high × 10``) or one range width further (uniform),
clamps it to the hyperparameter's hard bounds in the optimizer registry (``HParam.bounds``: a
momentum's ``[0, 1]``), and checks the new bound with the optimizer's own hyperparameter checks
(``raytune_opt.optim.create``) — a bounded parameter at its bound (an Adagrad decay at 1), or one
whose clamped bound its constructor refuses (a momentum at 0.99: 1 is not a momentum), cannot be
widened, and says why. :func:`space_entry` is the ``search.space`` entry of a widened range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["EDGE_MARGIN", "WIDEN_FACTOR", "search_space", "edge_params", "widen", "space_entry", "widen_cell"]

#: the fraction of the (log-)range counted as its edge
EDGE_MARGIN = 0.05
#: how far :func:`widen` moves a log range's flagged bound (a factor: one decade)
WIDEN_FACTOR = 10.0


def search_space(search: Mapping[str, Any] | None) -> Any:
    """The ``raytune_opt.search.SearchSpace`` of a stored ``search`` section (``None`` without one)."""
    from raytune_opt.search import SearchSpace

    if not search:
        return None
    return SearchSpace.merged(search.get("optimizers"), search.get("space"))


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
            entry = {
                "name": p.name,
                "value": v,
                "low": lo,
                "high": hi,
                "log": log,
                "integer": isinstance(p.domain, Int),
                "position": u,
                "side": side,
            }
            entry.update(widen(entry, best_config.get("optimizer"), integer=entry["integer"]))
            out.append(entry)
    return out


def widen(edge: Mapping[str, Any], optimizer: str | None = None, integer: bool = False) -> dict[str, Any]:
    """``{"widened": [low, high] or None, "bounded": None or why}``: the range of a flagged ``edge``
    moved :data:`WIDEN_FACTOR` × (log) or one range width (uniform) past its ``side``, clamped to the
    hard bounds the registry gives the hyperparameter (``<optimizer>.<hparam>``, or the flat name
    with ``optimizer``), if its constructor takes the new bound; a loop key (``grad_clip``,
    ``batch_size`` ...) is checked by ``TrainSettings``."""
    import torch
    from pydantic import ValidationError

    from raytune_opt import keys, optim
    from raytune_opt.errors import ConfigError
    from raytune_opt.train.config import TrainSettings

    lo, hi = float(edge["low"]), float(edge["high"])
    side, name = edge["side"], edge["name"]
    if edge["log"]:
        new = lo / WIDEN_FACTOR if side == "low" else hi * WIDEN_FACTOR
    else:
        new = lo - (hi - lo) if side == "low" else hi + (hi - lo)
    owner, hparam = keys.split(name) or (optimizer, name)
    h = optim.spec(owner).hparams.get(hparam) if owner in optim.available() else None
    if h is not None and h.bounds is not None:
        b_lo, b_hi = (float(b) for b in h.bounds)
        at = lo if side == "low" else hi
        new = min(max(new, b_lo), b_hi)
        if (side == "low" and new >= lo) or (side == "high" and new <= hi):
            return {
                "widened": None,
                "bounded": f"{name}'s {side} edge {at:g} is its hard bound "
                f"(the registry's bounds of {owner}.{hparam}: [{b_lo:g}, {b_hi:g}])",
            }
    if integer:
        new = float(math.floor(new) if side == "low" else math.ceil(new))
    value = int(new) if integer else new
    if h is not None:
        try:
            optim.create(owner, [torch.zeros(1, requires_grad=True)], **{hparam: value})
        except ConfigError as e:
            return {"widened": None, "bounded": f"{name} cannot go past {value:g} (its hard bound): {e}"}
    elif name in TrainSettings.model_fields:
        try:
            TrainSettings.model_validate({name: value})
        except ValidationError as e:
            msg = e.errors()[0]["msg"]
            return {"widened": None, "bounded": f"{name} = {value!r} is not allowed: {msg}"}
    widened = [new, hi] if side == "low" else [lo, new]
    return {"widened": [int(x) for x in widened] if integer else widened, "bounded": None}


def space_entry(edge: Mapping[str, Any]) -> dict[str, Any]:
    """The ``search.space`` entry of a flagged ``edge``'s widened range (``{"loguniform": [a, b]}``,
    ``{"uniform": ...}`` or ``{"int": [a, b], "log": ...}``)."""
    low, high = edge["widened"]
    if edge.get("integer"):
        return {"int": [int(low), int(high)], "log": bool(edge["log"])}
    return {"loguniform" if edge["log"] else "uniform": [float(low), float(high)]}


def widen_cell(edge: Mapping[str, Any]) -> str:
    """A report cell: the ``search.space`` entry that widens a flagged range, or why it cannot be."""
    from raytune_opt.report.tables import fmt

    if edge.get("widened"):
        ((kind, (low, high)), *rest) = space_entry(edge).items()
        log = ", log: true" if rest and rest[0][1] else ""
        return f"`{edge['name']}: {{{kind}: [{fmt(low)}, {fmt(high)}]{log}}}`"
    return f"cannot be widened: {edge['bounded']}" if edge.get("bounded") else "-"
