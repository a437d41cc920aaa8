"""The rows of a regression and the sums over them that every solver step needs.

A :class:`Shard` holds ``X`` (n x p), ``y``, the prior weights ``w`` and the ``offset`` of some rows. Each
method returns *sums over its rows* — p x p matrices, p-vectors and scalars — so that the sums of several
shards (one per Ray worker, see ``distributed.py``) equal the sums over all rows, and every solver in
``irls.py`` / ``robust.py`` is written once for one or many shards.

The hot path is :meth:`Shard.irls_pieces`: one pass over X gives ``eta = X a + offset``, then elementwise
work, then the Gram matrix ``X^T W X = (W^{1/2} X)^T (W^{1/2} X)`` formed in a reused buffer. On the
CPU that product is numpy's ``A.T @ A`` (BLAS ``syrk``: half the flops of torch's gemm) with OpenBLAS at
one thread, over two row halves on two threads of ours (:func:`syrk`): on two threads OpenBLAS's pool
spun against torch's OpenMP pool and was 5-10x slower on a loaded 2-core machine, while one thread took
about half the CPU time of torch's two-thread gemm there.

On the CPU, for a float64 X of at least :data:`KERNEL_MIN_ELEMENTS` elements (64 MB), the passes over X —
eta, the float32 rows of the Gram matrix together with ``X^T W r``, and ``X^T v`` — run as numba loops
(``_kernels``: one read of X each, where torch's float64 matrix–vector products run at a fraction of the
memory bandwidth): 2–3x faster fits once loaded. :func:`kernels` loads them on the first such fit of a
process (~1 s: numba's imports; loading them in a background thread instead slowed that fit more, as the
imports hold the GIL), so every fit of the same data takes the same path and gives the same bits.

Threads: the O(n p) passes over X (the Gram matrix, ``X a``, ``X^T v``) run on torch's intra-op threads;
the O(n) elementwise work in between (mean, weights, residuals, deviance: a dozen small ops an iteration)
runs on one thread while the shard has at most :data:`SERIAL_MAX_ROWS` rows. Each multi-threaded torch op is
a fork-join; at 200 000 rows an op is ~1 ms of work, so threads save little on an idle machine, while on a
busy one every join waits for the slowest thread to be scheduled again (measured: a Poisson deviance
evaluation took 80-95 ms at 2 threads against 6-10 ms at 1 on a loaded 2-core machine).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np
import torch

from raytune_opt.glm.families import _TINY, Family

__all__ = [
    "KERNEL_MIN_ELEMENTS",
    "SERIAL_MAX_ROWS",
    "SMALL_MATRIX",
    "Pieces",
    "Shard",
    "free_buffers",
    "kernels",
    "one_thread",
]

Pieces = tuple  # a tuple of tensors / floats, summed elementwise across shards
SERIAL_MAX_ROWS = 1 << 20  # up to this many rows, a shard's O(n) elementwise work runs on one thread
SMALL_MATRIX = 512  # p x p factorisations up to this p run on one thread (a fork-join costs more)
KERNEL_MIN_ELEMENTS = 1 << 23  # CPU float64 shards with at least this many X elements use ``_kernels``


_SPARE: list[torch.Tensor] = []  # at most one flat float32 CPU buffer, kept between fits
_SPARE_LOCK = threading.Lock()


def _rows32(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """An uninitialised float32 tensor of ``shape`` for the Gram matrix's rows: on the CPU, taken from the
    buffer the last fit gave back (:func:`_give_back`) when it is large enough.

    A fresh 80 MB buffer (n = 200 000, p = 100) costs its page faults on first write and its unmapping
    when freed: ~15 % of a logistic fit's time. The spare is taken out while in use, so concurrent fits
    never share it; it holds at most one buffer (half the size of the largest X fitted), which
    :func:`free_buffers` releases.
    """
    numel = shape[0] * shape[1]
    if device.type == "cpu":
        with _SPARE_LOCK:
            if _SPARE and _SPARE[0].numel() >= numel:
                return _SPARE.pop()[:numel].view(shape)
    return torch.empty(shape, dtype=torch.float32, device=device)


def _give_back(buf: torch.Tensor | None) -> None:
    """Keep ``buf``'s storage as the spare (the larger of it and the current one)."""
    if buf is None or buf.device.type != "cpu":
        return
    flat = torch.empty(0, dtype=torch.float32).set_(buf.untyped_storage())
    with _SPARE_LOCK:
        if not _SPARE or _SPARE[0].numel() < flat.numel():
            _SPARE[:] = [flat]


