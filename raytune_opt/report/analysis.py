"""The numbers behind the Optuna-style views: trial order, parameters on a unit scale, importances.

- :func:`history` — one row per trial in the order trials started: its best value and the best so far
  (Optuna's *optimization history*).
- :func:`unit_values` — a parameter's values on [0, 1] over its domain (log10 scale for a log domain,
  evenly spaced levels for a choice); NaN where the parameter is inactive (*parallel coordinates*).
- :func:`importances` — how much of the metric's variation across trials each parameter explains:
  **permutation importance** (scikit-learn's ``permutation_importance``) of a random forest
  (``RandomForestRegressor``, 200 trees, seeded) fitted on the trials' parameters → best value; the
  drop in the forest's R² when one column is shuffled, averaged over 20 shuffles, clipped at 0 and
  normalised to sum to 1. It stands in for Optuna's fANOVA (also a random forest on the trials;
  fANOVA decomposes its variance instead of shuffling). An inactive conditional parameter is encoded
  as -1, below its domain's [0, 1], so the trees can split on "absent".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from raytune_opt.report.params import OPTIMIZER, Param, rows_of
from raytune_opt.report.results import Results

__all__ = ["history", "levels", "unit_values", "importances", "MIN_TRIALS_FOR_IMPORTANCE"]

#: fewer finite trials than this: no importances (a forest on a handful of points says nothing)
MIN_TRIALS_FOR_IMPORTANCE = 5


def history(results: Results) -> pd.DataFrame:
    """Columns: number (0, 1, … in the order the trials started), trial_id, optimizer (or None),
    value (the trial's best value, NaN if none is finite) and best (the best so far over the trials
    that count for the best, :meth:`Results.eligible`)."""
    t = results.trials
    cols = ["number", "trial_id", "optimizer", "value", "best"]
    if t.empty:
        return pd.DataFrame(columns=cols)
    start = pd.Series(np.inf, index=t["trial_id"])
    h = results.history
    if not h.empty and "timestamp" in h:
        ts = pd.to_numeric(h["timestamp"], errors="coerce")
        total = pd.to_numeric(h.get("time_total_s", 0.0), errors="coerce").fillna(0.0)
        start.update((ts - total).groupby(h["trial_id"]).min())
    order = t.assign(_start=t["trial_id"].map(start).to_numpy()).sort_values(
        ["_start", "trial_id"], kind="stable"
    )
    value = order[results.best_column].astype(float).where(lambda v: np.isfinite(v))
    counted = value.where(order["trial_id"].isin(results.eligible()["trial_id"]))
    best = (counted.cummin() if results.mode == "min" else counted.cummax()).ffill()
    return pd.DataFrame(
        {
            "number": np.arange(len(order)),
            "trial_id": order["trial_id"].to_numpy(),
            "optimizer": order[OPTIMIZER].astype(str).to_numpy() if OPTIMIZER in order else None,
            "value": value.to_numpy(),
            "best": best.to_numpy(),
        }
    )


def levels(trials: pd.DataFrame, param: Param) -> list[str]:
    """A categorical parameter's values among the trials it applies to, sorted as text."""
    return sorted(rows_of(trials, param)[param.column].dropna().astype(str).unique())


def unit_values(trials: pd.DataFrame, param: Param) -> np.ndarray:
    """``param``'s value in each trial on [0, 1]: over the domain's [low, high] (in log10 for a log
    domain; the data's range for a guessed parameter), or a choice's level / (levels − 1); NaN where
    the parameter is inactive (its condition fails, or the trial has no value)."""
    active = trials.index.isin(rows_of(trials, param).index)
    raw = trials[param.column] if param.column in trials else pd.Series(np.nan, index=trials.index)
    if param.numeric:
        x = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        x = np.where(active, x, np.nan)
        lo, hi = param.low, param.high
        if lo is None or hi is None:
            lo, hi = (np.nanmin(x), np.nanmax(x)) if np.isfinite(x).any() else (0.0, 1.0)
        if param.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                x, lo, hi = np.log10(x), math.log10(lo), math.log10(hi)
        return (x - lo) / (hi - lo) if hi > lo else np.where(np.isfinite(x), 0.5, np.nan)
    names = levels(trials, param)
    pos = {c: k for k, c in enumerate(names)}
    x = raw.astype(str).map(pos).to_numpy(float)
    x = np.where(active & raw.notna().to_numpy(), x, np.nan)
    return x / (len(names) - 1) if len(names) > 1 else np.where(np.isfinite(x), 0.5, np.nan)


def importances(results: Results, seed: int = 0) -> pd.Series:
    """Each searched parameter's share of the explained variation (permutation importance of a random
    forest, see the module docstring), largest first; ``optimizer`` included when several were run.
    Empty when fewer than :data:`MIN_TRIALS_FOR_IMPORTANCE` trials have a finite value, or none
    varies. Computed once per loaded ``results`` (kept in ``results.derived``): the PNG and the
    HTML page show the same numbers."""
    key = ("importances", seed)
    if key not in results.derived:
        results.derived[key] = _importances(results, seed)
    return results.derived[key].copy()


def _importances(results: Results, seed: int) -> pd.Series:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    t = results.trials
    params = list(results.params)
    if len(results.optimizers) > 1:
        params.insert(0, Param(OPTIMIZER, "optimizer", None, False, False))
    if t.empty or not params:
        return pd.Series(dtype=float)
    y = t[results.best_column].astype(float).to_numpy()
    ok = np.isfinite(y)
    if ok.sum() < MIN_TRIALS_FOR_IMPORTANCE or np.ptp(y[ok]) == 0:
        return pd.Series(dtype=float)
    X = np.column_stack([np.nan_to_num(unit_values(t, p), nan=-1.0) for p in params])[ok]
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=1, random_state=seed).fit(X, y[ok])
    perm = permutation_importance(forest, X, y[ok], n_repeats=20, random_state=seed)
    imp = np.clip(perm.importances_mean, 0.0, None)
    imp = imp / imp.sum() if imp.sum() > 0 else imp  # all 0: no parameter explains anything
    return pd.Series(imp, index=[p.name for p in params]).sort_values(ascending=False, kind="stable")
