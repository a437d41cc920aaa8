"""Passes over a row-major float64 design matrix on the CPU (numba): the memory-bound half of an IRLS step.

Each IRLS / Newton iteration reads X (n x p, float64) for ``eta = X a + offset`` and again for the
Gram matrix ``X^T W X`` and the right-hand side ``X^T W r``. torch's CPU matrix–vector products on a
row-major float64 X run at a fraction of the memory bandwidth (its MKL gemv: ~18 ms for 200 000 x 100,
where one streaming read takes ~5–8 ms), and forming the float32 Gram matrix needed a float32 copy of X
first. These loops read X once per product, split into fixed blocks of rows over the threads:

- :func:`linear_predictor`: eta = offset + X a;
- :func:`weighted_rows`: ``out32 = float32(sqrt_w * X)`` (the rows of the float32 Gram matrix
  (sqrt_w X)^T (sqrt_w X), which torch's sgemm then forms) and ``X^T v`` in float64, in the same pass;
- :func:`rmatvec`: X^T v alone (gradients);
- :func:`canonical_pass`: for the two canonical families with a closed-form step (binomial-logit,
  Poisson-log), eta = offset + X a, mu = g^{-1}(eta) (clipped as the family clips it), the deviance
  D = 2 sum_i w_i (s(y_i) - k(y_i, mu_i)) and the IRLS right-hand side X^T W r = X^T (w (y - mu)) (for a
  canonical link W r = w (y - mu)), all from one read of X (each row is dotted with a, then, still in
  cache, added into X^T W r): an IRLS chord step costs one pass over X where the deviance and then
  ``rmatvec`` cost two, plus the dozen torch elementwise ops in between.

Sums over rows are taken per block of :data:`BLOCK` rows and the blocks' partial sums added in order,
so results do not depend on the number of threads. Dot products are reassociated (vectorised): they
differ from BLAS's in the last bits, as BLAS implementations differ among themselves.

Importing this module imports numba, and the first kernel call of a process loads the compiled code from
numba's on-disk cache (~1 s together, once per process; ``shard.kernels()``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from raytune_opt.optim._kernels import set_threads

__all__ = ["BLOCK", "CANONICAL", "canonical_pass", "linear_predictor", "rmatvec", "warm", "weighted_rows"]

BLOCK = 2048
_JIT = dict(parallel=True, nogil=True, cache=True, fastmath={"reassoc", "contract"})


@njit(**_JIT)
def _linear_predictor(X, beta, offset, out):  # noqa: ANN001
    n, p = X.shape
    for i in prange(n):
        s = 0.0
        for j in range(p):
            s += X[i, j] * beta[j]
        out[i] = offset[i] + s


@njit(**_JIT)
def _weighted_rows(X, sqrt_w, v, out32, partial):  # noqa: ANN001
    n, p = X.shape
    for k in prange(partial.shape[0]):
        acc = partial[k]
        acc[:] = 0.0
        for i in range(k * BLOCK, min(n, (k + 1) * BLOCK)):
            si = sqrt_w[i]
            vi = v[i]
            for j in range(p):
                x = X[i, j]
                out32[i, j] = np.float32(x * si)
                acc[j] += vi * x


@njit(**_JIT)
def _rmatvec(X, v, partial):  # noqa: ANN001
    n, p = X.shape
    for k in prange(partial.shape[0]):
        acc = partial[k]
        acc[:] = 0.0
        for i in range(k * BLOCK, min(n, (k + 1) * BLOCK)):
            vi = v[i]
            for j in range(p):
                acc[j] += vi * X[i, j]


CANONICAL = {("binomial", "logit"): 0, ("poisson", "log"): 1}  # (family, link) -> canonical_pass's kind


@njit(**_JIT)
def _canonical_pass(X, beta, offset, y, w, sat, kind, lo, hi, eta, mu, partial, dev):  # noqa: ANN001
    n, p = X.shape
    for k in prange(partial.shape[0]):
        start, stop = k * BLOCK, min(n, (k + 1) * BLOCK)
        for i in range(start, stop):  # eta over the block (its rows stay in the core's cache)
            s = 0.0
            for j in range(p):
                s += X[i, j] * beta[j]
            eta[i] = offset[i] + s
        d = 0.0
        for i in range(start, stop):  # mu, the deviance's kernel and v = w (y - mu), in place of eta's copy
            e, yi = eta[i], y[i]
            if kind == 0:  # binomial, logit: k = y log mu + (1 - y) log(1 - mu) = y eta - softplus(eta)
                t = np.exp(-abs(e))
                m = 1.0 / (1.0 + t) if e >= 0.0 else t / (1.0 + t)
                if lo <= m <= hi:
                    ker = yi * e - (max(e, 0.0) + np.log1p(t))
                else:  # mu clipped into [lo, hi]: the kernel at the clipped mu
                    m = min(max(m, lo), hi)
                    ker = yi * np.log(m) + (1.0 - yi) * np.log1p(-m)
            else:  # poisson, log: mu = exp(eta) >= lo; k = y log mu - mu
                m = np.exp(e)
                if m >= lo:
                    ker = yi * e - m
                else:
                    m = lo
                    ker = yi * np.log(m) - m
            mu[i] = m
            d += w[i] * (sat[i] - ker)
        dev[k] = d
        acc = partial[k]
        acc[:] = 0.0
        i = start
        while i + 4 <= stop:  # X^T v over the block, four rows at a time (a quarter of acc's loads/stores)
            v0, v1 = w[i] * (y[i] - mu[i]), w[i + 1] * (y[i + 1] - mu[i + 1])
            v2, v3 = w[i + 2] * (y[i + 2] - mu[i + 2]), w[i + 3] * (y[i + 3] - mu[i + 3])
            for j in range(p):
                acc[j] += v0 * X[i, j] + v1 * X[i + 1, j] + v2 * X[i + 2, j] + v3 * X[i + 3, j]
            i += 4
        while i < stop:
            vi = w[i] * (y[i] - mu[i])
            for j in range(p):
                acc[j] += vi * X[i, j]
            i += 1


def _partial(X: np.ndarray) -> np.ndarray:
    return np.empty((-(-X.shape[0] // BLOCK), X.shape[1]))


def linear_predictor(X: np.ndarray, beta: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """offset + X beta."""
    set_threads()
    out = np.empty(X.shape[0])
    _linear_predictor(X, beta, offset, out)
    return out


def weighted_rows(X: np.ndarray, sqrt_w: np.ndarray, v: np.ndarray, out32: np.ndarray) -> np.ndarray:
    """Fill ``out32`` with float32(sqrt_w[:, None] * X) and return X^T v (float64), in one pass over X."""
    set_threads()
    partial = _partial(X)
    _weighted_rows(X, sqrt_w, v, out32, partial)
    return partial.sum(axis=0)


def rmatvec(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X^T v (float64)."""
    set_threads()
    partial = _partial(X)
    _rmatvec(X, v, partial)
    return partial.sum(axis=0)


