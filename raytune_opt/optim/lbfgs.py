"""L-BFGS (seed §3.2): BFGS with a limited history, applied by the two-loop recursion."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from raytune_opt.optim import _checks
from raytune_opt.optim._flat import Evaluation
from raytune_opt.optim.linesearch import LineSearchOptimizer, loop_hparams
from raytune_opt.optim.registry import Range, register

__all__ = ["LBFGS", "two_loop"]


def two_loop(
    g: torch.Tensor, s_hist: list[torch.Tensor], y_hist: list[torch.Tensor], gamma: float
) -> torch.Tensor:
    """H_k ∇J by the two-loop recursion (Nocedal & Wright Alg. 7.4), H_k = B_k⁻¹ of the seed's update
    applied to the last m pairs (s_i, y_i) starting from B⁰ = I/γ, γ = s_{k−1}ᵀy_{k−1} / y_{k−1}ᵀy_{k−1}:

        q ← ∇J;  for i = k−1 … k−m:  α_i = ρ_i s_iᵀ q,  q ← q − α_i y_i        (ρ_i = 1/(y_iᵀ s_i))
        r ← γ q; for i = k−m … k−1:  β = ρ_i y_iᵀ r,   r ← r + s_i (α_i − β)
    """
    q = g.clone()
    rho = [1.0 / float(y.dot(s)) for s, y in zip(s_hist, y_hist, strict=True)]
    alpha = [0.0] * len(s_hist)
    for i in range(len(s_hist) - 1, -1, -1):
        alpha[i] = rho[i] * float(s_hist[i].dot(q))
        q.add_(y_hist[i], alpha=-alpha[i])
    r = q.mul_(gamma)
    for i in range(len(s_hist)):
        beta = rho[i] * float(y_hist[i].dot(r))
        r.add_(s_hist[i], alpha=alpha[i] - beta)
    return r


class LBFGS(LineSearchOptimizer):
    """Limited-memory BFGS with a strong-Wolfe line search (seed §3.2).

    Update (seed):  a_new = a_old − α B_k⁻¹ ∇_a J with B_k the seed's BFGS update
    B_{k+1} = B_k − (B_k s_k s_kᵀ B_k)/(s_kᵀ B_k s_k) + (y_k y_kᵀ)/(y_kᵀ s_k) applied to the last
    ``history_size`` pairs s_k = a_new − a_old, y_k = ∇_a J_new − ∇_a J_old, starting from B⁰ = I/γ;
    B_k⁻¹ ∇J is never formed as a matrix but computed by the two-loop recursion (:func:`two_loop`),
    O(history_size · n) memory and time. A pair with y_kᵀ s_k ≤ 1e-10 (curvature condition) is skipped.

    Differences from ``torch.optim.LBFGS``: the strong-Wolfe line search is the DEFAULT (torch's
    default is a fixed step, which diverges or stalls on badly scaled problems such as Rosenbrock),
    the loss-only closure is accepted, and several parameter groups are allowed.

    Closure contract: ``step(closure)`` like ``torch.optim.LBFGS``. The closure re-evaluates the
    model and returns the scalar loss; it may call ``zero_grad()`` and ``loss.backward()`` itself, or
    only return the loss: the grads are set to ``None`` before each call and, if still ``None``
    afterwards, computed by ``torch.autograd.grad(loss, params)``. ``closure_returns = "loss"``.
    ``step`` returns the loss at the START of the step. All tensors of all groups are flattened into
    one vector (hyperparameters equal across groups). ``state_dict()`` carries the history
    (``old_dirs`` = s, ``old_stps`` = y), so a resumed run continues exactly.

    Args:
        lr: initial trial step α₀ (the fixed step when ``line_search_fn=None``).
        max_iter: iterations per ``step``. max_eval: closure calls per ``step`` (default 1.25·max_iter).
        tolerance_grad, tolerance_change: stopping rules of torch.optim.LBFGS.
        history_size: number m of (s, y) pairs kept. line_search_fn: ``"strong_wolfe"`` (default),
            ``"backtracking"`` or None.
    """

    name = "lbfgs"
    dense = False
    closure_returns = "loss"

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = "strong_wolfe",
    ):
        defaults = self.common_defaults(
            lr, max_iter, max_eval, tolerance_grad, tolerance_change, line_search_fn
        )
        defaults["history_size"] = history_size
        self._check_common(self.name, defaults)
        _checks.check_int(self.name, "history_size", history_size)
        super().__init__(params, defaults)

    def _evaluate(self, closure: Callable[[], Any], x: torch.Tensor | None = None) -> Evaluation:
        return self._evaluate_loss(closure, x)

    def _direction(self, st: dict[str, Any], ev: Evaluation) -> torch.Tensor:
        if not st.get("old_dirs"):
            return -ev.g
        return -two_loop(ev.g, st["old_dirs"], st["old_stps"], st["H_diag"])

    def _first_step(self, st: dict[str, Any], ev: Evaluation, d: torch.Tensor) -> float:
        lr = float(self.hp["lr"])
        return min(1.0, 1.0 / float(ev.g.abs().sum())) * lr if not st.get("old_dirs") else lr

    def _update(self, st: dict[str, Any], s: torch.Tensor, y: torch.Tensor) -> None:
        ys = float(y.dot(s))
        if ys <= 1e-10:
            return
        s_hist, y_hist = st.setdefault("old_dirs", []), st.setdefault("old_stps", [])
        if len(s_hist) == self.hp["history_size"]:
            s_hist.pop(0)
            y_hist.pop(0)
        s_hist.append(s)
        y_hist.append(y)
        st["H_diag"] = ys / float(y.dot(y))


register(
    "lbfgs",
    LBFGS,
    kind="second-order",
    summary="L-BFGS (two-loop recursion, history_size pairs) with strong-Wolfe line search; closure-driven",
    hparams=[
        *loop_hparams("initial line-search step α₀"),
        Range("history_size", 5, 200, log=True, doc="number of (s, y) pairs kept", bounds=(1, math.inf)),
    ],
)
