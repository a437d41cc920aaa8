"""Markdown tables of an experiment: the best trials, and one row per optimizer.

Both are plain GitHub markdown (pipes), readable as printed text at the end of a run and
rendered in ``report.md``. Numbers are shown with 4 significant digits.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt.report.params import OPTIMIZER, own_params
from raytune_opt.report.results import Results, load

__all__ = ["table", "optimizer_table", "optimizer_stats", "markdown", "fmt"]


def fmt(v: Any) -> str:
    """A table cell: floats to 4 significant digits, missing as ``-``."""
    if v is None:
        return "-"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table, columns padded to equal width so it reads well as plain text too."""
    cells = [[fmt(h) for h in header]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def table(results: Results | str | os.PathLike[str], top: int = 10) -> str:
    """The ``top`` best trials (by their best value of the metric), one line each: rank, trial,
    status, optimizer (when the config has one), its searched hyperparameters, best and last
    value of the metric, iterations and trial seconds. ``results`` may be an experiment directory."""
    if not isinstance(results, Results):
        results = load(results)
    ranked = results.ranked().head(top)
    params = results.params
    has_opt = OPTIMIZER in results.trials
    header = ["#", "trial", "status"] + (["optimizer"] if has_opt else [])
    header += ["hyperparameters", f"best {results.metric}", f"last {results.metric}", "iters", "time_s"]
    rows = []
    for rank, (_, row) in enumerate(ranked.iterrows(), start=1):
        hp = ", ".join(f"{k}={fmt(v)}" for k, v in own_params(row, params).items())
        last = row.get(results.metric)
        rows.append(
            [rank, row["trial_id"], row["status"]]
            + ([row.get(OPTIMIZER)] if has_opt else [])
            + [hp or "-", float(row[results.best_column]), last, int(row["iterations"]), row["time_total_s"]]
        )
    if not rows:
        return f"(no trials in {results.exp_dir})"
    return markdown(header, rows)


def optimizer_stats(results: Results) -> pd.DataFrame:
    """One row per optimizer: trials, finished, failed, diverged, best of the trials' best values
    (finite ones only) and the best trial; then, at equal fidelity (the trials that ran ``max_t``
    epochs, :meth:`Results.full_fidelity`), how many (``at_max_t``) and the median of their best
    values. Best optimizer first."""
    t = results.trials
    if OPTIMIZER not in t or t.empty:
        return pd.DataFrame()
    full = set(results.full_fidelity()["trial_id"])
    rows = []
    for name, group in t.groupby(t[OPTIMIZER].astype(str), sort=True):
        vals = group[results.best_column].astype(float)
        finite = vals[np.isfinite(vals)]
        best_idx = (finite.idxmin() if results.mode == "min" else finite.idxmax()) if len(finite) else None
        at_full = finite[group.loc[finite.index, "trial_id"].isin(full)]
        rows.append(
            {
                "optimizer": name,
                "trials": len(group),
                "finished": int((group["status"] == "finished").sum()),
                "failed": int((group["status"] == "failed").sum()),
                "diverged": int((group["status"] == "diverged").sum()),
                "best": float(finite.loc[best_idx]) if best_idx is not None else math.nan,
                "best_trial": group.loc[best_idx, "trial_id"] if best_idx is not None else None,
                "at_max_t": len(at_full),
                "median": float(at_full.median()) if len(at_full) else math.nan,
            }
        )
    df = pd.DataFrame(rows)
    return df.sort_values("best", ascending=results.mode == "min", na_position="last", kind="stable")


def optimizer_table(results: Results) -> str:
    """:func:`optimizer_stats` as a markdown table ('' when the config has no ``optimizer``)."""
    df = optimizer_stats(results)
    if df.empty:
        return ""
    header = list(df.columns)
    header[header.index("best")] = f"best {results.metric}"
    header[header.index("median")] = f"median {results.metric} at max_t"
    header[header.index("at_max_t")] = f"trials at max_t={results.max_t}"
    return markdown(header, df.itertuples(index=False, name=None))
