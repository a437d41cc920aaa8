"""Searched hyperparameters whose best value sits at an edge of its range (the range may exclude the optimum).

The ranges are the search space the experiment ran: the stored ``search`` section of
``experiment.json`` — ``SearchSpace.for_optimizers(search.optimizers)`` with ``search.space``'s entries
added or overriding (as :mod:`raytune_opt.experiment.plan` builds it). For each numeric parameter
``[low, high]`` active in the best configuration, its position is

    u = (v - low) / (high - low)                        (uniform ranges)
    u = (log v - log low) / (log high - log low)        (log ranges)

and it is flagged when ``u ≤ margin`` (``side = "low"``) or ``u ≥ 1 - margin`` (``"high"``), margin 5 %.
A flagged range suggests widening it past that edge and searching again: :func:`widen` proposes one
decade further (log ranges: ``low / 10`` or ``high × 10``) or one range width further (uniform), and
checks the new bound with the optimizer's own hyperparameter checks (``raytune_opt.optim.create``) —
a bounded parameter (a momentum's ``[0, 1)``) at its bound cannot be widened, and says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["EDGE_MARGIN", "search_space", "edge_params", "widen", "widen_cell"]

#: the fraction of the (log-)range counted as its edge
EDGE_MARGIN = 0.05


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
                "position": u,
                "side": side,
            }
            entry.update(widen(entry, best_config.get("optimizer"), integer=isinstance(p.domain, Int)))
            out.append(entry)
    return out


def widen(edge: Mapping[str, Any], optimizer: str | None = None, integer: bool = False) -> dict[str, Any]:
    """``{"widened": [low, high] or None, "bounded": None or why}``: the range of a flagged ``edge``
    moved one decade (log) or one range width (uniform) past its ``side``, if the optimizer whose
    hyperparameter it is (``<optimizer>.<hparam>``, or the flat name with ``optimizer``) takes the
    new bound; a loop key (``grad_clip``, ``batch_size`` ...) is checked by ``TrainSettings``."""
    import torch
    from pydantic import ValidationError

    from raytune_opt import keys, optim
    from raytune_opt.errors import ConfigError
    from raytune_opt.train.config import TrainSettings

    lo, hi = float(edge["low"]), float(edge["high"])
    if edge["log"]:
        new = lo / 10 if edge["side"] == "low" else hi * 10
    else:
        new = lo - (hi - lo) if edge["side"] == "low" else hi + (hi - lo)
    if integer:
        new = float(round(new))
    owner, hparam = keys.split(edge["name"]) or (optimizer, edge["name"])
    value = int(new) if integer else new
    if owner in optim.available() and hparam in optim.spec(owner).hparams:
        try:
            optim.create(owner, [torch.zeros(1, requires_grad=True)], **{hparam: value})
        except ConfigError as e:
            return {"widened": None, "bounded": str(e)}
    elif edge["name"] in TrainSettings.model_fields:
        try:
            TrainSettings.model_validate({edge["name"]: value})
        except ValidationError as e:
            msg = e.errors()[0]["msg"]
            return {"widened": None, "bounded": f"{edge['name']} = {value!r} is not allowed: {msg}"}
    widened = [new, hi] if edge["side"] == "low" else [lo, new]
    return {"widened": [int(x) for x in widened] if integer else widened, "bounded": None}


def widen_cell(edge: Mapping[str, Any]) -> str:
    """A report cell: the ``search.space`` entry that widens a flagged range, or why it cannot be."""
    from raytune_opt.report.tables import fmt

    if edge.get("widened"):
        kind = "loguniform" if edge["log"] else "uniform"
        return f"`{edge['name']}: {{{kind}: [{fmt(edge['widened'][0])}, {fmt(edge['widened'][1])}]}}`"
    return f"cannot be widened: {edge['bounded']}" if edge.get("bounded") else "-"
