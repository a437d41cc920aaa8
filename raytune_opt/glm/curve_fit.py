"""Non-linear least squares with the model written in torch: ``curve_fit(f, x, y, p0)``.

    >>> import torch
    >>> from raytune_opt.glm import curve_fit
    >>> x = torch.linspace(0, 4, 50)
    >>> y = 2.0 * torch.exp(-1.3 * x) + 0.5 + 0.01 * torch.sin(7 * x)
    >>> def f(x, p):                      # any torch expression of the parameter vector p
    ...     return p[0] * torch.exp(-p[1] * x) + p[2]
    >>> res = curve_fit(f, x, y, p0=[1.0, 0.5, 0.0])      # Levenberg–Marquardt (MINPACK's trust region)
    >>> res.popt.round(2), res.converged                  # also res.perr, res.nfev, res.message
    (array([2.  , 1.31, 0.5 ]), True)
    >>> popt, pcov = curve_fit(lambda x, a, b, c: a * torch.exp(-b * x) + c, x, y)  # SciPy's form
    >>> pcov.shape
    (3, 3)

Minimises ½||r||^2 with r = (f(x, p) - y) / sigma (prediction minus observed, the residual of the
seed's LM equation Delta a = (J^T J + lambda D)^{-1} J^T r) by ``raytune_opt.optim.LM`` (``method="lm"``),
or ½||r||^2 as a loss by ``BFGS`` / ``LBFGS``. As ``scipy.optimize.curve_fit``: pcov = (J^T J)^{-1} s^2
with s^2 = ||r||^2 / (m - n) at the solution (``absolute_sigma=False``), or (J^T J)^{-1} with
``absolute_sigma=True``; J by autograd, the inverse from its SVD. An unidentifiable parameter (J
rank-deficient at the solution) gives pcov = inf, a :class:`CurveFitWarning` and ``converged=False``.

``bounds = (lower, upper)`` as SciPy (scalars or one per parameter, +-inf for none) with ``method="lm"``:
LM runs unconstrained in q with p = T(q) MINUIT's change of variables (:class:`_Box`; SciPy's
``curve_fit`` uses a trust-region reflective method instead, and refuses bounds with its ``"lm"``), so
every iterate lies in the box; a stop on a bound where the cost still decreases into the box is
``converged=False``. pcov is from J = dr/dp at the solution, as SciPy's.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.glm.fit import GLMConvergenceWarning

__all__ = ["curve_fit", "CurveFitResult", "CurveFitWarning", "CURVE_FIT_METHODS"]

CURVE_FIT_METHODS = ("lm", "bfgs", "lbfgs")
BOX_RESTARTS = 3  # with bounds: fresh LM runs from the last point while it is not a minimum (see _Box)
_SQRT_EPS = math.sqrt(
    torch.finfo(torch.float64).eps
)  # bfgs/lbfgs: converged at max|grad| <= this * max|grad(p0)|


class CurveFitWarning(GLMConvergenceWarning):
    """The covariance could not be estimated (an unidentifiable parameter, or m = n)."""


@dataclass
class CurveFitResult:
    """``popt`` (the parameters), ``pcov`` / ``perr`` (covariance / standard errors), ``cost`` = ½||r||^2,
    ``n_iter`` (accepted iterations), ``nfev`` (calls of f), ``converged`` and ``message`` (the stopping
    test that held, or why none did); ``history`` the cost per call. Unpacks like SciPy's result:
    ``popt, pcov = curve_fit(...)``."""

    popt: np.ndarray
    pcov: np.ndarray
    perr: np.ndarray
    cost: float
    n_iter: int
    nfev: int
    converged: bool
    method: str
    message: str = ""
    history: list[float] = field(default_factory=list)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.popt, self.pcov))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> np.ndarray:
        return (self.popt, self.pcov)[i]


def _tensor(name: str, value: Any, dtype: torch.dtype) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value.detach())
    except (TypeError, ValueError) as exc:
        raise ConfigTypeError(f"{name} must be numeric array-like, got {type(value).__name__}") from exc
    if t.is_complex():
        raise ConfigTypeError(f"{name} must be real, got {t.dtype}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.bool)):
        raise ConfigTypeError(f"{name} must be numeric, got dtype {t.dtype}")
    t = t.to(dtype)
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{name} contains NaN or inf; remove those entries")
    return t


def _as_x(x: Any, dtype: torch.dtype) -> Any:
    """Numeric arrays and float tensors become ``dtype`` tensors; anything else reaches f unchanged."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    if isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if np.issubdtype(arr.dtype, np.number):
            return _tensor("x", arr, dtype)
    return x


