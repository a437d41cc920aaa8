"""Passes over a row-major float64 design matrix on the CPU (numba): the memory-bound half of an IRLS step.

Each IRLS / Newton iteration reads X (n x p, float64) for ``eta = X a + offset`` and again for the
Gram matrix ``X^T W X`` and the right-hand side ``X^T W r``. torch's CPU matrix–vector products on a
row-major float64 X run at a fraction of the memory bandwidth (its MKL gemv: ~18 ms for 200 000 x 100,
where one streaming read takes ~5–8 ms), and forming the float32 Gram matrix needed a float32 copy of X
first. These loops read X once per product, split into fixed blocks of rows over the threads:

- :func:`linear_predictor`: eta = offset + X a;
- :func:`weighted_rows`: ``out32 = float32(sqrt_w * X)`` (the rows of the float32 Gram matrix
  (sqrt_w X)^T (sqrt_w X), which torch's sgemm then forms) and ``X^T v`` in float64, in the same pass;
- :func:`rmatvec`: X^T v alone (IRLS chord steps, gradients).

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

__all__ = ["BLOCK", "linear_predictor", "rmatvec", "warm", "weighted_rows"]

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


def warm() -> None:
    """Load every kernel (from numba's cache, or compile it) by calling it once on a tiny problem."""
    X = np.zeros((3, 2))
    z = np.zeros(3)
    linear_predictor(X, np.zeros(2), z)
    weighted_rows(X, z, z, np.empty((3, 2), np.float32))
    rmatvec(X, z)