def canonical_pass(
    X: np.ndarray,
    beta: np.ndarray,
    offset: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    sat: np.ndarray,
    kind: int,
    lo: float,
    hi: float,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(eta, mu, D, X^T (w (y - mu))) in one pass over X for the family ``kind`` (:data:`CANONICAL`).

    eta = offset + X a; mu = min(max(g^{-1}(eta), lo), hi); D = 2 sum_i w_i (sat_i - k(y_i, mu_i)) with
    ``sat`` = s(y) (``Family.saturated``) and k the family's kernel (``Family.kernel``).
    """
    set_threads()
    n = X.shape[0]
    eta, mu = np.empty(n), np.empty(n)
    partial = _partial(X)
    dev = np.empty(partial.shape[0])
    _canonical_pass(X, beta, offset, y, w, sat, kind, lo, hi, eta, mu, partial, dev)
    return eta, mu, 2.0 * float(dev.sum()), partial.sum(axis=0)


def warm() -> None:
    """Load every kernel (from numba's cache, or compile it) by calling it once on a tiny problem."""
    X = np.zeros((3, 2))
    z = np.zeros(3)
    linear_predictor(X, np.zeros(2), z)
    weighted_rows(X, z, z, np.empty((3, 2), np.float32))
    rmatvec(X, z)
    for kind in CANONICAL.values():
        canonical_pass(X, np.zeros(2), z, z, z, z, kind, 1e-300, 1.0)