def _n_scipy_params(f: Callable) -> int | None:
    """SciPy's form f(x, p1, ..., pn): n (-1 for f(x, *p)); None for the vector form f(x, p)."""
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):  # builtins, some C callables: the documented vector form
        return None
    kinds = [p.kind for p in sig.parameters.values()]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return -1
    positional = sum(
        k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds
    )
    return positional - 1 if positional >= 3 else None


class _Box:
    """Box bounds lower <= p <= upper by MINUIT's (and lmfit's) change of variables p = T(q), q free:

        two-sided      p = lo + (hi - lo) (sin q + 1) / 2,     q = arcsin(2 (p - lo) / (hi - lo) - 1)
        lower only     p = lo - 1 + sqrt(q^2 + 1),             q = sqrt((p - lo + 1)^2 - 1)
        upper only     p = hi + 1 - sqrt(q^2 + 1),             q = sqrt((hi - p + 1)^2 - 1)
        unbounded      p = q

    Every q maps into the box, so LM runs unconstrained on r(T(q)) and every iterate is feasible. As
    dT/dq = 0 on a bound, a point on a bound is stationary in q whatever the gradient in p: ``kkt`` tells
    a minimum of the box-constrained problem (on a bound, the gradient in p points out of the box) from
    such a point.
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.lo, self.hi = lower, upper
        self.two = np.isfinite(lower) & np.isfinite(upper)
        self.low_only = np.isfinite(lower) & ~np.isfinite(upper)
        self.up_only = ~np.isfinite(lower) & np.isfinite(upper)

    @staticmethod
    def parse(bounds: Any, n: int) -> _Box | None:
        """SciPy's ``bounds = (lower, upper)``, scalars or length-n arrays; None when unbounded."""
        if bounds is None:
            return None
        try:
            lo, hi = (np.asarray(b, dtype=float) for b in bounds)
            lo, hi = (np.broadcast_to(b, (n,)).copy() for b in (lo, hi))
        except (TypeError, ValueError) as exc:
            raise ConfigError.invalid(
                "bounds", bounds, f"a pair (lower, upper), each a number or {n} numbers (one per parameter)"
            ) from exc
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise ConfigError.invalid("bounds", bounds, "numbers or +-inf, not NaN")
        bad = np.nonzero(lo >= hi)[0]
        if bad.size:
            j = int(bad[0])
            raise ConfigError(
                f"bounds: lower[{j}] = {lo[j]:g} >= upper[{j}] = {hi[j]:g}; each lower bound must be below "
                "its upper bound (fix the parameter in f instead of giving it equal bounds)"
            )
        if np.isneginf(lo).all() and np.isposinf(hi).all():
            return None
        return _Box(lo, hi)

    def feasible_start(self) -> np.ndarray:
        """SciPy's start for p0 = None: the midpoint, lower + 1, upper - 1, or 1."""
        p0 = np.ones_like(self.lo)
        p0[self.two] = 0.5 * (self.lo + self.hi)[self.two]
        p0[self.low_only] = self.lo[self.low_only] + 1.0
        p0[self.up_only] = self.hi[self.up_only] - 1.0
        return p0

    def to_q(self, p: torch.Tensor) -> torch.Tensor:
        """q = T^{-1}(p); ``ConfigError`` for p outside the box; p on a bound is moved inside by
        1e-10 max(1, |bound|) (as SciPy's least_squares does), where dT/dq would be 0."""
        pn = p.detach().numpy().astype(float)
        out = np.nonzero((pn < self.lo) | (pn > self.hi))[0]
        if out.size:
            j = int(out[0])
            raise ConfigError(
                f"p0[{j}] = {pn[j]:g} is outside bounds [{self.lo[j]:g}, {self.hi[j]:g}]; "
                "start inside the bounds"
            )
        for bound, side in ((self.lo, 1.0), (self.hi, -1.0)):
            finite = np.isfinite(bound)
            inside = np.where(finite, bound, 0.0) + side * 1e-10 * np.maximum(
                1.0, np.abs(np.where(finite, bound, 0.0))
            )
            pn = np.where(finite & (side * (pn - inside) < 0), inside, pn)
        q = pn.copy()
        t = self.two
        q[t] = np.arcsin(np.clip(2.0 * (pn[t] - self.lo[t]) / (self.hi[t] - self.lo[t]) - 1.0, -1.0, 1.0))
        q[self.low_only] = np.sqrt((pn - self.lo + 1.0)[self.low_only] ** 2 - 1.0)
        q[self.up_only] = np.sqrt((self.hi - pn + 1.0)[self.up_only] ** 2 - 1.0)
        return torch.as_tensor(q, dtype=p.dtype)

    def to_p(self, q: torch.Tensor) -> torch.Tensor:
        """p = T(q), differentiable in q."""
        lo, hi = (
            torch.as_tensor(np.where(np.isfinite(b), b, 0.0), dtype=q.dtype) for b in (self.lo, self.hi)
        )
        two, low, up = (torch.as_tensor(m) for m in (self.two, self.low_only, self.up_only))
        root = torch.sqrt(q * q + 1.0)
        p = torch.where(two, lo + 0.5 * (hi - lo) * (torch.sin(q) + 1.0), q)
        p = torch.where(low, lo - 1.0 + root, p)
        return torch.where(up, hi + 1.0 - root, p)

    def kkt(self, p: np.ndarray, J: torch.Tensor, r: torch.Tensor, tol: float) -> str:
        """ "" when p is a minimum of the box problem as far as the bounds go, else why not: a parameter
        on a bound (within sqrt(tol) relative) whose gradient (J^T r)_j points into the box by more
        than a cosine sqrt(tol) (the scale-invariant |(J^T r)_j| / (||J_j|| ||r||), as LM's gradient test)."""
        g = (J.T @ r).numpy()
        scale = J.norm(dim=0).numpy() * float(r.norm())
        near = math.sqrt(tol)
        for j in range(p.size):
            width = self.hi[j] - self.lo[j] if self.two[j] else 1.0
            cos = abs(g[j]) / scale[j] if scale[j] > 0 else 0.0
            at_lo = np.isfinite(self.lo[j]) and p[j] - self.lo[j] <= near * max(width, abs(self.lo[j]))
            at_hi = np.isfinite(self.hi[j]) and self.hi[j] - p[j] <= near * max(width, abs(self.hi[j]))
            if cos <= near or (at_lo and g[j] > 0) or (at_hi and g[j] < 0):
                continue  # stationary in p_j, or on a bound with the cost increasing into the box
            if at_lo or at_hi:
                return (
                    f"p[{j}] = {p[j]:g} stopped on its {'lower' if at_lo else 'upper'} bound although the "
                    f"cost decreases into the box (gradient cosine {cos:.2g}): a stationary point of the "
                    "change of variables, not a minimum; try another p0"
                )
            return (
                f"p[{j}] = {p[j]:g} stopped inside its bounds with gradient cosine {cos:.2g} > {near:.2g}: "
                "not a stationary point (the change of variables' q ran far out); try another p0"
            )
        return ""


