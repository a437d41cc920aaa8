"""GLM fits by the closure-driven optimizers of ``raytune_opt.optim``: ``lm``, ``bfgs``, ``lbfgs``.

The objective is the same F(a) = D(a)/2 + alpha/2 ||a||^2 as IRLS's, so all methods reach one solution.

- ``bfgs`` / ``lbfgs``: the closure returns F. Its value and gradient dF/da = -X^T (w (y - mu) mu'/V) +
  alpha a come from the backend's summed ``loss_grad`` pieces through a ``torch.autograd.Function``, so the
  rows may live on Ray workers (``num_workers`` > 1). They run in whitened coordinates b,
  a = a_0 + L^{-T} b with L L^T = X^T W X + alpha I the Fisher information at mu_0 (formed anyway for the
  first step), so that the Hessian in b starts near I whatever the units of the columns of X (income in
  dollars next to a 0/1 dummy), and ½||grad_b F||^2 estimates F - F*, b - b* ≈ grad_b F. Converged:
  max|grad_b F| <= max(10 tol, 4 sqrt(2 eps)) (1 + sqrt|F_0|) — the gradient test, never
  ``n_iter < max_iter``; the second term (8e-8, binding for tol < 8e-9) keeps it above the rounding floor
  sqrt(2 eps |F|) below which a line search on F cannot decrease F. A stall on the optimizers'
  step / loss-change rules before that (changes at rounding level) restarts the quasi-Newton memory
  from the current point, at most ``RESTARTS`` times; a fit that still fails the test says
  ``converged=False`` and why (``SolverOutput.message``).
- ``lm``: the closure returns the residual vector r = (sign(mu - y) sqrt(w d(y, mu)), sqrt(alpha) a),
  signed deviance residuals (prediction minus observed) plus the penalty rows, with ½||r||^2 = F; LM's
  Jacobian of r is taken by autograd through the family's torch formulas (rows in this process only).
  Converged when one of LM's tests held (``optim.lm.STATUS``): relative cost reduction or scaled step
  <= 1e-6 tol, or MINPACK's gradient test max_j |J_j^T r| / (||J_j|| ||r||) <= tol (the cosine of the
  angle between r and the columns of J: the same whatever the units of y or of the columns of X).

Each starts from one IRLS step from mu_0 (as ``newton`` and ``irls-lm``) and runs at most ``max_iter``
iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from raytune_opt.glm.irls import SolverOutput, _ridge, first_step

__all__ = ["RESTARTS", "torch_solver"]

RESTARTS = 3  # fresh quasi-Newton memories after a stall before the gradient test held
_ROUNDING = 4 * torch.finfo(torch.float64).eps  # loss changes / steps below this (relative to F_0): a stall
_FLOOR = 4 * math.sqrt(2 * torch.finfo(torch.float64).eps)  # gradient floor of a line search on F, per sqrt F


class _BackendLoss(torch.autograd.Function):
    """D/2 from the backend's summed ``loss_grad`` pieces, with their gradient for backward."""

    @staticmethod
    def forward(ctx, beta: torch.Tensor, backend) -> torch.Tensor:
        loss, grad = backend.sum("loss_grad", beta.detach())
        ctx.save_for_backward(grad)
        return torch.as_tensor(loss, dtype=beta.dtype, device=beta.device)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return g * grad, None


def _signed_deviance_residuals(shard, beta: torch.Tensor) -> torch.Tensor:
    """sign(mu - y) sqrt(w d(y, mu)) (differentiable in ``beta``)."""
    fam = shard.family
    mu = fam.clip_mu(fam.link.inverse(torch.addmv(shard.offset, shard.X, beta)))
    d = (shard.w * fam.unit_deviance(shard.y, mu)).clamp_min(1e-300)
    return torch.sign(mu - shard.y) * d.sqrt()


def _whitening(G: torch.Tensor, alpha: float, like: torch.Tensor) -> torch.Tensor:
    """L^T of L L^T = X^T W X + alpha I (float64 on ``like``'s device); diag(sqrt(G_jj)) if not SPD."""
    A = _ridge(G.to(dtype=like.dtype, device=like.device), alpha)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        return torch.diag(A.diagonal().clamp_min(torch.finfo(A.dtype).tiny).sqrt())
    return L.T


def _lm(backend, beta0: torch.Tensor, alpha: float, max_iter: int, tol: float, history):
    from raytune_opt import optim

    shard, penalty = backend.shard, alpha**0.5
    param = torch.nn.Parameter(beta0.clone())

    def closure() -> torch.Tensor:
        r = _signed_deviance_residuals(shard, param)
        if alpha > 0:
            r = torch.cat([r, penalty * param])
        history.append({"eval": len(history) + 1, "objective": 0.5 * float(r.detach() @ r.detach())})
        return r

    opt = optim.LM(
        [param],
        max_iter=max_iter,
        max_eval=20 * max_iter,
        tolerance_grad=tol,
        tolerance_change=tol * 1e-6,
    )
    opt.step(closure)
    st = opt.state[param]
    return param.detach().clone(), int(st["n_iter"]), bool(st["converged"]), st["message"]


def _quasi_newton(method: str, backend, start, beta0, alpha, max_iter, tol, F0, history):
    from raytune_opt import optim

    Lt = _whitening(start[1], alpha, beta0)
    b = torch.nn.Parameter(torch.zeros_like(beta0))

    def beta_of(b_: torch.Tensor) -> torch.Tensor:
        return beta0 + torch.linalg.solve_triangular(Lt, b_[:, None], upper=True)[:, 0]

    def closure() -> torch.Tensor:
        beta = beta_of(b)
        loss = _BackendLoss.apply(beta, backend) + 0.5 * alpha * (beta * beta).sum()
        history.append({"eval": len(history) + 1, "objective": float(loss.detach())})
        return loss

    cls = optim.BFGS if method == "bfgs" else optim.LBFGS
    n_iter, st = 0, {}
    for _ in range(RESTARTS + 1):
        opt = cls(
            [b],
            max_iter=max_iter - n_iter,
            max_eval=20 * max_iter,
            tolerance_grad=max(10.0 * tol, _FLOOR) * (1.0 + math.sqrt(abs(F0))),
            tolerance_change=_ROUNDING * (1.0 + abs(F0)),
            line_search_fn="strong_wolfe",
        )
        opt.step(closure)
        st = opt.state[b]
        n_iter += int(st["n_iter"])
        if st["converged"] or st["status"] == 5 or n_iter >= max_iter:
            break
    with torch.no_grad():
        beta = beta_of(b.detach())
    return beta, n_iter, bool(st["converged"]), st["message"]


def torch_solver(method: str) -> Callable[..., SolverOutput]:
    """The solver function of ``method`` (``lm``, ``bfgs`` or ``lbfgs``) with IRLS's signature."""

    def solve(backend, start: tuple, alpha: float, max_iter: int, tol: float) -> SolverOutput:
        beta0 = first_step(start, alpha)
        history: list[dict] = []
        if method == "lm":
            out = _lm(backend, beta0, alpha, max_iter, tol, history)
        else:
            F0 = float(backend.sum("loss_grad", beta0)[0]) + 0.5 * alpha * float(beta0 @ beta0)
            out = _quasi_newton(method, backend, start, beta0, alpha, max_iter, tol, F0, history)
        beta, n_iter, converged, message = out
        return SolverOutput(beta, None, n_iter, converged, history, message)

    return solve
