"""``report.html``: one self-contained interactive page of an experiment (plotly, its plotly.js inline,
so it opens offline from the results folder).

The same views as the PNGs, to hover, zoom and filter: with several objectives the Pareto front
first (:func:`raytune_opt.report.pareto.plotly_figure`), then optimization history, parameter importances,
parallel coordinates (drag along an axis to select trials), slice plots, learning curves and the
optimizers at equal fidelity. Every trial's id and searched values show on hover.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt.report import analysis
from raytune_opt.report.params import OPTIMIZER, Param, own_params, rows_of
from raytune_opt.report.results import Results

__all__ = ["write_html", "figures"]


def _hover(results: Results, rows: pd.DataFrame) -> list[str]:
    params = results.params
    out = []
    for _, r in rows.iterrows():
        hp = "<br>".join(f"{k} = {v}" for k, v in own_params(r, params).items())
        opt = f"<br>optimizer = {r[OPTIMIZER]}" if OPTIMIZER in r else ""
        out.append(f"trial {r['trial_id']} ({r['status']}){opt}<br>{hp}")
    return out


def figures(results: Results, front: pd.DataFrame | None = None) -> dict[str, Any]:
    """Title → plotly ``Figure`` for each view that has something to show (``front``: the Pareto
    front of an experiment with several objectives, when the caller has it already)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    t = results.trials
    out: dict[str, Any] = {}
    label = f"{results.metric} ({results.mode})"
    hover = dict(zip(t["trial_id"], _hover(results, t), strict=True)) if len(t) else {}

    if results.objectives is not None:
        from raytune_opt.report import pareto

        title, fig = pareto.plotly_figure(results, {str(k): v for k, v in hover.items()}, front)
        out[title] = fig

    hist = analysis.history(results)
    if len(hist):
        fig = go.Figure()
        groups = hist.groupby("optimizer") if len(results.optimizers) > 1 else [("trial", hist)]
        for name, g in groups:
            fig.add_scatter(
                x=g["number"], y=g["value"], mode="markers", name=str(name),
                text=[hover.get(x, "") for x in g["trial_id"]], hoverinfo="text+y",
            )  # fmt: skip
        fig.add_scatter(x=hist["number"], y=hist["best"], mode="lines", name="best so far", line_shape="hv")
        fig.update_layout(xaxis_title="trial (start order)", yaxis_title=f"best {label} of the trial")
        out["Optimization history"] = fig

    imp = analysis.importances(results)
    if len(imp):
        fig = go.Figure(go.Bar(x=imp.to_numpy()[::-1], y=list(imp.index)[::-1], orientation="h"))
        fig.update_layout(xaxis_title="share of permutation importance (random forest on the trials)")
        out["Parameter importances"] = fig

    params = list(results.params)
    if len(results.optimizers) > 1:
        params.insert(0, Param(OPTIMIZER, "optimizer", None, False, False))
    y = t[results.best_column].astype(float).to_numpy() if len(t) else np.array([])
    ok = np.isfinite(y)
    if params and ok.any():
        dims = []
        for p in params:
            u = analysis.unit_values(t, p)[ok]
            d: dict[str, Any] = {"label": p.name, "range": [-0.1, 1.0], "values": np.nan_to_num(u, nan=-0.1)}
            if p.numeric:
                lo = p.low if p.low is not None else float(np.nanmin(pd.to_numeric(t[p.column])))
                hi = p.high if p.high is not None else float(np.nanmax(pd.to_numeric(t[p.column])))
                ticks = np.linspace(0, 1, 5)
                vals = (
                    10 ** (math.log10(lo) + ticks * (math.log10(hi) - math.log10(lo)))
                    if p.log
                    else lo + ticks * (hi - lo)
                )
                d["tickvals"], d["ticktext"] = [-0.1, *ticks], ["inactive", *(f"{v:.3g}" for v in vals)]
            else:
                names = analysis.levels(t, p)
                d["tickvals"] = [-0.1, *(k / max(len(names) - 1, 1) for k in range(len(names)))]
                d["ticktext"] = ["inactive", *names]
            if p.log:
                d["label"] += " (log)"
            dims.append(d)
        dims.append({"label": results.metric, "values": y[ok]})
        fig = go.Figure(
            go.Parcoords(line={"color": y[ok], "colorscale": "Viridis", "showscale": True}, dimensions=dims)
        )
        out["Parallel coordinates"] = fig

    numeric = results.params
    if numeric and ok.any():
        ncols = min(3, len(numeric))
        nrows = math.ceil(len(numeric) / ncols)
        fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[p.name for p in numeric])
        for k, p in enumerate(numeric):
            sub = rows_of(t, p)
            sub = sub[sub[p.column].notna()]
            row, col = k // ncols + 1, k % ncols + 1
            fig.add_scatter(
                x=sub[p.column], y=sub[results.best_column], mode="markers", showlegend=False,
                text=[hover.get(x, "") for x in sub["trial_id"]], hoverinfo="text+y", row=row, col=col,
                marker={"color": "#1f77b4"},
            )  # fmt: skip
            if p.numeric:
                lo, hi = p.low, p.high
                rng = None if lo is None else ([math.log10(lo), math.log10(hi)] if p.log else [lo, hi])
                fig.update_xaxes(type="log" if p.log else "linear", range=rng, row=row, col=col)
        fig.update_layout(height=320 * nrows, yaxis_title=f"best {results.metric}")
        out["Slice plots (best value per trial vs each parameter)"] = fig

    from raytune_opt.report import landscape

    out.update(landscape.plotly_figures(results, hover))

    h = results.history
    if not h.empty and results.metric in h:
        fig = go.Figure()
        for tid, g in h.groupby("trial_id", sort=True):
            fig.add_scatter(
                x=g.get("training_iteration"), y=g[results.metric], mode="lines+markers", name=str(tid),
                text=hover.get(tid, ""), hoverinfo="text+x+y",
            )  # fmt: skip
        fig.update_layout(xaxis_title="training_iteration", yaxis_title=results.metric)
        out["Learning curves"] = fig

    if len(results.optimizers) > 1:
        full = results.full_fidelity()
        fig = go.Figure()
        for name in results.optimizers:
            g = full[full[OPTIMIZER].astype(str) == name]
            fig.add_box(
                y=g[results.best_column], name=f"{name} (n={len(g)})", boxpoints="all", jitter=0.3,
                text=[hover.get(x, "") for x in g["trial_id"]], hoverinfo="text+y",
            )  # fmt: skip
        fig.update_layout(yaxis_title=f"best {label} per trial")
        title = (
            f"Optimizers at equal fidelity: the {len(full)} trials that ran max_t = {results.max_t} epochs"
        )
        out[title] = fig
    return out


