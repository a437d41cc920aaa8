"""Complete and quasi-complete separation in binomial regression, found by a linear program.

The maximum-likelihood coefficients of a binomial GLM exist (are finite) unless some direction b != 0
separates the outcomes: s_i x_i^T b >= 0 for every row with y_i in {0, 1} (s_i = 2 y_i - 1) and
x_i^T b = 0 for every row with 0 < y_i < 1. Then the likelihood keeps growing along b and every solver
marches its coefficients to infinity. The linear program

    maximise sum_i s_i x_i^T b   s.t.  s_i x_i^T b >= 0 (binary rows),  x_i^T b = 0 (fractional rows),
                                       -1 <= b_j <= 1

(Albert & Anderson 1984; Konis 2007) has optimum 0 exactly when no such direction exists. Rows with
s_i x_i^T b > 0 at the optimum are perfectly predicted. A second program (maximise t with
s_i x_i^T b >= t on every binary row) tells complete separation (t > 0) from quasi-complete.
"""

from __future__ import annotations

import numpy as np

from raytune_opt.errors import ConfigError

__all__ = ["find_separation", "check_separation"]


def _scaled_rows(
    X: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What both linear programs start from: the mask of rows with positive weight, the column scales
    (max |x|, 1 for a zero column), those rows scaled, which of them are binary (y 0 or 1) and the
    binary rows' signs (+1 for y = 1, -1 for y = 0)."""
    keep = w > 0
    X, y = X[keep], y[keep]
    colscale = np.abs(X).max(axis=0)
    colscale[colscale == 0] = 1.0
    binary = (y == 0) | (y == 1)
    return keep, colscale, X / colscale, binary, np.where(y[binary] == 1, 1.0, -1.0)


def find_separation(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A separating direction b and the mask of perfectly predicted rows, or None when there is none."""
    from scipy.optimize import linprog

    keep, colscale, Xs, binary, s = _scaled_rows(X, y, w)
    A_ub = -(s[:, None] * Xs[binary])  # -s_i x_i^T b <= 0
    A_eq = Xs[~binary] if (~binary).any() else None
    b_eq = np.zeros(int((~binary).sum())) if A_eq is not None else None
    c = A_ub.sum(axis=0)  # minimise -sum s_i x_i^T b
    res = linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(A_ub.shape[0]),
        A_eq=A_eq,
        b_eq=b_eq,
        bounds=[(-1.0, 1.0)] * Xs.shape[1],
        method="highs",
    )
    if res.status != 0 or -res.fun <= 1e-6:
        return None
    margins = -(A_ub @ res.x)
    predicted = np.zeros(keep.shape[0], dtype=bool)
    idx = np.flatnonzero(keep)[binary]
    predicted[idx] = margins > 1e-7
    if not predicted.any():
        return None
    return res.x / colscale, predicted


def _complete(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> bool:
    """Is the separation complete: max t s.t. s_i x_i^T b >= t on every binary row, |b_j| <= 1, is t > 0?"""
    from scipy.optimize import linprog

    _, _, Xs, binary, s = _scaled_rows(X, y, w)
    p = Xs.shape[1]
    A_ub = np.hstack([-(s[:, None] * Xs[binary]), np.ones((int(binary.sum()), 1))])  # t - s x^T b <= 0
    A_eq = np.hstack([Xs[~binary], np.zeros((int((~binary).sum()), 1))]) if (~binary).any() else None
    b_eq = np.zeros(A_eq.shape[0]) if A_eq is not None else None
    c = np.zeros(p + 1)
    c[-1] = -1.0
    res = linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(A_ub.shape[0]),
        A_eq=A_eq,
        b_eq=b_eq,
        bounds=[(-1.0, 1.0)] * p + [(0.0, 1.0)],
        method="highs",
    )
    return res.status == 0 and -res.fun > 1e-7


def check_separation(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
    """Raise ``ConfigError`` when the binomial MLE does not exist because of (quasi-)complete separation."""
    found = find_separation(X, y, w)
    if found is None:
        return
    b, predicted = found
    binary_rows = int((((y == 0) | (y == 1)) & (w > 0)).sum())
    complete = _complete(X, y, w)
    kind = "complete" if complete else "quasi-complete"
    n_pred = binary_rows if complete else int(predicted.sum())
    cols = np.flatnonzero(np.abs(b) > 1e-8 * np.abs(b).max()).tolist()
    raise ConfigError(
        f"{kind} separation in the binomial regression: {n_pred} of {binary_rows} rows are predicted "
        f"perfectly along a direction using columns {cols[:10]}{'...' if len(cols) > 10 else ''}, so the "
        "maximum-likelihood coefficients are infinite; drop or merge those columns, or pass alpha > 0 "
        "(L2 penalty)"
    )
