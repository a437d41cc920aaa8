"""BFGS (seed §3.2): a dense quasi-Newton approximation of the Hessian with a strong-Wolfe line search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from raytune_opt.optim._flat import DEFAULT_MAX_DENSE_BYTES, Evaluation
from raytune_opt.optim.linesearch import LineSearchOptimizer, loop_hparams
from raytune_opt.optim.registry import Fixed, register

__all__ = ["BFGS", "bfgs_inverse_update", "bfgs_update"]


def bfgs_update(B: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The seed's update of the Hessian approximation:

    B_{k+1} = B_k − (B_k s_k s_kᵀ B_k)/(s_kᵀ B_k s_k) + (y_k y_kᵀ)/(y_kᵀ s_k)
    """
    Bs = B @ s
    return B - torch.outer(Bs, Bs) / s.dot(Bs) + torch.outer(y, y) / y.dot(s)


def bfgs_inverse_update(H: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The same update applied to H_k = B_k⁻¹ (Sherman–Morrison–Woodbury form of :func:`bfgs_update`):

        H_{k+1} = (I − ρ s yᵀ) H_k (I − ρ y sᵀ) + ρ s sᵀ,   ρ = 1/(yᵀ s)
                = H_k − ρ (s (H y)ᵀ + (H y) sᵀ) + (ρ² yᵀH y + ρ) s sᵀ

    so that H_{k+1} = B_{k+1}⁻¹ exactly (in exact arithmetic), at O(n²) cost instead of a solve.
    """
    rho = 1.0 / y.dot(s)
    Hy = H @ y
    return (
        H
        - rho * (torch.outer(s, Hy) + torch.outer(Hy, s))
        + (rho * rho * y.dot(Hy) + rho) * torch.outer(s, s)
    )


class BFGS(LineSearchOptimizer):
    """Broyden–Fletcher–Goldfarb–Shanno with a strong-Wolfe line search (seed §3.2).

    Update (seed):  a_new = a_old − α B_k⁻¹ ∇_a J,
                    B_{k+1} = B_k − (B_k s_k s_kᵀ B_k)/(s_kᵀ B_k s_k) + (y_k y_kᵀ)/(y_kᵀ s_k),
    with s_k = a_new − a_old and y_k = ∇_a J_new − ∇_a J_old. The optimizer keeps the INVERSE
    H_k = B_k⁻¹ (state ``"H"``) and applies the equivalent inverse form (:func:`bfgs_inverse_update`),
    so the direction d_k = −H_k ∇_a J costs a matrix-vector product. α is found by the line search
    starting at ``lr`` (the first iteration starts at min(1, 1/‖∇J‖₁)·lr, like torch.optim.LBFGS), and
    before the first update H₀ = (yᵀs / yᵀy) I (Nocedal & Wright eq. 6.20). The update is skipped when
    the curvature condition y_kᵀ s_k > 0 fails (B_{k+1} would not be positive definite).

    Closure contract: ``step(closure)`` like ``torch.optim.LBFGS``. The closure re-evaluates the
    model and returns the scalar loss; it may call ``zero_grad()`` and ``loss.backward()`` itself, or
    only return the loss: the grads are set to ``None`` before each call and, if still ``None``
    afterwards, computed by ``torch.autograd.grad(loss, params)``. ``closure_returns = "loss"``.
    ``step`` returns the loss at the START of the step. All tensors of all groups are flattened into
    one vector a (hyperparameters must be equal across groups). Dense: refuses (``ConfigError``)
    when the n×n matrix H would exceed ``max_dense_bytes``. ``state_dict()`` carries H and the last
    point and gradient, so a resumed run continues exactly.

    Args:
        lr: initial trial step α₀ of the line search (the fixed step when ``line_search_fn=None``).
        max_iter: iterations per ``step``. max_eval: closure calls per ``step`` (default 1.25·max_iter).
        tolerance_grad: stop when max|∇J| ≤ it. tolerance_change: stop when the step or the loss
            change is smaller. line_search_fn: ``"strong_wolfe"`` (default), ``"backtracking"`` or None.
        max_dense_bytes: memory limit for H (default 2 GiB).
    """

    name = "bfgs"
    dense = True
    closure_returns = "loss"

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        line_search_fn: str | None = "strong_wolfe",
        max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
    ):
        defaults = self.common_defaults(
            lr, max_iter, max_eval, tolerance_grad, tolerance_change, line_search_fn
        )
        defaults["max_dense_bytes"] = max_dense_bytes
        self._check_common(self.name, defaults)
        super().__init__(params, defaults)

    def _evaluate(self, closure: Callable[[], Any], x: torch.Tensor | None = None) -> Evaluation:
        return self._evaluate_loss(closure, x)

    def _direction(self, st: dict[str, Any], ev: Evaluation) -> torch.Tensor:
        if "H" not in st:
            return -ev.g
        return -(st["H"] @ ev.g)

    def _first_step(self, st: dict[str, Any], ev: Evaluation, d: torch.Tensor) -> float:
        lr = float(self.hp["lr"])
        return min(1.0, 1.0 / float(ev.g.abs().sum())) * lr if "H" not in st else lr

    def _update(self, st: dict[str, Any], s: torch.Tensor, y: torch.Tensor) -> None:
        ys = float(y.dot(s))
        if ys <= 1e-10:  # curvature condition yᵀs > 0 fails: keep H_k
            return
        if "H" not in st:
            st["H"] = torch.eye(s.numel(), dtype=s.dtype, device=s.device) * (ys / float(y.dot(y)))
        st["H"] = bfgs_inverse_update(st["H"], s, y)


register(
    "bfgs",
    BFGS,
    kind="second-order",
    summary="BFGS quasi-Newton (dense inverse-Hessian update) with strong-Wolfe line search; closure-driven",
    hparams=[
        *loop_hparams("initial line-search step α₀"),
        Fixed("max_dense_bytes", doc="memory limit of the n×n matrix H"),
    ],
)
