"""The Pareto front of an experiment with several objectives (``search.metric: [a, b]``).

Definitions. Each trial is a point ``y = (y_1, …, y_k)``: its **final** (last reported) value of
each objective's metric. Write every objective as a loss, ``l_j = y_j`` for ``mode: min`` and
``l_j = −y_j`` for ``mode: max``. A trial ``a`` **dominates** a trial ``b`` when it is at least as good
on every objective and strictly better on at least one: ``l_j(a) ≤ l_j(b)`` for all ``j`` and
``l_j(a) < l_j(b)`` for some ``j``. The **Pareto front** is the set of trials that no other trial
dominates (:func:`pareto_mask`); two trials with equal points are both on it when nothing else
dominates them.

The trials considered are those that ended normally (status ``finished`` or ``stopped`` by the time
budget) with a finite final value of every objective; failed, diverged and unfinished trials are
left out (:func:`front`).

Files (written by :mod:`raytune_opt.report.writer`): ``pareto.csv`` — the front, one row per trial
(trial_id, each metric, the ``config/`` columns), sorted by the first objective, best first;
``pareto.png`` — every considered trial on the first two objectives, the front highlighted and
joined as a staircase; the same view in ``report.html`` (:func:`plotly_figure`), each trial's id and
values on hover.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt.errors import ConfigError
from raytune_opt.report.results import MODES, Results

__all__ = [
    "pareto_mask",
    "front",
    "candidates",
    "plot",
    "plotly_figure",
    "summary",
    "PARETO_CSV",
    "PARETO_PNG",
]

PARETO_CSV = "pareto.csv"
PARETO_PNG = "pareto.png"
#: the trial statuses whose final values count (module docstring)
_ENDED = ("finished", "stopped")


def pareto_mask(values: Any, modes: Sequence[str]) -> np.ndarray:
    """Which rows of ``values`` (``n × k``: ``n`` points, one column per objective) are on the Pareto
    front under ``modes`` (``k`` of ``"min"``/``"max"``): the boolean mask of the points that no other
    point dominates — ``a`` dominates ``b`` when ``a`` is at least as good on every objective and
    strictly better on one (module docstring). Values must be finite.

        >>> pareto_mask([[0.9, 3.0], [0.8, 1.0], [0.7, 2.0], [0.9, 3.0]], ["max", "min"]).tolist()
        [True, True, False, True]
    """
    y = np.asarray(values, dtype=float)
    if y.ndim != 2:
        raise ConfigError.invalid("values", y.shape, "an n × k array (one column per objective)")
    modes = list(modes)
    if len(modes) != y.shape[1] or any(m not in MODES for m in modes):
        raise ConfigError.invalid("modes", modes, f"{y.shape[1]} of 'min'/'max', one per column")
    if not np.isfinite(y).all():
        raise ConfigError.invalid("values", "non-finite entries", "finite values only")
    loss = y * np.where(np.array(modes) == "max", -1.0, 1.0)
    # dominated[i, j]: point j dominates point i
    no_worse = (loss[None, :, :] <= loss[:, None, :]).all(axis=2)
    better = (loss[None, :, :] < loss[:, None, :]).any(axis=2)
    return ~(no_worse & better).any(axis=1)


def _objectives(results: Results) -> tuple[tuple[str, str], ...]:
    objectives = results.objectives
    if objectives is None:
        raise ConfigError.invalid(
            "experiment", str(results.exp_dir), "an experiment with several objectives (search.metric a list)"
        )
    return objectives


def candidates(results: Results) -> pd.DataFrame:
    """The trials the front is taken from (module docstring), with their final objective values."""
    metrics = [m for m, _ in _objectives(results)]
    t = results.trials
    if t.empty or any(m not in t.columns for m in metrics):
        return t.iloc[0:0].reindex(columns=["trial_id", *metrics])
    t = t[t["status"].isin(_ENDED)].copy()
    for m in metrics:
        t[m] = pd.to_numeric(t[m], errors="coerce")
    return t[np.isfinite(t[metrics].to_numpy(dtype=float)).all(axis=1)]


def front(results: Results) -> pd.DataFrame:
    """The Pareto front of ``results`` (an experiment with several objectives): trial_id, each
    objective's final value and the trial's ``config/`` columns, sorted by the first objective,
    best first."""
    objectives = _objectives(results)
    metrics = [m for m, _ in objectives]
    pool = candidates(results)
    config = [c for c in results.config_columns if c in pool.columns]
    if pool.empty:
        return pd.DataFrame(columns=["trial_id", *metrics, *config])
    mask = pareto_mask(pool[metrics].to_numpy(dtype=float), [d for _, d in objectives])
    out = pool.loc[mask, ["trial_id", *metrics, *config]]
    first, mode = objectives[0]
    return out.sort_values([first, "trial_id"], ascending=[mode == "min", True], kind="stable").reset_index(
        drop=True
    )


def plot(results: Results, path: Path, f: pd.DataFrame | None = None) -> Path:
    """``pareto.png``: the considered trials on the first two objectives, the front highlighted
    (``f``: the :func:`front` when the caller has it already)."""
    from raytune_opt.report.plots import _figure, _note, _save

    objectives = _objectives(results)
    (mx, dx), (my, dy) = objectives[0], objectives[1]
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    pool = candidates(results)
    if pool.empty:
        _note(ax, "no trial ended with finite values of every objective")
    else:
        f = front(results) if f is None else f
        ax.scatter(pool[mx], pool[my], s=22, color="0.6", label="trials")
        stairs = f.sort_values(mx)
        ax.step(stairs[mx], stairs[my], where="post", color="C3", alpha=0.5, linewidth=1)
        ax.scatter(f[mx], f[my], s=46, color="C3", edgecolors="k", zorder=3, label="Pareto front")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(f"final {mx} ({dx})")
    ax.set_ylabel(f"final {my} ({dy})")
    shown = " × ".join(f"{m}" for m, _ in objectives)
    ax.set_title(f"Pareto front over {shown}" + (" (first two shown)" if len(objectives) > 2 else ""))
    return _save(fig, path)


def plotly_figure(
    results: Results, hover: dict[str, str] | None = None, f: pd.DataFrame | None = None
) -> tuple[str, Any]:
    """``(title, plotly Figure)`` of :func:`plot`'s view for ``report.html``: the considered trials on
    the first two objectives, the front highlighted and joined as a staircase; ``hover``: trial id →
    its hover text (``f``: the :func:`front` when the caller has it already)."""
    import plotly.graph_objects as go

    objectives = _objectives(results)
    (mx, dx), (my, dy) = objectives[0], objectives[1]
    pool = candidates(results)
    f = front(results) if f is None else f
    hover = hover or {}
    fig = go.Figure()
    on = set(f["trial_id"].astype(str))
    rest = pool[~pool["trial_id"].astype(str).isin(on)]
    for rows, name, marker in (
        (rest, "trials", {"color": "#999999", "size": 7}),
        (f, "Pareto front", {"color": "#d62728", "size": 10, "line": {"color": "black", "width": 1}}),
    ):
        fig.add_scatter(
            x=rows[mx], y=rows[my], mode="markers", name=f"{name} (n={len(rows)})", marker=marker,
            text=[hover.get(str(t), f"trial {t}") for t in rows["trial_id"]], hoverinfo="text+x+y",
        )  # fmt: skip
    stairs = f.sort_values(mx)
    fig.add_scatter(
        x=stairs[mx], y=stairs[my], mode="lines", line_shape="hv", name="front (staircase)",
        line={"color": "#d62728", "width": 1}, opacity=0.5, hoverinfo="skip",
    )  # fmt: skip
    fig.update_layout(xaxis_title=f"final {mx} ({dx})", yaxis_title=f"final {my} ({dy})")
    shown = " × ".join(m for m, _ in objectives)
    title = (
        f"Pareto front over {shown}" + (" (first two shown)" if len(objectives) > 2 else "")
        + f": {len(f)} of {len(pool)} ended trials"
    )  # fmt: skip
    return title, fig


def summary(results: Results, f: pd.DataFrame | None = None) -> str:
    """The front as text for the end of a run (and ``raytune-opt report``): a markdown table
    (``f``: the :func:`front` when the caller has it already)."""
    from raytune_opt.report.tables import markdown

    objectives = _objectives(results)
    f = front(results) if f is None else f
    metrics = [m for m, _ in objectives]
    searched = [c for c in f.columns if c.startswith("config/") and _varies(results, c)]
    rows = [[r["trial_id"], *(r[m] for m in metrics), *(r[c] for c in searched)] for _, r in f.iterrows()]
    head = ", ".join(f"{m} ({d})" for m, d in objectives)
    text = markdown(["trial", *metrics, *(c.removeprefix("config/") for c in searched)], rows)
    return (
        f"Pareto front over {head}: {len(f)} of {len(candidates(results))} ended trials "
        f"(final values; none dominated)\n{text}"
    )


def _varies(results: Results, column: str) -> bool:
    values = results.trials[column].dropna()
    return len(values) > 0 and values.astype(str).nunique() > 1
