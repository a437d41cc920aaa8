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
- ``hampel``:   psi = u (|u| <= a), a sgn(u) (a < |u| <= b), a sgn(u) (c - |u|)/(c - b) (b < |u| <= c),
  0 beyond; rho its integral (statsmodels' Hampel, a, b, c = 2, 4, 8)
- ``andrew``:   Andrew's wave, rho = a^2 (1 - cos(u/a)) (|u| <= pi a), 2 a^2 beyond; psi = a sin(u/a)
  inside (a = 1.339)
- ``trimmed``:  trimmed mean, rho = u^2/2 (|u| <= c), c^2/2 beyond; W = 1 inside, 0 outside (c = 2)

Scale (``scale_est``): ``"mad"`` (above) or ``"huber"`` / :class:`HuberScale` — Huber's proposal 2, the
fixed point of s^2 = sum chi(r / s) s^2 / (n h), chi(u) = min(u^2, d^2) / 2,
h = (n - p)/n (d^2 + (1 - d^2) Phi(d) - 1/2 - d phi(d)), d = 2.5, started at the (median-centred) MAD,
as statsmodels' ``HuberScale`` (tol 1e-8, at most 30 iterations).

Covariances (``cov_type``), statsmodels' RLM ``cov=``, with u = r / s, m = mean psi'(u),
k = 1 + p/n var(psi')/m^2 and W = X^T diag(psi'(u)) X:
H1 = k^2 sum psi^2/(n - p) s^2 / m^2 (X^T X)^-1;  H2 = k sum psi^2/(n - p) s^2 / m W^-1;
H3 = k^-1 sum psi^2/(n - p) s^2 W^-1 X^T X W^-1.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from raytune_opt.errors import ConfigError
from raytune_opt.glm.irls import SolverOutput, _solve, converged_by, small_step
from raytune_opt.glm.shard import SMALL_MATRIX, one_thread

__all__ = [
    "Norm",
    "HuberT",
    "TukeyBiweight",
    "Cauchy",
    "L1",
    "Seed",
    "Hampel",
    "AndrewWave",
    "TrimmedMean",
    "NORMS",
    "get_norm",
    "HuberScale",
    "SCALE_ESTS",
    "get_scale_est",
    "ROBUST_COV_TYPES",
    "mad",
]  # the public names (glm re-exports them); fit uses rlm and robust_cov, the solver and its covariance

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


class Hampel(Norm):
    """Hampel's three-part redescending norm with ``a, b, c`` (statsmodels' defaults 2, 4, 8)."""

    name = "hampel"

    def __init__(self, a: float = 2.0, b: float = 4.0, c: float = 8.0) -> None:
        if not 0 < a <= b < c:
            raise ConfigError.invalid("hampel (a, b, c)", (a, b, c), "0 < a <= b < c")
        self.a, self.b, self.c = float(a), float(b), float(c)

    def _parts(self, u):
        z = u.abs()
        t1 = z <= self.a
        t2 = (z > self.a) & (z <= self.b)
        t3 = (z > self.b) & (z <= self.c)
        return z, t1, t2, t3

    def rho(self, u):
        a, b, c = self.a, self.b, self.c
        z, t1, t2, t3 = self._parts(u)
        top = a * (b + c - a) / 2.0
        v = torch.where(t2, a * z - a * a / 2.0, torch.full_like(u, top))
        v = torch.where(t3, top - a * (c - z) ** 2 / (2.0 * (c - b)), v)
        return torch.where(t1, 0.5 * u * u, v)

    def psi(self, u):
        a, b, c = self.a, self.b, self.c
        z, t1, t2, t3 = self._parts(u)
        s = torch.sign(u)
        v = torch.where(t3, a * s * (c - z) / (c - b), torch.zeros_like(u))
        v = torch.where(t2, a * s, v)
        return torch.where(t1, u, v)

    def psi_deriv(self, u):
        _, t1, _, t3 = self._parts(u)
        v = torch.where(t3, torch.full_like(u, -self.a / (self.c - self.b)), torch.zeros_like(u))
        return torch.where(t1, torch.ones_like(u), v)

    def weights(self, u):
        a, b, c = self.a, self.b, self.c
        z, t1, t2, t3 = self._parts(u)
        zs = z.clamp_min(a)  # z > a wherever the last two branches apply
        v = torch.where(t3, a * (c - zs) / (zs * (c - b)), torch.zeros_like(u))
        v = torch.where(t2, a / zs, v)
        return torch.where(t1, torch.ones_like(u), v)


class AndrewWave(Norm):
    """Andrew's wave with ``a`` (statsmodels' default 1.339)."""

    name = "andrew"

    def __init__(self, a: float = 1.339) -> None:
        self.a = float(a)

    def _inside(self, u):
        return (u.abs() <= math.pi * self.a).to(u.dtype)

    def rho(self, u):
        a = self.a
        inside = self._inside(u)
        return inside * a * a * (1.0 - torch.cos(u / a)) + (1.0 - inside) * 2.0 * a * a

    def psi(self, u):
        return self._inside(u) * self.a * torch.sin(u / self.a)

    def psi_deriv(self, u):
        return self._inside(u) * torch.cos(u / self.a)

    def weights(self, u):
        return self._inside(u) * torch.special.sinc(u / (math.pi * self.a))  # sin(u/a) / (u/a)


class TrimmedMean(Norm):
    """The trimmed-mean norm with ``c`` (statsmodels' default 2): least squares on |u| <= c, 0 beyond."""

    name = "trimmed"

    def __init__(self, c: float = 2.0) -> None:
        self.c = float(c)

    def _inside(self, u):
        return (u.abs() <= self.c).to(u.dtype)

    def rho(self, u):
        inside = self._inside(u)
        return inside * 0.5 * u * u + (1.0 - inside) * 0.5 * self.c**2

    def psi(self, u):
        return self._inside(u) * u

    def psi_deriv(self, u):
        return self._inside(u)

    def weights(self, u):
        return self._inside(u)


NORMS: dict[str, type[Norm]] = {
    c.name: c for c in (HuberT, TukeyBiweight, L1, Cauchy, Seed, Hampel, AndrewWave, TrimmedMean)
}


def get_norm(robust: str | Norm) -> Norm:
    """The norm named ``robust`` (or ``robust`` itself when a :class:`Norm`); ``ConfigError`` otherwise."""
    if isinstance(robust, Norm):
        return robust
    if not isinstance(robust, str) or robust not in NORMS:
        raise ConfigError.unknown("robust", robust, NORMS)
    return NORMS[robust]()


class HuberScale:
    """Huber's proposal 2 scale (module docstring), statsmodels' ``HuberScale(d, tol, maxiter)``."""

    name = "huber"

    def __init__(self, d: float = 2.5, tol: float = 1e-8, maxiter: int = 30) -> None:
        self.d, self.tol, self.maxiter = float(d), float(tol), int(maxiter)

    def __call__(self, r: torch.Tensor, n: int, p: int) -> float:
        d = self.d
        res = r.detach().cpu().double().numpy()
        pdf = math.exp(-0.5 * d * d) / math.sqrt(2.0 * math.pi)
        cdf = 0.5 * math.erfc(-d / math.sqrt(2.0))
        h = (n - p) / n * (d * d + (1.0 - d * d) * cdf - 0.5 - d * pdf)
        s = float(np.median(np.abs(res - np.median(res)))) / _MAD_C
        prev, it = float("inf"), 1
        while abs(prev - s) > self.tol and it < self.maxiter:
            u2 = (res / s) ** 2
            chi = np.where(np.abs(res / s) < d, u2 / 2.0, d * d / 2.0)
            prev, s = s, math.sqrt(chi.sum() / (n * h) * s * s)
            it += 1
        return s

    def __repr__(self) -> str:
        return f"HuberScale(d={self.d}, tol={self.tol}, maxiter={self.maxiter})"


SCALE_ESTS = ("mad", "huber")
ROBUST_COV_TYPES = ("H1", "H2", "H3")


def get_scale_est(scale_est: str | HuberScale):
    """The scale estimator ``r -> s`` named by ``scale_est`` (``mad`` or ``huber``, or a HuberScale)."""
    if isinstance(scale_est, HuberScale):
        est = scale_est
    elif scale_est == "huber":
        est = HuberScale()
    elif scale_est == "mad":
        return lambda r, n, p: mad(r)
    else:
        raise ConfigError.unknown("scale_est", scale_est, SCALE_ESTS)
    return est


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
    backend,
    start: tuple,
    norm: Norm,
    n: int,
    p: int,
    max_iter: int,
    tol: float,
    damped: bool = False,
    scale_est=None,
) -> tuple[SolverOutput, float]:
    """Robust IRLS (``damped=False``) or the seed's IRLS-LM (``damped=True``); returns (output, scale).

    ``scale_est(r, n, p)`` re-estimates the scale after every step (default: :func:`mad`).

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
    scale_of = scale_est or (lambda r, n, p: mad(r))
    scale = scale_of(r, n, p)
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
            scale = scale_of(r, n, p)
            value = _criterion(norm, r, scale)
            done = converged_by(value, crit, tol)
        else:
            value = _sm_deviance(norm, r, W, df_resid)
            scale = scale_of(r, n, p)
            done = abs(value - crit) <= tol or (small_step(step, beta, tol) and step <= 0.5 * prev_step)
        crit = value
        history.append({"iter": n_iter, "criterion": value, "scale": scale, "step": step, "gram": not lazy})
        if done:
            converged = True
            break
    return SolverOutput(beta, G0, n_iter, converged, history), scale


def robust_cov(
    cov_type: str, norm: Norm, r: torch.Tensor, scale: float, X: torch.Tensor, XtX: torch.Tensor
) -> torch.Tensor:
    """statsmodels' RLM covariance ``cov_type`` (H1, H2, H3; module docstring) at u = r / scale.

    k = 1 + p/n var(psi')/m^2 (statsmodels' (df_model + 1)/n with its df_model = rank - 1, constant column
    or not); ``X`` is needed for H2 and H3 only (W = X^T diag(psi'(u)) X)."""
    n, p = X.shape[0], XtX.shape[0]
    u = r / scale
    dpsi = norm.psi_deriv(u)
    m = float(dpsi.mean())
    if m == 0.0 or not math.isfinite(m):
        return torch.full((p, p), float("nan"), dtype=XtX.dtype, device=XtX.device)
    k = 1.0 + p / n * float(dpsi.var(unbiased=False)) / m**2
    s2_psi = float((norm.psi(u) ** 2).sum()) / (n - p) * scale**2
    with one_thread(XtX, SMALL_MATRIX):
        if cov_type == "H1":
            return k**2 * s2_psi / m**2 * torch.linalg.inv(XtX)
        W_inv = torch.linalg.inv(X.T @ (dpsi[:, None] * X))
        if cov_type == "H2":
            return k * s2_psi / m * W_inv
        return s2_psi / k * (W_inv @ XtX @ W_inv)