def free_buffers() -> None:
    """Release the scratch buffer kept between fits (see :func:`_rows32`)."""
    with _SPARE_LOCK:
        _SPARE.clear()


@functools.cache
def _blas() -> object | None:
    """threadpoolctl's controller of the BLAS libraries loaded (numpy's OpenBLAS), or None without it."""
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController().select(user_api="blas")
    except Exception:  # noqa: BLE001 - threadpoolctl missing or unable to inspect the process
        return None


SYRK_SPLIT_ROWS = 1 << 14  # A^T A of at least this many rows is summed over two row halves (see syrk)


@functools.cache
def _second_thread(pid: int) -> ThreadPoolExecutor:
    """One worker thread of this process (``pid``: a forked child makes its own) for :func:`syrk`."""
    return ThreadPoolExecutor(1, thread_name_prefix="raytune-opt-syrk")


def syrk(A: np.ndarray) -> np.ndarray:
    """A^T A by numpy's BLAS ``syrk`` (half the flops of a general product: one triangle, mirrored), each
    BLAS call on one BLAS thread.

    From :data:`SYRK_SPLIT_ROWS` rows, A^T A = A_1^T A_1 + A_2^T A_2 over the two row halves, always (so
    the bits do not depend on the threads); with torch's intra-op pool at 2 threads or more the second
    half runs on a worker thread of ours at the same time (numpy releases the GIL), which halves the wall
    time at the same CPU time. OpenBLAS's own pool is never used: on two threads it spun against torch's
    OpenMP pool and was 5-10x slower on a loaded 2-core machine. Measured, 200 000 x 100 float32, idle
    2-core machine: one thread 25 ms; two halves on two threads 13-17 ms wall, 25-27 ms CPU; OpenBLAS at 2
    threads 27 ms wall, 55 ms CPU.
    """
    ctl = _blas()
    with contextlib.nullcontext() if ctl is None else ctl.limit(limits=1):
        if A.shape[0] < SYRK_SPLIT_ROWS:
            return A.T @ A
        top, bottom = A[: A.shape[0] // 2], A[A.shape[0] // 2 :]
        parallel = torch.get_num_threads() > 1
        other = _second_thread(os.getpid()).submit(lambda: bottom.T @ bottom) if parallel else None
        G = top.T @ top
        G += bottom.T @ bottom if other is None else other.result()
        return G


@functools.cache
def kernels() -> ModuleType | None:
    """``glm._kernels``, imported on first use (numba: ~1 s once per process), or None — with a warning,
    once — where numba cannot run (then torch's ops serve)."""
    try:
        from raytune_opt.glm import _kernels

        _kernels.warm()
    except Exception as err:  # numba missing or broken, or no writable cache directory
        warnings.warn(f"raytune_opt.glm: numba kernels unavailable ({err!r}); using torch ops", stacklevel=2)
        return None
    return _kernels


@contextlib.contextmanager
def one_thread(rows: torch.Tensor, limit: int = SERIAL_MAX_ROWS) -> Iterator[None]:
    """Run the enclosed torch ops on one intra-op thread when ``rows`` (a per-row tensor, or a p x p
    matrix with ``limit=SMALL_MATRIX``) is on the CPU with at most ``limit`` rows; else change nothing."""
    threads = torch.get_num_threads()
    if threads == 1 or rows.device.type != "cpu" or rows.shape[0] > limit:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Shard:
    """Rows ``X, y, w, offset`` of a GLM (or robust linear model) with family ``family``.

    ``w`` is the prior weight of each row in the sums (statsmodels' ``freq_weights * var_weights``);
    ``freq`` the frequency weights alone (None: all 1), which the log-likelihood needs apart:
    ll = sum_i f_i ll_i(y_i, mu_i, w_i / f_i).
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor,
        offset: torch.Tensor,
        family: Family | None,
        freq: torch.Tensor | None = None,
    ) -> None:
        self.X, self.y, self.w, self.offset, self.family, self.freq = X, y, w, offset, family, freq
        self._buf: torch.Tensor | None = None
        self._X32: torch.Tensor | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._buf32: torch.Tensor | None = None
        self._resid: tuple[torch.Tensor, torch.Tensor] | None = None
        self._dev: tuple[torch.Tensor, torch.Tensor] | None = None
        self._sat: tuple[torch.Tensor | None] | None = None  # the family's s(y), see Family.saturated
        self._Xn: np.ndarray | None = None  # X as a numpy array when the numba kernels apply to it
        if (
            X.device.type == "cpu"
            and X.dtype == torch.float64
            and X.is_contiguous()
            and X.numel() >= KERNEL_MIN_ELEMENTS
            and kernels() is not None
        ):
            self._Xn = X.numpy()

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def set_family(self, family: Family) -> Pieces:
        """Use ``family`` from now on (the negative binomial's alpha changes between fits); returns ()."""
        self.family = family
        self._cache = self._dev = self._sat = None
        return ()

    def release(self) -> None:
        """Free the Gram buffers, the float32 copy of X and the per-a caches (rebuilt when needed) but eta
        and mu at the last a (two n-vectors): a covariance asked for after the fit is formed at that a."""
        _give_back(self._buf32)
        self._buf = self._X32 = self._buf32 = None
        self._resid = self._dev = None

    def _serial(self) -> contextlib.AbstractContextManager:
        """Run the enclosed O(n) elementwise ops on one thread (CPU shards of <= SERIAL_MAX_ROWS rows)."""
        return one_thread(self.X)

    # -- shared kernels -------------------------------------------------------------------------------
    def _fast(self) -> ModuleType | None:
        """The numba kernels, if they apply to this shard's X."""
        return None if self._Xn is None else kernels()

    def linear(self, beta: torch.Tensor) -> torch.Tensor:
        """offset + X a."""
        k = self._fast()
        if k is None:
            return torch.addmv(self.offset, self.X, beta)
        offset = np.ascontiguousarray(self.offset.numpy())
        return torch.from_numpy(k.linear_predictor(self._Xn, np.ascontiguousarray(beta.numpy()), offset))

    def rmatvec(self, v: torch.Tensor) -> torch.Tensor:
        """X^T v."""
        k = self._fast()
        if k is None:
            return self.X.T @ v
        return torch.from_numpy(k.rmatvec(self._Xn, np.ascontiguousarray(v.numpy())))

    def gram_rhs(
        self, sqrt_w: torch.Tensor | None, v: torch.Tensor, low: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(:meth:`gram` (sqrt_w, low), X^T v): with the kernels and ``low``, both from one pass over X."""
        k = self._fast() if low and sqrt_w is not None else None
        if k is None:
            return self.gram(sqrt_w, low), self.rmatvec(v)
        if self._buf32 is None:
            self._buf32 = _rows32(self.X.shape, self.X.device)
        sw, vn = (np.ascontiguousarray(t.numpy()) for t in (sqrt_w, v))
        rows = self._buf32.numpy()
        rhs = k.weighted_rows(self._Xn, sw, vn, rows)
        return torch.from_numpy(syrk(rows)).to(self.X.dtype), torch.from_numpy(rhs)

    def gram(self, sqrt_w: torch.Tensor | None, low: bool = False) -> torch.Tensor:
        """X^T diag(sqrt_w^2) X, as (sqrt_w X)^T (sqrt_w X) in a reused buffer (X^T X for None).

        ``low``: in float32 from a float32 copy of X made once (half the time of float64), returned in
        X's dtype — an approximate Hessian for the early Newton/IRLS steps, see ``irls.irls``.
        """
        if sqrt_w is None:
            return self.X.T @ self.X
        if low and self.X.dtype == torch.float64:
            if self._X32 is None:  # numpy's conversion: ~3x torch's on the CPU
                self._X32 = (
                    torch.from_numpy(self.X.numpy().astype(np.float32))
                    if self.X.device.type == "cpu"
                    else self.X.to(torch.float32)
                )
            if self._buf32 is None:
                self._buf32 = _rows32(self.X.shape, self.X.device)
            Xs = torch.mul(self._X32, sqrt_w.to(torch.float32)[:, None], out=self._buf32)
            return (Xs.T @ Xs).to(self.X.dtype)
        if self.X.device.type == "cpu" and self.X.dtype == torch.float64 and self.X.shape[0] > 1:
            return self._gram64(sqrt_w)
        if self._buf is None:
            self._buf = torch.empty_like(self.X)
        Xs = torch.mul(self.X, sqrt_w[:, None], out=self._buf)
        return Xs.T @ Xs

    def _gram64(self, sqrt_w: torch.Tensor) -> torch.Tensor:
        """X^T diag(sqrt_w^2) X in float64 on the CPU: sum over two row halves h of :func:`syrk` of
        sqrt_w_h X_h, each formed in the float32 scratch buffer of the Gram matrix's rows (``_rows32``:
        n x p float32 holds n/2 x p float64), which is already mapped: a fresh n x p float64 buffer costs
        its page faults on every fit that asks for standard errors.
        """
        n, p = self.X.shape
        borrowed = self._buf32 is None  # after ``release`` (a covariance asked for after the fit)
        buf32 = _rows32(self.X.shape, self.X.device) if borrowed else self._buf32
        half = n // 2
        buf = buf32.reshape(-1)[: 2 * half * p].view(torch.float64).view(half, p)
        G = None
        for i in range(0, n, half):
            Xs = torch.mul(self.X[i : i + half], sqrt_w[i : i + half, None], out=buf[: min(half, n - i)])
            part = syrk(Xs.numpy())
            G = part if G is None else G + part
        if borrowed:
            _give_back(buf32)
        else:
            self._buf32 = buf32
        return torch.from_numpy(G)

    def _mean(self, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """eta = X a + offset and mu = g^{-1}(eta) (clipped into the domain of V), cached for the last a.

        IRLS evaluates the deviance at a new a and then, when it continues, its pieces at the same a:
        the cache saves that second pass over X.
        """
        if self._cache is not None and torch.equal(self._cache[0], beta):
            return self._cache[1], self._cache[2]
        eta = self.linear(beta)
        with self._serial():
            mu = self.family.clip_mu(self.family.link.inverse(eta))
        self._cache = (beta.clone(), eta, mu)
        return eta, mu

    def _deviance(self, mu: torch.Tensor) -> torch.Tensor:
        """D at the mean ``mu``, kept for the last ``mu`` (IRLS asks at a new a, then for its pieces)."""
        if self._dev is not None and self._dev[0] is mu:
            return self._dev[1]
        fam = self.family
        with self._serial():
            if self._sat is None:
                self._sat = (fam.saturated(self.y),)
            sat = self._sat[0]
            if sat is None:
                dev = (self.w * fam.unit_deviance(self.y, mu)).sum()
            else:  # d = 2 (s(y) - k(y, mu)), s computed once for these rows
                dev = 2.0 * (self.w * (sat - fam.kernel(self.y, mu))).sum()
        self._dev = (mu, dev)
        return dev

    # -- GLM ------------------------------------------------------------------------------------------
    def irls_pieces(self, beta: torch.Tensor | None, low: bool = False) -> Pieces:
        """(D, X^T W X, X^T W z) at statsmodels' mu_0 (``beta`` None), else (D, X^T W X, X^T W r) at ``beta``.

        W = diag(w / (V(mu) g'(mu)^2)), working residual r = (y - mu) g'(mu) and working response
        z = eta - offset + r: the seed's IRLS step a_new = (X^T W X)^{-1} X^T W z is
        a + (X^T W X)^{-1} X^T W r, the form used from a current ``beta`` (its fixed point X^T W r = 0 is
        the likelihood equation whatever the accuracy of X^T W X, which ``low`` forms in float32).
        """
        mu, weight, v = self._working(beta)
        with self._serial():
            sqrt_w = weight.sqrt()
        G, rhs = self.gram_rhs(sqrt_w, v, low)
        return self._deviance(mu), G, rhs

    def deviance_rhs(self, beta: torch.Tensor) -> Pieces:
        """(D(a), X^T W r at a): :meth:`deviance` and :meth:`irls_rhs` together, for IRLS's chord steps.

        With the numba kernels and a family of ``_kernels.CANONICAL`` (binomial-logit, Poisson-log: there
        W r = w (y - mu)), both come from one pass over X (``_kernels.canonical_pass``), which also leaves
        eta and mu cached for a's other pieces; otherwise they are the two methods' results.
        """
        k = self._fast()
        fam = self.family
        kind = None if k is None else k.CANONICAL.get((fam.name, fam.link.name))
        if kind is None or (self._cache is not None and torch.equal(self._cache[0], beta)):
            return self.deviance(beta) + self.irls_rhs(beta)
        if self._sat is None:
            self._sat = (fam.saturated(self.y),)
        lo, hi = (fam.eps, 1.0 - fam.eps) if kind == 0 else (_TINY, math.inf)
        y, w, off, sat = (
            np.ascontiguousarray(t.numpy()) for t in (self.y, self.w, self.offset, self._sat[0])
        )
        eta, mu, dev, rhs = k.canonical_pass(
            self._Xn, np.ascontiguousarray(beta.numpy()), off, y, w, sat, kind, lo, hi
        )
        mu_t = torch.from_numpy(mu)
        self._cache = (beta.clone(), torch.from_numpy(eta), mu_t)
        self._dev = (mu_t, torch.tensor(dev, dtype=self.X.dtype))
        return self._dev[1], torch.from_numpy(rhs)

    def irls_rhs(self, beta: torch.Tensor) -> Pieces:
        """(X^T W r,) of :meth:`irls_pieces` at ``beta``, without the Gram matrix (IRLS's chord steps)."""
        return (self.rmatvec(self._working(beta)[2]),)

    def _working(self, beta: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, IRLS weights W, W z or W r) at mu_0 (``beta`` None) or at ``beta``."""
        fam = self.family
        if beta is None:
            with self._serial():
                mu = fam.starting_mu(self.y)
                eta = fam.link(mu)
        else:
            eta, mu = self._mean(beta)
        with self._serial():
            gprime = fam.link.deriv(mu)
            weight = self.w / (fam.variance(mu) * gprime * gprime)
            r = (self.y - mu) * gprime
            v = weight * (r + eta - self.offset if beta is None else r)
        return mu, weight, v

    def deviance(self, beta: torch.Tensor) -> Pieces:
        """(D(a),) with D = sum_i w_i d(y_i, mu_i)."""
        return (self._deviance(self._mean(beta)[1]),)

    def newton_pieces(self, beta: torch.Tensor) -> Pieces:
        """(D, -d2l/da2, dl/da) of the quasi-log-likelihood l = -D/2 (observed information).

        With mu' = dmu/deta, mu'' = -g''/g'^3 and a = mu'/V: dl/da = X^T (w (y - mu) a) and
        -d2l/da2 = X^T diag(c) X, c = w (mu'^2 / V - (y - mu)(mu''/V - mu'^2 V'/V^2)); the second term
        vanishes for a canonical link, where Newton–Raphson is IRLS.
        """
        fam = self.family
        eta, mu = self._mean(beta)
        with self._serial():
            gp = fam.link.deriv(mu)
            V = fam.variance(mu)
            dmu = 1.0 / gp
            resid = self.y - mu
            s = self.w * resid * dmu / V
            c = dmu * dmu / V
            if not fam.is_canonical:
                d2mu = -fam.link.deriv2(mu) * dmu**3
                c = c - resid * (d2mu / V - dmu * dmu * fam.variance_deriv(mu) / (V * V))
            c = self.w * c
            if fam.is_canonical:
                c = c.sqrt()
        H = self.gram(c) if fam.is_canonical else self.X.T @ (c[:, None] * self.X)
        return self._deviance(mu), H, self.rmatvec(s)

    def loss_grad(self, beta: torch.Tensor) -> Pieces:
        """(D/2, grad of D/2) = (D/2, -X^T (w (y - mu) mu' / V)) for gradient-based solvers."""
        fam = self.family
        eta, mu = self._mean(beta)
        with self._serial():
            a = self.w * (self.y - mu) / (fam.variance(mu) * fam.link.deriv(mu))
        return 0.5 * self._deviance(mu), -self.rmatvec(a)

    def fit_stats(self, beta: torch.Tensor) -> Pieces:
        """(D, Pearson chi2 = sum w (y - mu)^2 / V(mu), sum w (y - mu)^2, count of rows with w > 0)."""
        mu = self._mean(beta)[1]
        with self._serial():
            r2 = self.w * (self.y - mu) ** 2
            stats = (r2 / self.family.variance(mu)).sum(), r2.sum(), float((self.w > 0).sum())
        return (self._deviance(mu), *stats)

    def loglike(self, beta: torch.Tensor, scale: float) -> Pieces:
        """(sum_i f_i ll_i(y_i, mu_i, w_i / f_i),) at dispersion ``scale`` over rows with w > 0."""
        mu = self._mean(beta)[1]
        with self._serial():
            keep = self.w > 0
            s = torch.as_tensor(scale, dtype=self.X.dtype, device=self.X.device)
            y, mu, w, f = self.y, mu, self.w, self.freq
            if not bool(keep.all()):  # (boolean indexing copies: only where some rows have w = 0)
                y, mu, w, f = y[keep], mu[keep], w[keep], None if f is None else f[keep]
            if f is None:
                return (self.family.loglike_obs(y, mu, w, s).sum(),)
            return ((f * self.family.loglike_obs(y, mu, w / f, s)).sum(),)

    def score_rows(self, beta: torch.Tensor) -> torch.Tensor:
        """Per row (gathered): [u, W] with u = w (y - mu) / (V(mu) g'(mu)) — the score is u x — and the
        IRLS weight W = w / (V g'^2); for the sandwich covariances (``fit``'s ``cov_type``)."""
        fam = self.family
        mu = self._mean(beta)[1]
        with self._serial():
            gp = fam.link.deriv(mu)
            V = fam.variance(mu)
            return torch.stack([self.w * (self.y - mu) / (V * gp), self.w / (V * gp * gp)], dim=1)

    def nb_alpha_pieces(self, beta: torch.Tensor) -> Pieces:
        """(sum w dl/dalpha, sum w d2l/dalpha2, X^T (w d2l/(deta dalpha))) of the negative binomial
        log-likelihood (``NegativeBinomial.alpha_derivs``; d/deta = mu' d/dmu)."""
        mu = self._mean(beta)[1]
        with self._serial():
            d1, d2, dmu = self.family.alpha_derivs(self.y, mu)
            cross = self.w * dmu / self.family.link.deriv(mu)
            return (self.w * d1).sum(), (self.w * d2).sum(), self.rmatvec(cross)

    def fisher_gram(self, beta: torch.Tensor) -> Pieces:
        """(X^T W X,) with the IRLS (expected-information) weights at ``beta``."""
        weight = self._working(beta)[1]
        with self._serial():
            sqrt_w = weight.sqrt()
        return (self.gram(sqrt_w),)

    def mean(self, beta: torch.Tensor) -> torch.Tensor:
        """mu(a) for these rows."""
        return self._mean(beta)[1]

    # -- robust linear model --------------------------------------------------------------------------
    def resid(self, beta: torch.Tensor) -> torch.Tensor:
        """r = y - offset - X a for these rows (gathered, not summed: the MAD scale needs all of them).

        Cached for the last a: robust IRLS gathers r at a new a, then asks for its weighted pieces there.
        """
        if self._resid is not None and torch.equal(self._resid[0], beta):
            return self._resid[1]
        r = self.linear(beta)
        with self._serial():
            r = torch.sub(self.y, r, out=r)
        self._resid = (beta.clone(), r)
        return r

    def wls_pieces(
        self, beta: torch.Tensor | None, scale: float = 1.0, norm=None, low: bool = False
    ) -> Pieces:
        """(X^T W X, X^T W (y - offset)) for ``beta`` None (prior weights W = diag(w): least squares),
        else (X^T W X, X^T W r) with W = diag(w * norm.weights(r / scale)), r = resid(beta).

        From a current a the weighted least-squares solution is a + (X^T W X)^{-1} X^T W r, whose fixed
        point X^T W r = 0 does not depend on the accuracy of X^T W X — which ``low`` forms in float32.
        """
        r = None if beta is None else self.resid(beta)
        with self._serial():
            if r is None:
                weight, v = self.w, self.w * (self.y - self.offset)
            else:
                weight = self.w * norm.weights(r / scale)
                v = weight * r
            sqrt_w = None if r is None and bool((self.w == 1).all()) else weight.sqrt()
        return self.gram_rhs(sqrt_w, v, low)

    def wls_rhs(self, beta: torch.Tensor, scale: float, norm) -> Pieces:
        """(X^T W r,) of :meth:`wls_pieces` without the Gram matrix."""
        r = self.resid(beta)
        with self._serial():
            v = self.w * norm.weights(r / scale) * r
        return (self.rmatvec(v),)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU float64 numpy copy of ``t``."""
    return t.detach().to("cpu", torch.float64).numpy().copy()


class Local:
    """All rows in this process: the one-shard backend (``distributed.RayShards`` is the many-shard one).

    ``sum(method, *args)`` returns the pieces of ``Shard.method`` summed over shards (here: one);
    ``gather(method, *args)`` concatenates per-row tensors in row order.
    """

    num_workers = 1

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def sum(self, method: str, *args) -> Pieces:
        return getattr(self.shard, method)(*args)

    def gather(self, method: str, *args) -> torch.Tensor:
        return getattr(self.shard, method)(*args)

    def close(self) -> None:
        """Drop the shard's buffers and caches (a result that computes its covariance later keeps the
        shard, not its n x p scratch space)."""
        self.shard.release()
