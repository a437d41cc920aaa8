"""The metric over the parameters, per optimizer at equal fidelity: Optuna's *slice* and *contour* plots.

Each optimizer's row holds only its own trials that ran the full ``max_t`` epochs
(:meth:`Results.full_fidelity`: a scheduler's early-stopped trials, scored after fewer epochs, are not
mixed with full ones) and only the parameters that apply to it (shared keys and its ``<opt>.<hp>``
keys). Axes span each parameter's domain from the stored search space, in log scale for a log domain.

- :func:`slices` — per parameter, each trial's best value vs its setting (``plot_slice``);
- :func:`contours` — per pair of numeric parameters, the best values interpolated over the pair's
  domain (linear interpolation of the trials' values, in log10 for log axes, drawn only inside the
  trials' convex hull, as ``plot_contour``), the trials as dots;
- :func:`plotly_figures` — the same two views for ``report.html``.

Without an ``optimizer`` in the trials' configs there is one row, of every full-fidelity trial.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt.report.params import OPTIMIZER, Param, rows_of
from raytune_opt.report.results import Results

__all__ = ["groups", "slice_figure", "contour_figure", "slices", "contours", "plotly_figures"]

#: the most parameter pairs drawn per optimizer (Optuna draws every pair; a matrix past this is unreadable)
MAX_PAIRS = 10
DPI = 110


def groups(results: Results) -> list[tuple[str, pd.DataFrame, list[Param]]]:
    """``(optimizer, its trials at max_t, its parameters)`` per optimizer (``"all"`` when the configs
    have no optimizer), in the order of ``results.optimizers``."""
    full = results.full_fidelity()
    if OPTIMIZER not in full or not results.optimizers:
        return [("all", full, list(results.params))]
    out = []
    for name in results.optimizers:
        mine = full[full[OPTIMIZER].astype(str) == name]
        params = [p for p in results.params if p.optimizer in (None, name) and _applies(mine, p)]
        out.append((name, mine, params))
    return out


def _applies(trials: pd.DataFrame, p: Param) -> bool:
    return p.column in trials and len(rows_of(trials, p)) > 0 and trials[p.column].notna().any()


def _values(sub: pd.DataFrame, p: Param) -> tuple[np.ndarray, list[str] | None]:
    """x positions of ``sub``'s trials for ``p``: numbers, or category indices (and the categories)."""
    if p.numeric:
        return pd.to_numeric(sub[p.column], errors="coerce").to_numpy(float), None
    cats = sorted(sub[p.column].astype(str).unique())
    pos = {c: k for k, c in enumerate(cats)}
    return sub[p.column].astype(str).map(pos).to_numpy(float), cats


def _limits(x: np.ndarray, p: Param) -> tuple[float, float] | None:
    """The axis range: the domain (padded: ×/÷ 1.3 on a log axis, 4 % on a linear one) holding every x."""
    lo = p.low if p.low is not None else np.nanmin(x) if np.isfinite(x).any() else None
    hi = p.high if p.high is not None else np.nanmax(x) if np.isfinite(x).any() else None
    if lo is None or hi is None:
        return None
    lo, hi = float(min(lo, np.nanmin(x, initial=lo))), float(max(hi, np.nanmax(x, initial=hi)))
    if hi <= lo:
        return None
    if p.log:
        return lo / 1.3, hi * 1.3
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _axes(fig: Any, nrows: int, ncols: int) -> np.ndarray:
    axes = np.atleast_2d(fig.subplots(max(nrows, 1), max(ncols, 1), squeeze=False))
    for ax in axes.ravel():
        ax.set_axis_off()  # turned on where a panel is drawn
    return axes


def _empty(fig: Any, text: str) -> Any:
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.4")
    return fig


