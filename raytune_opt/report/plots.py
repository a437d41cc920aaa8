"""The report's figures, each one PNG from a :class:`~raytune_opt.report.results.Results`.

- :func:`best_so_far` — best value of the metric so far vs wall time and vs trial-seconds used.
- :func:`learning_curves` — the metric vs training_iteration, one line per trial.
- :func:`hyperparameters` — Optuna's *slice plot*: per searched hyperparameter, each trial's best
  value vs its setting, over the parameter's domain from the search space (log axis for a log
  domain; ``<opt>.<hp>`` keys over that optimizer's trials only).
- :func:`optimizers` — per optimizer, at equal fidelity (the trials that ran ``max_t`` epochs): the
  spread of its trials' best values, and its mean with a 95 % interval and its best.
- :func:`history` — Optuna's *optimization history*: each trial's best value in start order, and the
  best so far.
- :func:`importances` — parameter importances (:func:`raytune_opt.report.analysis.importances`).
- :func:`parallel_coordinates` — every trial as a line across its parameters, coloured by its value.
- :func:`fractions` — only for trials with a ``data_fraction`` (Fabolas): how many trials ran at
  each fraction, and the share of the training spent there (``Σ`` fraction).

Matplotlib is imported inside each function and drawn with the Agg canvas (no pyplot, no global
backend change). Trials without a finite value (diverged, failed before reporting) are drawn as
red crosses along the bottom edge where they have an x position, and never break a figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt.report import analysis
from raytune_opt.report.params import OPTIMIZER, rows_of
from raytune_opt.report.results import Results
from raytune_opt.report.tables import optimizer_stats

__all__ = [
    "best_so_far",
    "learning_curves",
    "hyperparameters",
    "optimizers",
    "history",
    "importances",
    "parallel_coordinates",
    "fractions",
    "FRACTION",
]

#: the trials' column of the data fraction (Fabolas' fidelity)
FRACTION = "config/data_fraction"

DPI = 110


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.4")


def _colors(names: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _label(results: Results) -> str:
    return f"{results.metric} ({results.mode})"


def best_so_far(results: Results, path: Path) -> Path:
    """Two panels: the running best vs wall seconds since the start, and vs cumulative trial-seconds."""
    df = results.best_so_far()
    fig = _figure(11, 4)
    axes = fig.subplots(1, 2, sharey=True)
    seen = df[np.isfinite(df["value"].astype(float))] if len(df) else df
    for ax, x, xlabel in (
        (axes[0], "wall_s", "wall time since start [s]"),
        (axes[1], "trial_seconds", "trial-seconds used [s]"),
    ):
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if seen.empty:
            _note(ax, f"no finite {results.metric} reported yet")
            continue
        ax.scatter(seen[x], seen["value"], s=10, color="0.65", label="reports", zorder=2)
        best = df[np.isfinite(df["best"].astype(float))]
        if len(best):
            xs = np.append(best[x].to_numpy(float), float(df[x].max()))
            ys = np.append(best["best"].to_numpy(float), float(best["best"].iloc[-1]))
            ax.step(xs, ys, where="post", color="C0", lw=2, label="best so far", zorder=3)
        ax.legend(loc="best", fontsize=8)
    axes[0].set_ylabel(_label(results))
    fig.suptitle(f"{results.exp_dir.name}: best {results.metric} so far", fontsize=11)
    return _save(fig, path)


def _finite(values: pd.Series) -> np.ndarray:
    v = pd.to_numeric(values, errors="coerce").to_numpy(float)
    return np.where(np.isfinite(v), v, np.nan)


def learning_curves(results: Results, path: Path) -> Path:
    """The metric vs training_iteration per trial; coloured by optimizer when several were run.
    A diverged or failed trial ends in a red cross at its last finite value."""
    fig = _figure(8, 5)
    ax = fig.subplots()
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("training_iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(results.metric)
    ax.grid(alpha=0.3)
    h = results.history
    if h.empty or results.metric not in h:
        _note(ax, "no reports")
        return _save(fig, path)
    opts = results.optimizers
    by_opt = len(opts) > 1
    colors = _colors(opts) if by_opt else {}
    status = dict(zip(results.trials["trial_id"], results.trials["status"], strict=True))
    ids = results.trials["trial_id"]
    trial_opt = dict(zip(ids, results.trials[OPTIMIZER].astype(str), strict=True)) if by_opt else {}
    labelled: set[str] = set()
    drawn = 0
    for i, (tid, g) in enumerate(h.groupby("trial_id", sort=True)):
        x = pd.to_numeric(g.get("training_iteration", pd.Series(range(1, len(g) + 1))), errors="coerce")
        y = _finite(g[results.metric])
        if by_opt:
            name = str(trial_opt.get(tid))
            color, label = colors.get(name, "0.5"), (name if name not in labelled else None)
            labelled.add(name)
        else:
            color, label = f"C{i % 10}", (tid if len(results.trials) <= 10 else None)
        ax.plot(x, y, marker=".", ms=4, lw=1.2, alpha=0.8, color=color, label=label)
        ok = np.isfinite(y)
        drawn += int(ok.any())
        if status.get(tid) in ("diverged", "failed") and ok.any():
            j = np.flatnonzero(ok)[-1]
            ax.plot(x.iloc[j], y[j], marker="x", ms=8, mew=2, color="red")
    if not drawn:
        _note(ax, f"no finite {results.metric} reported")
    if by_opt or len(results.trials) <= 10:
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=labels.__getitem__)
        ax.legend(
            [handles[k] for k in order],
            [labels[k] for k in order],
            fontsize=8,
            title="optimizer" if by_opt else "trial",
            loc="best",
        )
    ax.set_title(f"{results.exp_dir.name}: learning curves", fontsize=11)
    return _save(fig, path)


def _xlim(ax: Any, x: np.ndarray, log: bool, categories: int | None, domain: tuple | None = None) -> None:
    """x limits that hold every trial, also those drawn only as crosses on the bottom edge: the
    parameter's domain when known (and every value in it), else the values' range."""
    from matplotlib.ticker import MaxNLocator

    if categories is not None:
        ax.set_xlim(-0.5, categories - 0.5)
        return
    if domain is not None and domain[0] is not None and domain[1] is not None:
        x = np.append(x, domain)
    x = x[np.isfinite(x)]
    if x.size == 0 or x.min() == x.max():
        return
    if log:
        ax.set_xlim(x.min() / 1.4, x.max() * 1.4)
    else:
        pad = 0.05 * (x.max() - x.min())
        ax.set_xlim(x.min() - pad, x.max() + pad)
        ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(axis="x", labelsize=8)


def hyperparameters(results: Results, path: Path) -> Path:
    """One panel per searched hyperparameter: each trial's best value of the metric vs its setting."""
    from matplotlib.transforms import blended_transform_factory

    trials = results.trials
    params = results.params
    n = max(len(params), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(max(4.2 * ncols, 7.0), 3.4 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[len(params) :]:
        ax.set_axis_off()
    if not params:
        axes[0].set_axis_on()
        _note(
            axes[0],
            "no searched hyperparameters"
            if results.space is not None
            else "no searched hyperparameters\n(one trial, or every trial had the same config)",
        )
        axes[0].set_xticks([])
        axes[0].set_yticks([])
        return _save(fig, path)
    opts = results.optimizers
    colors = _colors(opts) if len(opts) > 1 else {}
    for ax, p in zip(axes, params, strict=False):
        sub = rows_of(trials, p)
        sub = sub[sub[p.column].notna()]
        y = _finite(sub[results.best_column])
        if p.numeric:
            x = pd.to_numeric(sub[p.column], errors="coerce").to_numpy(float)
            if p.log:
                ax.set_xscale("log")
        else:
            cats = sorted(sub[p.column].astype(str).unique())
            pos = {c: k for k, c in enumerate(cats)}
            x = sub[p.column].astype(str).map(pos).to_numpy(float)
            ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right", fontsize=8)
        _xlim(ax, x, p.log, None if p.numeric else len(cats), (p.low, p.high))
        ok = np.isfinite(y)
        if colors and OPTIMIZER in sub:
            for name in opts:
                m = ok & (sub[OPTIMIZER].astype(str) == name).to_numpy()
                if m.any():
                    ax.scatter(x[m], y[m], s=22, color=colors[name], label=name, alpha=0.85)
        else:
            ax.scatter(x[ok], y[ok], s=22, color="C0", alpha=0.85)
        if (~ok).any():
            tr = blended_transform_factory(ax.transData, ax.transAxes)
            ax.scatter(x[~ok], np.full((~ok).sum(), 0.03), transform=tr, marker="x", color="red", s=30)
        if not ok.any():
            _note(ax, f"no finite {results.metric}")
        ax.set_xlabel(p.name + (" (log scale)" if p.log else ""))
        ax.set_ylabel(f"best {results.metric}", fontsize=9)
        ax.grid(alpha=0.3)
    if colors:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", ls="", color=c, label=n) for n, c in colors.items()]
        fig.legend(handles=handles, title="optimizer", fontsize=8, loc="outside right upper")
    fig.suptitle(f"{results.exp_dir.name}: best {_label(results)} per trial vs hyperparameter", fontsize=11)
    return _save(fig, path)


def _mean_ci(d: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its 95 % Student-t interval (0 for a single value)."""
    from scipy import stats

    m = float(np.mean(d))
    if len(d) < 2:
        return m, 0.0
    return m, float(stats.t.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d)))


def optimizers(results: Results, path: Path) -> Path:
    """Per optimizer, over the trials that ran the full ``max_t`` epochs only (a scheduler's early-
    stopped trials are not compared with full ones): left, box and strip of the trials' best values;
    right, a dot plot of the mean with its 95 % t-interval (dot and bar) and the best (star)."""
    stats = optimizer_stats(results)
    fig = _figure(11, 4.4)
    left, right = fig.subplots(1, 2)
    names = list(stats["optimizer"]) if len(stats) else []
    colors = _colors(sorted(names))
    full = results.full_fidelity()
    data = []
    for name in names:
        v = _finite(full.loc[full[OPTIMIZER].astype(str) == name, results.best_column])
        data.append(v[np.isfinite(v)])
    pos = np.arange(1, len(names) + 1)
    nonempty = [k for k, d in enumerate(data) if len(d)]
    if nonempty:
        left.boxplot([data[k] for k in nonempty], positions=pos[nonempty], widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for k, (name, d) in enumerate(zip(names, data, strict=True)):
        if len(d):
            left.scatter(pos[k] + rng.uniform(-0.12, 0.12, len(d)), d, s=16, color=colors[name], zorder=3)
            m, h = _mean_ci(d)
            right.errorbar(pos[k], m, yerr=h, fmt="o", color=colors[name], capsize=5, ms=7, lw=2)
            b = float(d.min() if results.mode == "min" else d.max())
            right.scatter(pos[k], b, marker="*", s=120, color=colors[name], edgecolor="k", zorder=3)
            right.annotate(f"{b:.4g}", (pos[k], b), xytext=(8, 0), textcoords="offset points", fontsize=8)
    ticks = [f"{n}\n(n={len(d)})" for n, d in zip(names, data, strict=True)]
    for ax in (left, right):
        ax.set_xticks(pos, ticks, fontsize=8)
        ax.set_xlim(0.4, len(names) + 0.6)
        ax.grid(alpha=0.3, axis="y")
    left.set_ylabel(f"best {results.metric} per trial")
    left.set_title("spread over trials", fontsize=10)
    right.set_ylabel(f"{_label(results)}")
    right.set_title("mean ± 95 % t-interval (dot), best trial (star)", fontsize=10)
    if not nonempty:
        _note(left, f"no trial with a finite {results.metric} ran max_t = {results.max_t} epochs")
    fig.suptitle(
        f"{results.exp_dir.name}: optimizers at equal fidelity — the {len(full)} of {len(results.trials)} "
        f"trials that ran max_t = {results.max_t} epochs",
        fontsize=11,
    )
    return _save(fig, path)


def history(results: Results, path: Path) -> Path:
    """Optuna's optimization history: each trial's best value against its number (start order), the
    best so far as a step line; coloured by optimizer when several were run."""
    df = analysis.history(results)
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    ax.set_xlabel("trial (in the order trials started)")
    ax.set_ylabel(f"best {_label(results)} of the trial")
    ax.grid(alpha=0.3)
    ok = np.isfinite(df["value"].astype(float)).to_numpy() if len(df) else np.array([], bool)
    if not ok.any():
        _note(ax, f"no finite {results.metric} reported")
        return _save(fig, path)
    opts = results.optimizers
    if len(opts) > 1:
        colors = _colors(opts)
        for name in opts:
            m = ok & (df["optimizer"] == name).to_numpy()
            ax.scatter(df["number"][m], df["value"][m], s=18, color=colors[name], label=name, zorder=2)
    else:
        ax.scatter(df["number"][ok], df["value"][ok], s=18, color="C0", label="trial", zorder=2)
    ax.step(df["number"], df["best"], where="post", color="C3", lw=2, label="best so far", zorder=3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{results.exp_dir.name}: optimization history", fontsize=11)
    return _save(fig, path)


def importances(results: Results, path: Path) -> Path:
    """A horizontal bar per parameter: its permutation importance (``analysis.importances``)."""
    imp = analysis.importances(results)
    fig = _figure(7, max(2.5, 0.45 * len(imp) + 1.5))
    ax = fig.subplots()
    if imp.empty:
        _note(
            ax,
            f"no importances: fewer than {analysis.MIN_TRIALS_FOR_IMPORTANCE} trials with a finite "
            f"{results.metric},\nor no searched parameter, or every trial scored the same",
        )
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        y = np.arange(len(imp))[::-1]
        ax.barh(y, imp.to_numpy(), color="C0")
        ax.set_yticks(y, list(imp.index), fontsize=8)
        for k, v in zip(y, imp.to_numpy(), strict=True):
            ax.text(v, k, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, max(1.0, float(imp.max()) * 1.15))
        ax.set_xlabel("share of permutation importance (random forest on the trials)")
        ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"{results.exp_dir.name}: parameter importances for {results.metric}", fontsize=11)
    return _save(fig, path)


def parallel_coordinates(results: Results, path: Path) -> Path:
    """Every trial as a line over its parameters (each axis the parameter's domain, bottom to top; log
    domains in log scale) to the metric on the last axis, coloured by the trial's best value. A
    conditional parameter's axis is crossed only by the trials where it is active."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    t = results.trials
    params = list(results.params)
    if len(results.optimizers) > 1:
        from raytune_opt.report.params import Param

        params.insert(0, Param(OPTIMIZER, "optimizer", None, False, False))
    fig = _figure(max(7.0, 1.6 * (len(params) + 1)), 4.8)
    ax = fig.subplots()
    y = t[results.best_column].astype(float).to_numpy() if len(t) else np.array([])
    ok = np.isfinite(y)
    if not params or not ok.any():
        _note(ax, "no searched parameters" if not params else f"no finite {results.metric}")
        ax.set_xticks([])
        ax.set_yticks([])
        return _save(fig, path)
    lo, hi = float(y[ok].min()), float(y[ok].max())
    cols = [analysis.unit_values(t, p) for p in params]
    cols.append((y - lo) / (hi - lo) if hi > lo else np.full(len(y), 0.5))
    grid = np.column_stack(cols)
    norm = Normalize(lo, hi)
    cmap = colormaps["viridis" if results.mode == "max" else "viridis_r"]
    order = np.argsort(y if results.mode == "max" else -y)  # best drawn last, on top
    xs = np.arange(grid.shape[1])
    for i in order:
        if ok[i]:
            ax.plot(xs, grid[i], color=cmap(norm(y[i])), lw=1.2, alpha=0.8, marker="o", ms=3)
    for k, p in enumerate(params):
        ax.axvline(k, color="0.3", lw=0.8)
        if p.numeric:
            low = p.low if p.low is not None else np.nanmin(pd.to_numeric(t[p.column], errors="coerce"))
            high = p.high if p.high is not None else np.nanmax(pd.to_numeric(t[p.column], errors="coerce"))
            ax.text(k, -0.06, f"{low:.3g}", ha="center", va="top", fontsize=7)
            ax.text(k, 1.04, f"{high:.3g}", ha="center", va="bottom", fontsize=7)
        else:
            levels = analysis.levels(t, p)
            for j, c in enumerate(levels):
                ax.text(k + 0.04, j / max(len(levels) - 1, 1), c, fontsize=7, va="center")
    ax.axvline(len(params), color="0.3", lw=0.8)
    ax.set_xticks(xs, [p.name + (" (log)" if p.log else "") for p in params] + [results.metric], fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    ax.set_xlim(-0.3, len(params) + 0.3)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=f"best {results.metric}")
    ax.set_title(f"{results.exp_dir.name}: parallel coordinates (axes: the parameters' domains)", fontsize=11)
    return _save(fig, path)


def fractions(results: Results, path: Path) -> Path:
    """Two bar charts over the distinct data fractions of the trials (``config/data_fraction``):
    the number of trials at each, and the training spent at each in full-data-equivalents
    (``Σ`` fraction: a trial on the share ``s`` of the data costs ``s`` full-data trainings)."""
    s = pd.to_numeric(results.trials.get(FRACTION, pd.Series(dtype=float)), errors="coerce").dropna()
    fig = _figure(10, 3.8)
    axes = fig.subplots(1, 2)
    if s.empty:
        for ax in axes:
            _note(ax, "no trial with a data_fraction")
        return _save(fig, path)
    counts = s.round(6).value_counts().sort_index()
    labels = [f"{v:.4g}" for v in counts.index]
    spent = counts.index.to_numpy(float) * counts.to_numpy(float)
    for ax, values, ylabel in (
        (axes[0], counts.to_numpy(float), "trials"),
        (axes[1], spent, "training spent [full-data-equivalents]"),
    ):
        bars = ax.bar(labels, values, color="C0")
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=8)
        ax.set_xlabel("data fraction s")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"{results.exp_dir.name}: {len(s)} trials over {len(counts)} data fractions, "
        f"{spent.sum():.3g} full-data-equivalents",
        fontsize=11,
    )
    return _save(fig, path)
