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


def _bounds_ok(bounds: Any, method: str) -> None:
    """Only the unbounded (-inf, inf) is allowed: none of the methods handles bounds."""
    if bounds is None:
        return
    try:
        lo, hi = (np.asarray(b, dtype=float) for b in bounds)
    except (TypeError, ValueError) as exc:
        raise ConfigError.invalid("bounds", bounds, "a pair (lower, upper) of numbers or arrays") from exc
    if np.all(np.isneginf(lo)) and np.all(np.isposinf(hi)):
        return
    raise ConfigError(
        f"bounds = {bounds!r} is not supported by method={method!r}: lm, bfgs and lbfgs are unconstrained "
        "(as SciPy's method='lm'). Reparametrize instead (e.g. p = exp(q) for p > 0, "
        "p = lo + (hi - lo) * sigmoid(q) for lo < p < hi), or use scipy.optimize.curve_fit(method='trf')"
    )


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
    ``bounds`` only (-inf, inf) (a ``ConfigError`` otherwise); ``tol`` is LM's relative cost / step
    tolerance; BFGS / L-BFGS are converged at max|grad| <= max(tol, sqrt(eps) max|grad at p0|) (their
    line search on ½||r||^2 cannot resolve much below that). Bad input raises ``ConfigError`` before the first
    iteration: NaN of f at p0, a p0 of the wrong length, an f that detaches p.
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
    _bounds_ok(bounds, method)
    n_sig = _n_scipy_params(f)
    if p0 is None:
        if n_sig is None or n_sig < 0:
            raise ConfigError(
                "p0 = None needs f(x, p1, ..., pn) (SciPy's form: n ones); for f(x, p) or f(x, *p) give p0"
            )
        p0 = np.ones(n_sig)
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
    param = torch.nn.Parameter(p.clone())
    history: list[float] = []

    def residuals() -> torch.Tensor:
        r = (model(param) - yt) / st
        history.append(0.5 * float(r.detach() @ r.detach()))
        return r

    if method == "lm":
        opt = optim.LM(
            [param], max_iter=max_iter, max_eval=20 * max_iter, tolerance_grad=0.0, tolerance_change=tol
        )
        closure = residuals
    else:
        cls = optim.BFGS if method == "bfgs" else optim.LBFGS
        with torch.enable_grad():
            r0 = (model(param) - yt) / st
            (g0,) = torch.autograd.grad(0.5 * (r0 * r0).sum(), param)
        opt = cls(
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

    opt.step(closure)
    state = opt.state[param]
    converged, message = bool(state["converged"]), str(state["message"])
    with torch.enable_grad():
        r = (model(param) - yt) / st
        J = optim.lm.jacobian(r, [param]).detach()
    r = r.detach()
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
        popt=param.detach().numpy().copy(),
        pcov=pcov_np,
        perr=np.sqrt(np.abs(np.diag(pcov_np))),
        cost=cost,
        n_iter=int(state.get("n_iter", 0)),
        nfev=int(state.get("func_evals", len(history))),
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