def _objectives_line(results: Results) -> str:
    """With several objectives: what they are, and that the rest of the page ranks by the first."""
    if results.objectives is None:
        return ""
    shown = ", ".join(f"<b>{html.escape(m)}</b> ({d})" for m, d in results.objectives)
    return (
        f"<p>Objectives: {shown}. The Pareto front below is over all of them; the other views rank "
        "trials by the first.</p>"
    )


def write_html(results: Results, path: Path, front: pd.DataFrame | None = None) -> Path:
    """Write ``report.html`` (every figure of :func:`figures`, plotly.js embedded once) to ``path``
    (``front``: as :func:`figures` takes it)."""
    from plotly.offline import get_plotlyjs

    summary = results.summary()
    best = summary["best_metric"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(str(summary['name']))}: raytune-opt report</title>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}</style></head><body>",
        f"<h1>{html.escape(str(summary['name']))}</h1>",
        f"<p>Strategy <b>{html.escape(str(summary['strategy']))}</b>, metric <b>{html.escape(results.metric)}"
        f"</b> ({results.mode}); {summary['trials']['total']} trials; best "
        f"{'none' if best is None else f'{best:.4g}'} "
        f"(trial {html.escape(str(summary['best_trial_id']))}).</p>",
        _objectives_line(results),
        "<p>Parameters, domains and log scales are read from the experiment's search space"
        if results.space is not None
        else "<p>No search space stored (a raw Tune folder): the searched parameters are guessed",
        "; importances are permutation importances of a random forest fitted on the trials.</p>",
    ]
    for title, fig in figures(results, front).items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