def slice_figure(results: Results) -> Any:
    """The slice plots as a matplotlib ``Figure``: one row per optimizer, one panel per parameter."""
    rows = groups(results)
    ncols = max((len(ps) for _, _, ps in rows), default=0)
    fig = _figure(max(3.6 * min(ncols, 4), 7.0), 3.0 * len(rows) + 0.6)
    if ncols == 0:
        return _empty(fig, "no searched parameters")
    axes = _axes(fig, len(rows), ncols)
    for r, (name, trials, params) in enumerate(rows):
        for c, p in enumerate(params):
            ax = axes[r, c]
            ax.set_axis_on()
            sub = rows_of(trials, p)
            sub = sub[sub[p.column].notna()]
            x, cats = _values(sub, p)
            y = sub[results.best_column].astype(float).to_numpy()
            ok = np.isfinite(x) & np.isfinite(y)
            if p.log:
                ax.set_xscale("log")
            if cats is not None:
                ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right", fontsize=7)
                ax.set_xlim(-0.5, len(cats) - 0.5)
            elif (lim := _limits(x, p)) is not None:
                ax.set_xlim(*lim)
            ax.scatter(x[ok], y[ok], s=20, color="C0", alpha=0.85)
            if not ok.any():
                ax.text(0.5, 0.5, "no trial at max_t", ha="center", transform=ax.transAxes, color="0.4")
            ax.set_xlabel(p.name + (" (log)" if p.log else ""), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel(f"{name}: best {results.metric}\n(n={len(trials)} at max_t)", fontsize=8)
    fig.suptitle(
        f"{results.exp_dir.name}: slice plots per optimizer, trials that ran max_t = {results.max_t} epochs",
        fontsize=10,
    )
    return fig


def _pairs(params: list[Param]) -> list[tuple[Param, Param]]:
    numeric = [p for p in params if p.numeric]
    return list(itertools.combinations(numeric, 2))[:MAX_PAIRS]


def _surface(x: np.ndarray, y: np.ndarray, z: np.ndarray, px: Param, py: Param, lim: tuple, n: int = 60):
    """``(X, Y, Z)``: ``z`` linearly interpolated on an ``n × n`` grid over the limits (log10 space for
    log axes); NaN outside the points' convex hull; ``None`` with fewer than 3 points not on a line."""
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import QhullError

    def scale(v: np.ndarray, p: Param) -> np.ndarray:
        return np.log10(v) if p.log else v

    pts = np.column_stack([scale(x, px), scale(y, py)])
    if len(pts) < 3 or np.linalg.matrix_rank(pts - pts.mean(axis=0)) < 2:
        return None
    (x0, x1), (y0, y1) = lim
    gx = np.linspace(*scale(np.array([x0, x1]), px), n)
    gy = np.linspace(*scale(np.array([y0, y1]), py), n)
    GX, GY = np.meshgrid(gx, gy)
    try:
        Z = LinearNDInterpolator(pts, z)(GX, GY)
    except QhullError:
        return None
    unscale = lambda v, p: 10**v if p.log else v  # noqa: E731
    return unscale(GX, px), unscale(GY, py), Z


def contour_figure(results: Results) -> Any:
    """The contour plots as a matplotlib ``Figure``: one row per optimizer, one panel per pair of its
    numeric parameters (at most :data:`MAX_PAIRS`)."""
    from matplotlib import colormaps

    rows = groups(results)
    pairs = [_pairs(ps) for _, _, ps in rows]
    ncols = max((len(p) for p in pairs), default=0)
    fig = _figure(max(4.0 * min(ncols, 4), 7.0), 3.4 * len(rows) + 0.6)
    if ncols == 0:
        return _empty(fig, "no optimizer has two numeric searched parameters")
    cmap = colormaps["viridis" if results.mode == "max" else "viridis_r"]
    axes = _axes(fig, len(rows), ncols)
    for r, ((name, trials, _), row_pairs) in enumerate(zip(rows, pairs, strict=True)):
        for c, (px, py) in enumerate(row_pairs):
            ax = axes[r, c]
            ax.set_axis_on()
            sub = rows_of(rows_of(trials, px), py)
            x = pd.to_numeric(sub[px.column], errors="coerce").to_numpy(float)
            y = pd.to_numeric(sub[py.column], errors="coerce").to_numpy(float)
            z = sub[results.best_column].astype(float).to_numpy()
            ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
            if px.log:
                ax.set_xscale("log")
            if py.log:
                ax.set_yscale("log")
            lim = (_limits(x[ok], px), _limits(y[ok], py))
            if ok.any() and None not in lim:
                ax.set_xlim(*lim[0])
                ax.set_ylim(*lim[1])
                surface = _surface(x[ok], y[ok], z[ok], px, py, lim)
                vmin, vmax = float(z[ok].min()), float(z[ok].max())
                if surface is not None and vmax > vmin:
                    ax.contourf(*surface, levels=12, cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.85)
                ax.scatter(
                    x[ok], y[ok], c=z[ok], cmap=cmap, s=22, edgecolor="k", lw=0.5, vmin=vmin, vmax=vmax
                )
            else:
                ax.text(0.5, 0.5, "no trial at max_t", ha="center", transform=ax.transAxes, color="0.4")
            ax.set_xlabel(px.name + (" (log)" if px.log else ""), fontsize=8)
            ax.set_ylabel(py.name + (" (log)" if py.log else ""), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(f"{name} (n={int(ok.sum())})", fontsize=8)
    fig.suptitle(
        f"{results.exp_dir.name}: best {results.metric} ({results.mode}) over parameter pairs, trials that "
        f"ran max_t = {results.max_t} epochs",
        fontsize=10,
    )
    return fig


def slices(results: Results, path: Path) -> Path:
    """``slices.png``: :func:`slice_figure`."""
    path = Path(path)
    slice_figure(results).savefig(path, dpi=DPI)
    return path


def contours(results: Results, path: Path) -> Path:
    """``contours.png``: :func:`contour_figure`."""
    path = Path(path)
    contour_figure(results).savefig(path, dpi=DPI)
    return path


def plotly_figures(results: Results, hover: dict[str, str] | None = None) -> dict[str, Any]:
    """Title → plotly ``Figure``: the slice and contour plots per optimizer at equal fidelity (those
    with something to show)."""
    from plotly.subplots import make_subplots

    hover = hover or {}
    out: dict[str, Any] = {}
    rows = groups(results)
    fidelity = f"per optimizer, trials that ran max_t = {results.max_t} epochs"

    ncols = max((len(ps) for _, _, ps in rows), default=0)
    if ncols:
        titles = [_title(name, ps, c, lambda p: p.name) for name, _, ps in rows for c in range(ncols)]
        fig = make_subplots(rows=len(rows), cols=ncols, subplot_titles=titles)
        for r, (_, trials, params) in enumerate(rows, start=1):
            for c, p in enumerate(params, start=1):
                sub = rows_of(trials, p)
                sub = sub[sub[p.column].notna()]
                fig.add_scatter(
                    x=sub[p.column], y=sub[results.best_column], mode="markers", showlegend=False,
                    text=[hover.get(t, "") for t in sub["trial_id"]], hoverinfo="text+y", row=r, col=c,
                )  # fmt: skip
                if p.numeric and p.low is not None and p.high is not None:
                    rng = [math.log10(p.low), math.log10(p.high)] if p.log else [p.low, p.high]
                    fig.update_xaxes(type="log" if p.log else "linear", range=rng, row=r, col=c)
        fig.update_layout(height=300 * len(rows))
        out[f"Slice plots ({fidelity})"] = fig

    pairs = [_pairs(ps) for _, _, ps in rows]
    ncols = max((len(p) for p in pairs), default=0)
    if ncols:
        titles = [
            _title(name, row_pairs, c, lambda pair: f"{pair[0].name} vs {pair[1].name}")
            for (name, _, _), row_pairs in zip(rows, pairs, strict=True)
            for c in range(ncols)
        ]
        fig = make_subplots(rows=len(rows), cols=ncols, subplot_titles=titles)
        for r, ((_, trials, _), row_pairs) in enumerate(zip(rows, pairs, strict=True), start=1):
            for c, (px, py) in enumerate(row_pairs, start=1):
                sub = rows_of(rows_of(trials, px), py)
                x = pd.to_numeric(sub[px.column], errors="coerce").to_numpy(float)
                y = pd.to_numeric(sub[py.column], errors="coerce").to_numpy(float)
                z = sub[results.best_column].astype(float).to_numpy()
                ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
                lim = (_limits(x[ok], px), _limits(y[ok], py)) if ok.any() else (None, None)
                surface = _surface(x[ok], y[ok], z[ok], px, py, lim) if None not in lim else None
                if surface is not None:
                    gx, gy, gz = surface
                    fig.add_contour(
                        x=gx[0], y=gy[:, 0], z=gz, colorscale="Viridis", showscale=False, row=r, col=c,
                        reversescale=results.mode == "min", hoverinfo="skip",
                    )  # fmt: skip
                fig.add_scatter(
                    x=x[ok], y=y[ok], mode="markers", showlegend=False, row=r, col=c,
                    marker={"color": z[ok], "colorscale": "Viridis", "line": {"width": 0.5}},
                    text=[hover.get(t, "") for t in sub["trial_id"].to_numpy()[ok]], hoverinfo="text",
                )  # fmt: skip
                for axis, p in (("x", px), ("y", py)):
                    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
                    update(type="log" if p.log else "linear", row=r, col=c)
        fig.update_layout(height=340 * len(rows))
        out[f"Contour plots ({fidelity})"] = fig
    return out


def _title(name: str, items: list, c: int, text: Any) -> str:
    """A subplot's title: ``"<optimizer>: <text(items[c])>"``, or ``""`` past the row's panels."""
    return f"{name}: {text(items[c])}" if c < len(items) else ""
