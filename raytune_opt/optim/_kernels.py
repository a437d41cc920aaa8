"""Single-pass CPU kernels (numba) for the update rules torch has no fused kernel for: Lion and RMSProp.

A foreach rule of k elementwise ops makes k passes over memory; these loops read each parameter, its
gradient and its buffers once and write the parameter and buffers once — Lion 20 bytes a float32
parameter, RMSProp 20 (24 with momentum) — split over ``torch.get_num_threads()`` threads
(``numba.prange`` over chunks of every tensor of the step: one call and one fork-join per step however
many tensors, as torch's fused multi-tensor kernels; the loops address the tensors' memory directly).
Each wrapper has the signature of its optimizer's foreach rule (``lion_update``, ``rmsprop_update``) so
the dispatcher (``optim._dispatch``) swaps one for the other; the tensors must
be contiguous and of one dtype, float32 or float64, on the CPU.

The loops compute the same equations with strict IEEE arithmetic (no fast-math), in the tensors' dtype:
the coefficients (1 − β, 1 − ηλ, …) are rounded to that dtype once per step, as torch's scalar ops do,
so results agree with the foreach rule to rounding (not bit for bit: ``lerp`` and ``addcdiv`` round
differently from the products written here).

Importing this module imports numba (~0.3 s) and starts its threads (:func:`_start_threads`), and the
first call of a kernel in a process loads its compiled code from numba's on-disk cache (~0.5 s; ~2 s to
compile on a cold cache): the optimizers
take this path only for parameters large enough to pay that back (``_dispatch.KERNEL_MIN_TOTAL``)
or when asked to (``fused=True``).
"""

from __future__ import annotations

import os

import numba
import numpy as np
import torch
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from torch import Tensor

__all__ = ["lion_update", "rmsprop_update", "set_threads"]

_JIT = dict(parallel=True, nogil=True, cache=True)


@njit(**_JIT)
def _touch(x):  # noqa: ANN001
    for i in prange(x.shape[0]):
        x[i] = 0.0