def curve_fit(
    f: Callable[..., torch.Tensor],
    x: Any,
    y: Any,
    p0: Any = None,
    method: str = "lm",
    sigma: Any = None,
    absolute_sigma: bool = False,
    bounds: Any = None,
    max_iter: int = 200,
    tol: float = 1e-10,
    dtype: torch.dtype = torch.float64,
) -> CurveFitResult:
    """Fit ``f(x, p) ≈ y`` over the parameter vector ``p`` (starting at ``p0``) by ``method``.

    ``f`` is ``f(x, p)`` with p the parameter vector (a 1-D tensor), or SciPy's ``f(x, p1, ..., pn)`` /
    ``f(x, *p)`` — decided from its signature: three or more positional parameters or ``*args`` is SciPy's
    form, and then ``p0=None`` means n ones, as SciPy. f must compute with torch operations on p (its
    Jacobian is taken by autograd). ``x`` is handed to ``f`` as a float tensor when numeric (any other
    object unchanged); ``sigma`` are the per-observation standard deviations, ``absolute_sigma`` as SciPy;
    ``bounds`` ``(lower, upper)`` with ``method="lm"`` (see the module; ``p0=None`` then starts as SciPy's:
    the midpoint, lower + 1, upper - 1 or 1); ``tol`` is LM's relative cost / step tolerance; BFGS /
    L-BFGS are converged at max|grad| <= max(tol, sqrt(eps) max|grad at p0|) (their line search on
    ½||r||^2 cannot resolve much below that). Bad input raises ``ConfigError`` before the first iteration:
    NaN of f at p0, a p0 of the wrong length, an f that detaches p, bounds with bfgs / lbfgs, a lower bound
    not below its upper bound, a p0 outside the bounds.
    """
    from raytune_opt import optim

    if not callable(f):
        raise ConfigTypeError(
            f"f = {f!r} is not allowed: expected a callable f(x, p) or f(x, p1, ..., pn) returning a tensor"
        )
    if not isinstance(method, str) or method not in CURVE_FIT_METHODS:
        raise ConfigError.unknown("method", method, CURVE_FIT_METHODS)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError.invalid("max_iter", max_iter, "an integer >= 1")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise ConfigError.invalid("tol", tol, "a number > 0")
    if absolute_sigma not in (True, False):
        raise ConfigError.invalid("absolute_sigma", absolute_sigma, "True or False")
    n_sig = _n_scipy_params(f)
    if p0 is None and (n_sig is None or n_sig < 0):
        raise ConfigError(
            "p0 = None needs f(x, p1, ..., pn) (SciPy's form: n ones); for f(x, p) or f(x, *p) give p0"
        )
    n_p = n_sig if p0 is None else int(np.size(p0))
    box = _Box.parse(bounds, n_p)
    if box is not None and method != "lm":
        raise ConfigError.invalid(
            "method",
            method,
            "'lm' with bounds (bfgs and lbfgs take no bounds; lm takes them by a change of variables)",
        )
    if p0 is None:
        p0 = np.ones(n_sig) if box is None else box.feasible_start()
    xt = _as_x(x, dtype)
    yt = _tensor("y", y, dtype).reshape(-1)
    p = _tensor("p0", p0, dtype).reshape(-1)
    if n_sig is not None and n_sig >= 0 and p.numel() != n_sig:
        raise ConfigError(
            f"p0 has {p.numel()} entries but f takes {n_sig} parameters after x "
            f"({', '.join(list(inspect.signature(f).parameters)[1:])}); give one start value each"
        )
    st = torch.ones_like(yt) if sigma is None else _tensor("sigma", sigma, dtype).reshape(-1)
    if st.shape != yt.shape or bool((st <= 0).any()):
        raise ConfigError.invalid("sigma", "<array>", f"{yt.numel()} positive numbers (one per y)")
    if yt.numel() < p.numel():
        raise ConfigError(f"{yt.numel()} observations for {p.numel()} parameters: need at least as many")

    def model(q: torch.Tensor) -> torch.Tensor:
        out = f(xt, *q.unbind()) if n_sig is not None else f(xt, q)
        if not isinstance(out, torch.Tensor):
            raise ConfigTypeError(
                f"f returned {type(out).__name__}: expected a torch tensor — write f with torch operations "
                "(torch.exp, not np.exp) so that its Jacobian can be taken by autograd"
            )
        return out.reshape(-1).to(dtype)

    _check_model(model, p, yt)
    to_p = (lambda q: q) if box is None else box.to_p
    param = torch.nn.Parameter(p.clone() if box is None else box.to_q(p))  # q, with p = to_p(q)
    history: list[float] = []

    def residuals() -> torch.Tensor:
        r = (model(to_p(param)) - yt) / st
        history.append(0.5 * float(r.detach() @ r.detach()))
        return r

    if method == "lm":

        def make() -> torch.optim.Optimizer:
            return optim.LM(
                [param], max_iter=max_iter, max_eval=20 * max_iter, tolerance_grad=0.0, tolerance_change=tol
            )

        closure = residuals
    else:
        cls = optim.BFGS if method == "bfgs" else optim.LBFGS
        with torch.enable_grad():
            r0 = (model(param) - yt) / st
            (g0,) = torch.autograd.grad(0.5 * (r0 * r0).sum(), param)

        def make() -> torch.optim.Optimizer:
            return cls(
                [param],
                max_iter=max_iter,
                max_eval=20 * max_iter,
                tolerance_grad=max(tol, _SQRT_EPS * float(g0.abs().max())),
                tolerance_change=0.0,
                line_search_fn="strong_wolfe",
            )

        def closure() -> torch.Tensor:
            r = residuals()
            return 0.5 * (r * r).sum()

    n_iter = nfev = 0
    for _ in range(1 + (BOX_RESTARTS if box is not None else 0)):
        opt = make()
        opt.step(closure)
        state = opt.state[param]
        n_iter += int(state.get("n_iter", 0))
        nfev += int(state.get("func_evals", 0))
        converged, message = bool(state["converged"]), str(state["message"])
        popt = to_p(param.detach()).detach()
        with torch.enable_grad():  # J = dr/dp at the solution (also with bounds: pcov is for p, as SciPy's)
            p_sol = popt.clone().requires_grad_()
            r = (model(p_sol) - yt) / st
            J = optim.lm.jacobian(r, [p_sol]).detach()
        r = r.detach()
        why = "" if box is None else box.kkt(popt.numpy(), J, r, tol)
        if not why:
            break
        with torch.no_grad():  # again from popt, with q back on T's principal branch and a fresh LM
            param.copy_(box.to_q(popt))
    if why:
        converged, message = False, f"{why} (the optimizer stopped on: {message})"
    m, n = r.numel(), param.numel()
    cost = 0.5 * float(r @ r)
    pcov, rank = _covariance(J)
    if rank < n:
        converged = False
        message = (
            f"J has rank {rank} < {n} at the solution: a parameter is not identified (pcov = inf); "
            f"the optimizer stopped on: {message}"
        )
        warnings.warn(f"curve_fit: {message}", CurveFitWarning, stacklevel=2)
    elif not absolute_sigma:
        if m > n:
            pcov = pcov * (2.0 * cost / (m - n))
        else:
            pcov = torch.full_like(pcov, math.inf)
            warnings.warn(
                f"curve_fit: {m} observations for {n} parameters: the covariance cannot be estimated "
                "without absolute_sigma=True (pcov = inf)",
                CurveFitWarning,
                stacklevel=2,
            )
    pcov_np = pcov.numpy()
    return CurveFitResult(
        popt=popt.numpy().copy(),
        pcov=pcov_np,
        perr=np.sqrt(np.abs(np.diag(pcov_np))),
        cost=cost,
        n_iter=n_iter,
        nfev=nfev,
        converged=converged,
        method=method,
        message=message,
        history=history,
    )


