"""The statistics of a test evaluation over seeds and of a comparison of optimizers.

- :func:`seed_summary` — mean, sample standard deviation and Student's t confidence interval of the
  per-seed values: ``mean ± t_{1-α/2, n-1} · s / √n`` (``scipy.stats.t.interval``).
- :func:`pairwise_welch` — every pair of optimizers: Welch's t-test (unequal variances,
  ``scipy.stats.ttest_ind(a, b, equal_var=False)``), p-values Holm-corrected across the pairs
  (``statsmodels.stats.multitest.multipletests(method="holm")``), significant when the corrected
  p-value is below ``α = 1 - confidence``.

With repeated searches (``search.compare_repeats``) both take one value per search instead of one
per seed (:data:`SEARCH_INTERVAL_METHOD`, :data:`SEARCH_TEST_METHOD`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from raytune_opt.errors import ConfigError

__all__ = [
    "check_confidence",
    "seed_summary",
    "pairwise_welch",
    "INTERVAL_METHOD",
    "TEST_METHOD",
    "SEARCH_INTERVAL_METHOD",
    "SEARCH_TEST_METHOD",
]

INTERVAL_METHOD = "Student's t interval over seeds (n - 1 degrees of freedom)"
TEST_METHOD = "Welch's t-test (unequal variances) over seeds, Holm-corrected across pairs"
#: the same over repeated searches (``search.compare_repeats``): one value per search
SEARCH_INTERVAL_METHOD = (
    "Student's t interval over repeated searches, each search's value its best configuration's "
    "mean over seeds (n - 1 degrees of freedom)"
)
SEARCH_TEST_METHOD = "Welch's t-test (unequal variances) over repeated searches, Holm-corrected across pairs"


def check_confidence(confidence: Any, seeds: int) -> float:
    """``confidence`` as a float in (0, 1); a ``ConfigError`` when it is not, or when fewer than 2
    seeds cannot give an interval."""
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise ConfigError.invalid("confidence", confidence, "a level in (0, 1), e.g. 0.95")
    if seeds < 2:
        raise ConfigError.invalid(
            "seeds",
            seeds,
            f"at least 2 for a {confidence:.0%} confidence interval (one seed has no spread); "
            "ask for no interval (confidence None, --no-interval) to evaluate one seed",
        )
    return float(confidence)


def seed_summary(values: Sequence[float], confidence: float | None = 0.95) -> dict[str, Any]:
    """``{"n", "values", "mean", "std", "ci", "confidence", "interval"}`` of per-seed ``values``:
    ``std`` with ``ddof=1`` (``None`` for one value), ``ci`` = ``[low, high]`` of the Student's t
    interval (``None`` without ``confidence``; ``[mean, mean]`` when every seed gave the same value).
    Non-finite values (diverged seeds) make the mean and interval non-finite, as they should."""
    v = np.asarray([float(x) for x in values], dtype=float)
    n = len(v)
    if n == 0:
        raise ConfigError.invalid("values", [], "at least one per-seed value")
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else None
    ci = None
    if confidence is not None:
        check_confidence(confidence, n)
        from scipy import stats

        sem = float(stats.sem(v))
        if sem == 0.0:
            ci = [mean, mean]
        else:
            lo, hi = stats.t.interval(confidence, df=n - 1, loc=mean, scale=sem)
            ci = [float(lo), float(hi)]
    return {
        "n": n,
        "values": [float(x) for x in v],
        "mean": mean,
        "std": std,
        "ci": ci,
        "confidence": confidence,
        "interval": INTERVAL_METHOD if confidence is not None else None,
    }


def pairwise_welch(groups: Mapping[str, Sequence[float]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per pair ``(a, b)`` of ``groups`` (in the order given): ``a``, ``b``, ``diff`` (mean a −
    mean b), ``t``, ``p`` (Welch's two-sided), ``p_holm`` and ``significant`` (``p_holm < 1 -
    confidence``). A pair whose test is undefined (e.g. both groups constant) keeps its row with
    ``t``, ``p``, ``p_holm`` and ``significant`` all ``None``, and takes no part in the correction."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    alpha = 1.0 - confidence
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(groups, 2):
        x, y = np.asarray(groups[a], dtype=float), np.asarray(groups[b], dtype=float)
        if np.ptp(x) == 0 and np.ptp(y) == 0:  # no variance at all: the t statistic is undefined
            t, p = math.nan, math.nan
        else:
            res = stats.ttest_ind(x, y, equal_var=False)
            t, p = float(res.statistic), float(res.pvalue)
        rows.append({"a": a, "b": b, "diff": float(x.mean() - y.mean()), "t": t, "p": p})
    finite = [i for i, r in enumerate(rows) if math.isfinite(r["p"])]
    corrected = multipletests([rows[i]["p"] for i in finite], method="holm")[1] if finite else []
    for r in rows:
        r["p_holm"] = None
    for i, p in zip(finite, corrected, strict=True):
        rows[i]["p_holm"] = float(p)
    for r in rows:
        if r["p_holm"] is None:
            r["p"] = None
            r["t"] = None
            r["significant"] = None
        else:
            r["significant"] = bool(r["p_holm"] < alpha)
    return rows