def _start_threads() -> None:
    """Start numba's thread pool with idle threads that sleep (``OMP_WAIT_POLICY=PASSIVE``, read once by the
    OpenMP runtime numba loads now), unless the user chose a policy.

    numba's OpenMP runtime is its own, beside torch's: by default its threads spin for milliseconds after
    each kernel, on the cores torch's next ops need — measured on 2 cores: an IRLS step's torch matrix
    product and elementwise ops ran 2–10x slower right after a kernel. Kernels here run for milliseconds,
    so waking sleeping threads (microseconds) costs nothing.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        _touch(np.zeros(1))
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        _touch(np.zeros(1))
    finally:
        del os.environ["OMP_WAIT_POLICY"]


_start_threads()
CHUNK = 1 << 16
"""Elements per work item: every tensor is cut into chunks of at most this many, and the chunks of all
the tensors of a step are shared among the threads (one fork-join per step, as torch's fused kernels)."""


@intrinsic
def _pointer(typingctx, address):  # noqa: ANN001
    """An int64 address as a ``void*`` (to view it with ``numba.carray``)."""

    def codegen(context, builder, signature, args):  # noqa: ANN001
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@njit(inline="always")
def _view(chunks, j, k, like):  # noqa: ANN001
    """Buffer ``k`` of chunk ``j`` (row ``j`` of the (address…, start, stop) table) as a 1-D array."""
    n = chunks[j, -1] - chunks[j, -2]
    return numba.carray(_pointer(chunks[j, k] + chunks[j, -2] * like.itemsize), n, like.dtype)


@njit(**_JIT)
def _lion(chunks, like, sign_g, lr, decay, beta1, one_minus_beta1, beta2, one_minus_beta2):  # noqa: ANN001
    """c ← β₁ m + (1 − β₁) g ; θ ← (1 − ηλ) θ − η sgn(c) ; m ← β₂ m + (1 − β₂) g."""
    for j in prange(chunks.shape[0]):
        p, g, m = _view(chunks, j, 0, like), _view(chunks, j, 1, like), _view(chunks, j, 2, like)
        for i in range(p.shape[0]):
            gi = sign_g * g[i]
            mi = m[i]
            c = beta1 * mi + one_minus_beta1 * gi
            p[i] = decay * p[i] - lr * np.sign(c)
            m[i] = beta2 * mi + one_minus_beta2 * gi


@njit(**_JIT)
def _rmsprop(chunks, like, sign_g, weight_decay, lr, beta, one_minus_beta, eps, momentum):  # noqa: ANN001
    """g ← ±g + λ a ; v ← β v + (1 − β) g² ; a ← a − α g / √(v + ε)
    (with a fourth buffer u: u ← γ u + α g / √(v + ε) ; a ← a − u)."""
    with_u = chunks.shape[1] == 6
    for j in prange(chunks.shape[0]):
        p, g, v = _view(chunks, j, 0, like), _view(chunks, j, 1, like), _view(chunks, j, 2, like)
        u = _view(chunks, j, 3 if with_u else 2, like)
        for i in range(p.shape[0]):
            pi = p[i]
            gi = sign_g * g[i]
            if weight_decay != 0:
                gi = gi + weight_decay * pi
            vi = beta * v[i] + one_minus_beta * (gi * gi)
            v[i] = vi
            step = lr * (gi / np.sqrt(vi + eps))
            if with_u:
                step = momentum * u[i] + step
                u[i] = step
            p[i] = pi - step


def _chunks(lists: tuple[list[Tensor], ...]) -> np.ndarray:
    """The work table: one row (address of each list's tensor…, start, stop) per chunk of ≤ CHUNK elements.

    The tensors must be contiguous, on the CPU, of one dtype; the caller keeps them alive during the call.
    """
    numel = np.fromiter((t.numel() for t in lists[0]), np.int64, len(lists[0]))
    addresses = np.array([[t.data_ptr() for t in row] for row in zip(*lists, strict=True)], np.int64)
    per_tensor = -(-numel // CHUNK)
    tensor = np.repeat(np.arange(numel.size), per_tensor)
    start = (np.arange(tensor.size) - np.repeat(np.cumsum(per_tensor) - per_tensor, per_tensor)) * CHUNK
    stop = np.minimum(start + CHUNK, numel[tensor])
    return np.column_stack([addresses[tensor], start, stop])


def set_threads(n: int | None = None) -> None:
    """Run this thread's numba kernels on ``n`` threads (default: as many as torch's intra-op pool), capped
    at the size of numba's own pool; numba's setting is per calling thread, so every caller sets it
    before its kernels (the optimizers' dispatcher, ``_dispatch.run_kernel``, does)."""
    n = max(1, min(torch.get_num_threads() if n is None else n, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


def _run(kernel, lists: tuple[list[Tensor], ...], maximize: bool, *scalars: float) -> None:  # noqa: ANN001
    """Run ``kernel`` over the chunks of ``lists`` with the sign of g (−1 with ``maximize``) and ``scalars``
    rounded to the tensors' dtype (one compiled loop per dtype, selected by an empty array of it), on the
    threads set by :func:`set_threads`."""
    like = np.empty(0, dtype=np.float32 if lists[0][0].dtype == torch.float32 else np.float64)
    f = like.dtype.type
    kernel(_chunks(lists), like, f(-1.0 if maximize else 1.0), *map(f, scalars))


def lion_update(
    params: list[Tensor],
    grads: list[Tensor],
    m: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """Lion's step (``lion.lion_update``'s equation) on every tensor in one pass."""
    scalars = (lr, 1.0 - lr * weight_decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2)
    _run(_lion, (params, grads, m), maximize, *scalars)


def rmsprop_update(
    params: list[Tensor],
    grads: list[Tensor],
    v: list[Tensor],
    u: list[Tensor] | None = None,
    *,
    lr: float,
    beta: float,
    eps: float,
    momentum: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """RMSProp's step (``rmsprop.rmsprop_update``'s equation) on every tensor in one pass."""
    lists = (params, grads, v) if u is None else (params, grads, v, u)
    _run(_rmsprop, lists, maximize, weight_decay, lr, beta, 1.0 - beta, eps, momentum)