def _check_model(model: Callable[[torch.Tensor], torch.Tensor], p: torch.Tensor, y: torch.Tensor) -> None:
    """f at p0: the right size, finite, differentiable in p, and using every entry of p."""
    q = p.clone().requires_grad_()
    try:
        with torch.enable_grad():
            out = model(q)
    except (IndexError, ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        hint = (
            "f must compute with torch operations on p (no .numpy(), float() or np.* of p)"
            if "numpy" in str(exc) or "grad" in str(exc)
            else f"is p0 (length {p.numel()}) the right length for f?"
        )
        raise ConfigError(f"f(x, p0) raised {type(exc).__name__}: {exc}; {hint}") from exc
    if out.numel() != y.numel():
        raise ConfigError(f"f(x, p0) has {out.numel()} values but y has {y.numel()}; they must match")
    bad = ~torch.isfinite(out.detach())
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten()
        raise ConfigError(
            f"f(x, p0) is NaN or inf at {idx.numel()} of {out.numel()} points (first at index "
            f"{idx[:5].tolist()}): choose p0 where the model is finite"
        )
    if not out.requires_grad:
        raise ConfigError(
            "f(x, p) does not depend on p through autograd (it detaches p, converts it with .item(), float() "
            "or numpy, or ignores it): write f with torch operations on p so its Jacobian can be computed"
        )
    with torch.no_grad():
        for j in range(p.numel()):  # an entry f never reads leaves f finite when it is NaN
            probe = p.clone()
            probe[j] = math.nan
            if bool(torch.isfinite(model(probe)).all()):
                raise ConfigError(
                    f"f(x, p) does not use p[{j}]: p0 has {p.numel()} entries, more than f reads "
                    "(or f ignores that parameter); give p0 one entry per parameter of f"
                )


def _covariance(J: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(J^T J)^{-1} from the SVD of J, and J's numerical rank (pcov = inf when rank-deficient, as SciPy)."""
    _, s, Vh = torch.linalg.svd(J, full_matrices=False)
    n = J.shape[1]
    keep = s > torch.finfo(J.dtype).eps * max(J.shape) * (float(s[0]) if s.numel() else 0.0)
    rank = int(keep.sum())
    if rank < n:
        return torch.full((n, n), math.inf, dtype=J.dtype), rank
    return (Vh.T / (s * s)) @ Vh, rank
