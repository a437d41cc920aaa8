"""Robust linear regression (M-estimation) by IRLS with a MAD scale, as ``statsmodels.RLM``.

Minimise sum_i rho(r_i / s), r = y - offset - X a, by the seed's IRLS: W_k = diag(psi(u)/u) at
u = r_k / s_k, a_{k+1} = (X^T W_k X)^{-1} X^T W_k y, and s_{k+1} = MAD(r_{k+1}) = median|r| / Phi^{-1}(3/4)
(centre 0). The start is ordinary least squares. The defaults are statsmodels' (HuberT t = 1.345,
TukeyBiweight c = 4.685, ``scale_est='mad'``, ``update_scale=True``, ``conv='dev'`` with its deviance
sum rho(r / sigma2_w), sigma2_w = sum W r^2 / (n - p) the weighted residual variance of the last WLS, and
tol absolute), so the coefficients, scale and H1 standard errors are statsmodels'.

The norms (``u`` the standardised residual):

- ``huber``:    rho = u^2/2 (|u| <= t), t|u| - t^2/2 otherwise;   W = min(1, t/|u|)
- ``bisquare``: rho = c^2/6 (1 - (1 - (u/c)^2)^3) (|u| <= c), c^2/6; W = (1 - (u/c)^2)^2 inside, 0 outside
- ``cauchy``:   rho = c^2/2 log(1 + (u/c)^2), c = 2.3849;           W = 1 / (1 + (u/c)^2)
- ``l1``:       rho = |u|;                                           W = 1 / max(|u|, delta)
- ``seed``:     the seed's W = diag(1 / (u^2 + eps)); rho = log((u^2 + eps)/eps) / 2
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from raytune_opt.errors import ConfigError
from raytune_opt.glm.irls import SolverOutput, _solve, converged_by, small_step
from raytune_opt.glm.shard import SMALL_MATRIX, one_thread

__all__ = ["Norm", "HuberT", "TukeyBiweight", "Cauchy", "L1", "Seed", "NORMS", "get_norm", "mad", "rlm"]

_MAD_C = 0.6744897501960817  # Phi^{-1}(3/4)
LAZY_GRAM_STEP = 1e-3  # robust IRLS keeps its X^T W X once the steps are this short (relative)


class Norm:
    """A robust criterion rho with psi = rho', psi' and the IRLS weights W(u) = psi(u) / u."""

    name = ""

    def rho(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def psi(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def psi_deriv(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weights(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class HuberT(Norm):
    """Huber's T norm with threshold ``t`` (statsmodels' default 1.345)."""

    name = "huber"

    def __init__(self, t: float = 1.345) -> None:
        self.t = float(t)

    def rho(self, u):
        a = u.abs()
        return torch.where(a <= self.t, 0.5 * u * u, self.t * a - 0.5 * self.t**2)

    def psi(self, u):
        return u.clamp(-self.t, self.t)

    def psi_deriv(self, u):
        return (u.abs() <= self.t).to(u.dtype)

    def weights(self, u):
        a = u.abs()
        return torch.where(a <= self.t, torch.ones_like(u), self.t / a)


class TukeyBiweight(Norm):
    """Tukey's biweight (bisquare) with ``c`` (statsmodels' default 4.685)."""

    name = "bisquare"

    def __init__(self, c: float = 4.685) -> None:
        self.c = float(c)

    def _inside(self, u):
        return (u.abs() <= self.c).to(u.dtype)

    def rho(self, u):
        q = 1.0 - (u / self.c) ** 2
        return self.c**2 / 6.0 * (1.0 - q**3 * self._inside(u))

    def psi(self, u):
        q = 1.0 - (u / self.c) ** 2
        return u * q * q * self._inside(u)

    def psi_deriv(self, u):
        v = (u / self.c) ** 2
        return (1.0 - v) * (1.0 - 5.0 * v) * self._inside(u)

    def weights(self, u):
        q = 1.0 - (u / self.c) ** 2
        return q * q * self._inside(u)


class Cauchy(Norm):
    """The Cauchy (Lorentzian) norm with ``c`` (95 % efficiency at the normal: 2.3849)."""

    name = "cauchy"

    def __init__(self, c: float = 2.3849) -> None:
        self.c = float(c)

    def rho(self, u):
        return 0.5 * self.c**2 * torch.log1p((u / self.c) ** 2)

    def psi(self, u):
        return u / (1.0 + (u / self.c) ** 2)

    def psi_deriv(self, u):
        v = (u / self.c) ** 2
        return (1.0 - v) / (1.0 + v) ** 2

    def weights(self, u):
        return 1.0 / (1.0 + (u / self.c) ** 2)


class L1(Norm):
    """Least absolute deviations; ``delta`` bounds the weights 1/|u| near zero residuals.

    psi' = 0 almost everywhere, so the H1 standard errors are undefined (NaN) for this norm. IRLS for L1
    converges linearly and slowly (often several hundred iterations): raise ``max_iter``.
    """

    name = "l1"

    def __init__(self, delta: float = 1e-6) -> None:
        self.delta = float(delta)

    def rho(self, u):
        return u.abs()

    def psi(self, u):
        return torch.sign(u)

    def psi_deriv(self, u):
        return torch.zeros_like(u)

    def weights(self, u):
        return 1.0 / u.abs().clamp_min(self.delta)


class Seed(Norm):
    """The seed's robust weights W = diag(1 / (u^2 + eps)) (section 3.2, IRLS combined with LM).

    As an M-estimator: psi = u / (u^2 + eps), rho = log((u^2 + eps) / eps) / 2 — a Cauchy-type
    redescending norm with c = sqrt(eps), applied to MAD-standardised residuals. The default eps = 1 is
    "small" on that scale; eps -> 0 (the seed's literal stabiliser) makes the weights chase the rows fitted
    best and IRLS converge slowly (hundreds of iterations at eps = 0.01).
    """

    name = "seed"

    def __init__(self, eps: float = 1.0) -> None:
        self.eps = float(eps)

    def rho(self, u):
        return 0.5 * torch.log1p(u * u / self.eps)

    def psi(self, u):
        return u / (u * u + self.eps)

    def psi_deriv(self, u):
        u2 = u * u
        return (self.eps - u2) / (u2 + self.eps) ** 2

    def weights(self, u):
        return 1.0 / (u * u + self.eps)


NORMS: dict[str, type[Norm]] = {c.name: c for c in (HuberT, TukeyBiweight, L1, Cauchy, Seed)}


def get_norm(robust: str | Norm) -> Norm:
    """The norm named ``robust`` (or ``robust`` itself when a :class:`Norm`); ``ConfigError`` otherwise."""
    if isinstance(robust, Norm):
        return robust
    if not isinstance(robust, str) or robust not in NORMS:
        raise ConfigError.unknown("robust", robust, NORMS)
    return NORMS[robust]()


def mad(r: torch.Tensor) -> float:
    """median(|r|) / Phi^{-1}(3/4) (centre 0; the median averages the two middle values, as numpy's).

    On the CPU by numpy's selection (``np.median``, O(n), statsmodels' own computation); elsewhere by
    ``torch.quantile`` (a sort).
    """
    if r.device.type == "cpu":
        return float(np.median(np.abs(r.detach().numpy()))) / _MAD_C
    return float(torch.quantile(r.abs(), 0.5)) / _MAD_C


def _sm_deviance(norm: Norm, r: torch.Tensor, W: torch.Tensor, df_resid: int) -> float:
    """statsmodels' ``conv='dev'`` criterion: sum rho(r / sigma2_w), sigma2_w = sum W r^2 / (n - p)."""
    with one_thread(r):
        sigma2 = float((W * r * r).sum()) / df_resid
        return float(norm.rho(r / sigma2).sum())


def _criterion(norm: Norm, r: torch.Tensor, scale: float) -> float:
    """sum rho(r / scale)."""
    with one_thread(r):
        return float(norm.rho(r / scale).sum())


def rlm(
    backend, start: tuple, norm: Norm, n: int, p: int, max_iter: int, tol: float, damped: bool = False
) -> tuple[SolverOutput, float]:
    """Robust IRLS (``damped=False``) or the seed's IRLS-LM (``damped=True``); returns (output, scale).

    ``start`` = (X^T X, X^T y), the least-squares pieces. IRLS takes statsmodels' ``RLM.fit`` steps,
    each weighted least-squares solution written a + (X^T W X)^{-1} X^T W r from the current a
    (``Shard.wls_pieces``), whose fixed point X^T W r = 0 (the estimating equation) does not depend on
    the X^T W X used, only how fast it is reached. So X^T W X is formed in float32 (it changes a step by
    ~1e-7 cond(X^T W X) of its length), and once the steps are short (under ``LAZY_GRAM_STEP``
    relative, the weights then barely move) it is kept from the last iteration that formed it while
    each step at least halves the one before — those iterations cost two passes over X (``X a``,
    ``X^T W r``) instead of a Gram matrix. X^T X for the start and the covariance is float64.

    Stopping: statsmodels' rule, the change of its deviance sum rho(r / sigma2_w) at most ``tol``
    (absolute), or a step of at most tol (1 + max|a|) that halved the one before (the iteration then
    contracts, so a is within about that of the fixed point). statsmodels' absolute rule on a sum that
    grows with n alone would run the iteration to rounding at large n (17 iterations at n = 200 000,
    steps of 1e-15, where 9 reach the same coefficients to 1e-9).

    IRLS-LM takes Delta a = (J^T J + lambda I)^{-1} J^T W^{1/2} r with J = W^{1/2} X, accepting a step
    when sum rho(r / s) does not grow (lambda /= 10) and otherwise raising lambda ten-fold; it stops when
    that criterion changes by less than tol (|value| + 0.1).
    """
    G0, rhs0 = start
    beta = _solve(G0, rhs0)
    r = backend.gather("resid", beta)
    df_resid = n - p
    scale = mad(r)
    crit = _sm_deviance(norm, r, torch.ones_like(r), df_resid)
    history = [{"iter": 0, "criterion": crit, "scale": scale, "step": float("nan")}]
    converged = False
    n_iter = 0
    lam = 1e-3 * float(G0.diagonal().mean()) / max(n, 1)
    G: torch.Tensor | None = None
    step = prev_step = float("inf")
    while n_iter < max_iter:
        if scale == 0.0:
            warnings.warn(
                "robust fit: the MAD scale is 0 (a perfect fit of more than half the rows); stopping",
                RuntimeWarning,
                stacklevel=3,
            )
            break
        lazy = (
            not damped
            and G is not None
            and step <= LAZY_GRAM_STEP * (1.0 + float(beta.abs().max()))
            and step <= 0.5 * prev_step
        )
        if lazy:
            (g,) = backend.sum("wls_rhs", beta, scale, norm)  # g = X^T W r, with the last X^T W X
        else:
            G, g = backend.sum("wls_pieces", beta, scale, norm, True)
        if damped:
            obj = _criterion(norm, r, scale)
            eye = torch.eye(p, dtype=G.dtype, device=G.device)
            for _ in range(40):
                delta = _solve(G + lam * eye, g)
                r_t = backend.gather("resid", beta + delta)
                obj_t = _criterion(norm, r_t, scale)
                if obj_t <= obj:
                    break
                lam *= 10.0
            new, r_new = beta + delta, r_t
            lam /= 10.0
        else:
            new = beta + _solve(G, g)
            r_new = backend.gather("resid", new)
            with one_thread(r):
                W = norm.weights(r / scale)
        n_iter += 1
        prev_step, step = step, float((new - beta).abs().max())
        beta, r = new, r_new
        if damped:
            scale = mad(r)
            value = _criterion(norm, r, scale)
            done = converged_by(value, crit, tol)
        else:
            value = _sm_deviance(norm, r, W, df_resid)
            scale = mad(r)
            done = abs(value - crit) <= tol or (small_step(step, beta, tol) and step <= 0.5 * prev_step)
        crit = value
        history.append({"iter": n_iter, "criterion": value, "scale": scale, "step": step, "gram": not lazy})
        if done:
            converged = True
            break
    return SolverOutput(beta, G0, n_iter, converged, history), scale


def h1_cov(norm: Norm, r: torch.Tensor, scale: float, XtX: torch.Tensor, p: int) -> torch.Tensor:
    """statsmodels' H1 covariance: k^2 (sum psi^2 / (n - p)) s^2 / (mean psi')^2 (X^T X)^{-1},
    k = 1 + (p / n) var(psi') / mean(psi')^2, at the standardised residuals u = r / s."""
    n = r.shape[0]
    u = r / scale
    dpsi = norm.psi_deriv(u)
    m = float(dpsi.mean())
    if m == 0.0 or not math.isfinite(m):
        return torch.full((p, p), float("nan"), dtype=XtX.dtype, device=XtX.device)
    var_dpsi = float(dpsi.var(unbiased=False))
    k = 1.0 + p / n * var_dpsi / m**2
    ss_psi = float((norm.psi(u) ** 2).sum())
    with one_thread(XtX, SMALL_MATRIX):
        inv = torch.linalg.inv(XtX)
    return k**2 * (ss_psi / (n - p) * scale**2) / m**2 * inv
