"""The report's figures, each one PNG from a :class:`~raytune_opt.report.results.Results`.

- :func:`best_so_far` — best value of the metric so far vs wall time and vs trial-seconds used.
- :func:`learning_curves` — the metric vs training_iteration, one line per trial.
- :func:`hyperparameters` — per searched hyperparameter, each trial's best value vs its setting
  (log axis when the values span more than two decades; ``<opt>.<hp>`` keys over that optimizer's
  trials only).
- :func:`optimizers` — per optimizer, the spread of its trials' best values and its best.

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

from raytune_opt.report.params import OPTIMIZER, rows_of, searched_params
from raytune_opt.report.results import Results
from raytune_opt.report.tables import optimizer_stats

__all__ = ["best_so_far", "learning_curves", "hyperparameters", "optimizers"]

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


def _xlim(ax: Any, x: np.ndarray, log: bool, categories: int | None) -> None:
    """x limits that hold every trial, also those drawn only as crosses on the bottom edge."""
    from matplotlib.ticker import MaxNLocator

    if categories is not None:
        ax.set_xlim(-0.5, categories - 0.5)
        return
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
    params = searched_params(trials) if len(trials) else []
    n = max(len(params), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(max(4.2 * ncols, 7.0), 3.4 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[len(params) :]:
        ax.set_axis_off()
    if not params:
        axes[0].set_axis_on()
        _note(axes[0], "no searched hyperparameters\n(one trial, or every trial had the same config)")
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
        _xlim(ax, x, p.log, None if p.numeric else len(cats))
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
        ax.set_xlabel(p.name + (" (log)" if p.log else ""))
        ax.set_ylabel(f"best {results.metric}", fontsize=9)
        ax.grid(alpha=0.3)
    if colors:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", ls="", color=c, label=n) for n, c in colors.items()]
        fig.legend(handles=handles, title="optimizer", fontsize=8, loc="outside right upper")
    fig.suptitle(f"{results.exp_dir.name}: best {_label(results)} per trial vs hyperparameter", fontsize=11)
    return _save(fig, path)


def optimizers(results: Results, path: Path) -> Path:
    """Left: box and strip of the trials' best values per optimizer; right: bar of each optimizer's best."""
    stats = optimizer_stats(results)
    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    names = list(stats["optimizer"]) if len(stats) else []
    colors = _colors(sorted(names))
    trials = results.trials
    data = []
    for name in names:
        v = _finite(trials.loc[trials[OPTIMIZER].astype(str) == name, results.best_column])
        data.append(v[np.isfinite(v)])
    pos = np.arange(1, len(names) + 1)
    nonempty = [k for k, d in enumerate(data) if len(d)]
    if nonempty:
        left.boxplot([data[k] for k in nonempty], positions=pos[nonempty], widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for k, (name, d) in enumerate(zip(names, data, strict=True)):
        if len(d):
            left.scatter(pos[k] + rng.uniform(-0.12, 0.12, len(d)), d, s=16, color=colors[name], zorder=3)
    left.set_xticks(pos, [f"{n}\n(n={len(d)})" for n, d in zip(names, data, strict=True)], fontsize=8)
    left.set_ylabel(f"best {results.metric} per trial")
    left.set_title("spread over trials", fontsize=10)
    left.grid(alpha=0.3, axis="y")
    best = stats["best"].to_numpy(float) if len(stats) else np.array([])
    ok = np.isfinite(best)
    right.bar(
        np.arange(len(names))[ok], best[ok], color=[colors[n] for n, o in zip(names, ok, strict=True) if o]
    )
    for k in np.flatnonzero(ok):
        right.text(k, best[k], f"{best[k]:.4g}", ha="center", va="bottom", fontsize=8)
    right.set_xticks(np.arange(len(names)), names, fontsize=8)
    right.set_ylabel(f"best {_label(results)}")
    right.set_title("best trial per optimizer (best first)", fontsize=10)
    right.grid(alpha=0.3, axis="y")
    if ok.any():
        lo, hi = float(best[ok].min()), float(best[ok].max())
        pad = 0.1 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1e-12)
        right.set_ylim(lo - 3 * pad, hi + pad)  # zoomed on the differences: bars start below the axis
    if not nonempty:
        _note(left, f"no finite {results.metric}")
    fig.suptitle(f"{results.exp_dir.name}: optimizers compared on {results.metric}", fontsize=11)
    return _save(fig, path)
