"""Non-linear least squares with the model written in torch: ``curve_fit(f, x, y, p0)``.

    >>> def f(x, p):                      # any torch expression of the parameter vector p
    ...     return p[0] * torch.exp(-p[1] * x) + p[2]
    >>> res = curve_fit(f, x, y, p0=[1.0, 0.5, 0.0])      # Levenberg–Marquardt
    >>> res.popt, res.perr, res.nfev

Minimises ½||r||^2 with r = (f(x, p) - y) / sigma (prediction minus observed, the residual of the
seed's LM equation Delta a = (J^T J + lambda I)^{-1} J^T r) by ``raytune_opt.optim.LM`` (``method="lm"``),
or ½||r||^2 as a loss by ``BFGS`` / ``LBFGS``. As in ``scipy.optimize.curve_fit`` (``absolute_sigma=False``),
pcov = (J^T J)^{-1} s^2 with s^2 = ||r||^2 / (m - n) at the solution, J by autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = ["curve_fit", "CurveFitResult", "CURVE_FIT_METHODS"]

CURVE_FIT_METHODS = ("lm", "bfgs", "lbfgs")


@dataclass
class CurveFitResult:
    """``popt`` (the parameters), ``pcov`` / ``perr`` (covariance / standard errors), ``cost`` = ½||r||^2,
    ``n_iter`` (accepted iterations), ``nfev`` (calls of f), ``converged``; ``history`` the cost per call."""

    popt: np.ndarray
    pcov: np.ndarray
    perr: np.ndarray
    cost: float
    n_iter: int
    nfev: int
    converged: bool
    method: str
    history: list[float] = field(default_factory=list)


def _tensor(name: str, value: Any, dtype: torch.dtype) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value.detach())
    except (TypeError, ValueError) as exc:
        raise ConfigTypeError(f"{name} must be numeric array-like, got {type(value).__name__}") from exc
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


def curve_fit(
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: Any,
    y: Any,
    p0: Any,
    method: str = "lm",
    sigma: Any = None,
    max_iter: int = 200,
    tol: float = 1e-10,
    dtype: torch.dtype = torch.float64,
) -> CurveFitResult:
    """Fit ``f(x, p) ≈ y`` over the parameter vector ``p`` (starting at ``p0``) by ``method``.

    ``x`` is handed to ``f`` as a float tensor when numeric (any other object unchanged); ``sigma`` are the
    per-observation standard deviations; ``tol`` is LM's relative cost / step tolerance (BFGS / L-BFGS:
    the gradient tolerance). ``ConfigError`` for bad input before the first iteration.
    """
    from raytune_opt import optim
    from raytune_opt.optim.lm import jacobian

    if not callable(f):
        raise ConfigTypeError(
            f"f = {f!r} is not allowed: expected a callable f(x, p) returning a torch tensor"
        )
    if not isinstance(method, str) or method not in CURVE_FIT_METHODS:
        raise ConfigError.unknown("method", method, CURVE_FIT_METHODS)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError.invalid("max_iter", max_iter, "an integer >= 1")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise ConfigError.invalid("tol", tol, "a number > 0")
    xt = _as_x(x, dtype)
    yt = _tensor("y", y, dtype).reshape(-1)
    p = _tensor("p0", p0, dtype).reshape(-1)
    st = torch.ones_like(yt) if sigma is None else _tensor("sigma", sigma, dtype).reshape(-1)
    if st.shape != yt.shape or bool((st <= 0).any()):
        raise ConfigError.invalid("sigma", "<array>", f"{yt.numel()} positive numbers (one per y)")
    with torch.no_grad():
        out = f(xt, p.clone())
    if not isinstance(out, torch.Tensor):
        raise ConfigTypeError(f"f(x, p0) returned {type(out).__name__}: expected a torch tensor")
    if out.numel() != yt.numel():
        raise ConfigError(f"f(x, p0) has {out.numel()} values but y has {yt.numel()}; they must match")
    if yt.numel() < p.numel():
        raise ConfigError(f"{yt.numel()} observations for {p.numel()} parameters: need at least as many")

    param = torch.nn.Parameter(p.clone())
    history: list[float] = []

    def residuals() -> torch.Tensor:
        r = (f(xt, param).reshape(-1).to(dtype) - yt) / st
        history.append(0.5 * float(r.detach() @ r.detach()))
        return r

    if method == "lm":
        opt = optim.LM(
            [param], max_iter=max_iter, max_eval=20 * max_iter, tolerance_grad=0.0, tolerance_change=tol
        )
        closure = residuals
    else:
        cls = optim.BFGS if method == "bfgs" else optim.LBFGS
        opt = cls(
            [param],
            max_iter=max_iter,
            max_eval=20 * max_iter,
            tolerance_grad=tol,
            tolerance_change=tol * 1e-3,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            r = residuals()
            return 0.5 * (r * r).sum()

    opt.step(closure)
    state = opt.state[param]
    n_iter = int(state.get("n_iter", 0))
    with torch.enable_grad():
        r = (f(xt, param).reshape(-1).to(dtype) - yt) / st
        J = jacobian(r, [param]).detach()
    r = r.detach()
    m, n = r.numel(), param.numel()
    cost = 0.5 * float(r @ r)
    s2 = 2.0 * cost / (m - n) if m > n else float("inf")
    try:
        pcov = torch.linalg.inv(J.T @ J) * s2
    except RuntimeError:  # singular J^T J: parameters not identified at the solution (as scipy: inf)
        pcov = torch.full((n, n), float("inf"), dtype=dtype)
    pcov_np = pcov.numpy()
    return CurveFitResult(
        popt=param.detach().numpy().copy(),
        pcov=pcov_np,
        perr=np.sqrt(np.abs(np.diag(pcov_np))),
        cost=cost,
        n_iter=n_iter,
        nfev=int(state.get("func_evals", len(history))),
        converged=n_iter < max_iter,
        method=method,
        history=history,
    )
