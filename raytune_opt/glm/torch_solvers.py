"""GLM fits by the closure-driven optimizers of ``raytune_opt.optim``: ``lm``, ``bfgs``, ``lbfgs``.

The objective is the same F(a) = D(a)/2 + alpha/2 ||a||^2 as IRLS's, so all methods reach one solution.

- ``bfgs`` / ``lbfgs``: the closure returns F. Its value and gradient dF/da = -X^T (w (y - mu) mu'/V) +
  alpha a come from the backend's summed ``loss_grad`` pieces through a ``torch.autograd.Function``, so the
  rows may live on Ray workers (``num_workers`` > 1).
- ``lm``: the closure returns the residual vector r = (sign(mu - y) sqrt(w d(y, mu)), sqrt(alpha) a),
  signed deviance residuals (prediction minus observed) plus the penalty rows, with ½||r||^2 = F; LM's
  Jacobian of r is taken by autograd through the family's torch formulas (rows in this process only).

Each starts from one IRLS step from mu_0 (as ``newton`` and ``irls-lm``) and runs one ``step(closure)``
of at most ``max_iter`` iterations, stopping when max|dF/da| <= tol (|F_0| + 1) or the step / change
in F falls below the optimizer's ``tolerance_change``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from raytune_opt.glm.irls import SolverOutput, first_step

__all__ = ["torch_solver"]


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


def _run(opt, param, closure, history: list[dict], max_iter: int) -> tuple[int, bool]:
    opt.step(closure)
    st = opt.state[param]
    n_iter = int(st.get("n_iter", 0))
    return n_iter, n_iter < max_iter


def torch_solver(method: str) -> Callable[..., SolverOutput]:
    """The solver function of ``method`` (``lm``, ``bfgs`` or ``lbfgs``) with IRLS's signature."""

    def solve(backend, start: tuple, alpha: float, max_iter: int, tol: float) -> SolverOutput:
        from raytune_opt import optim

        beta0 = first_step(start, alpha)
        param = torch.nn.Parameter(beta0.clone())
        history: list[dict] = []
        F0 = float(backend.sum("loss_grad", beta0)[0]) + 0.5 * alpha * float(beta0 @ beta0)
        tol_grad = tol * (abs(F0) + 1.0)
        tol_change = tol * 1e-4 * (abs(F0) + 1.0)

        if method == "lm":
            shard = backend.shard
            penalty = alpha**0.5

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
                tolerance_grad=tol_grad,
                tolerance_change=tol * 1e-6,
            )
        else:

            def closure() -> torch.Tensor:
                loss = _BackendLoss.apply(param, backend) + 0.5 * alpha * (param * param).sum()
                history.append({"eval": len(history) + 1, "objective": float(loss.detach())})
                return loss

            cls = optim.BFGS if method == "bfgs" else optim.LBFGS
            opt = cls(
                [param],
                max_iter=max_iter,
                max_eval=20 * max_iter,
                tolerance_grad=tol_grad,
                tolerance_change=tol_change,
                line_search_fn="strong_wolfe",
            )
        n_iter, converged = _run(opt, param, closure, history, max_iter)
        beta = param.detach().clone()
        return SolverOutput(beta, torch.empty(0), n_iter, converged, history)

    return solve
