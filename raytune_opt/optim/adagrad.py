"""Adagrad (seed section 3.3), with the decaying variant the seed mentions (ρ < 1)."""

from __future__ import annotations

from typing import Any

import torch

from raytune_opt.optim._checks import check_positive, check_unit
from raytune_opt.optim._first_order import Bucket, FirstOrderOptimizer, effective_grads, scalar
from raytune_opt.optim.registry import HParam, register

__all__ = ["Adagrad"]


class Adagrad(FirstOrderOptimizer):
    r"""Adagrad (seed 3.3), accumulated squared gradients G (G₀ = 0):

        G ← ρ G + g²
        a ← a − α g / √(G + ε)

    ``decay`` ρ = 1 is the seed's Adagrad; ρ < 1 its decaying variant ("combining Adagrad-like
    accumulation with decay"). ε sits inside the root as the seed writes it (``torch.optim.Adagrad``
    adds it outside).

    State ``sum`` holds the shifted accumulator S = G + ε (S₀ = ε), so the step is a ← a − α g / √S
    with one read of S; the recursion for S is S ← ρ S + g² + (1 − ρ) ε. Read G as ``sum − eps``.

    Args:
        lr: α ≥ 0; eps: ε > 0; decay: ρ in [0, 1]; weight_decay: coupled L2 λ ≥ 0;
        maximize, fused: as :class:`~raytune_opt.optim.SGD`.
    """

    name = "adagrad"
    state_keys = ("sum",)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        eps: float = 1e-10,
        decay: float = 1.0,
        *,
        weight_decay: float = 0.0,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(lr=lr, eps=eps, decay=decay, weight_decay=weight_decay, maximize=maximize, fused=fused),
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        check_positive(self.name, "eps", group["eps"])
        check_unit(self.name, "decay", group["decay"], closed=True)

    def _init_fill(self, key: str, group: dict[str, Any]) -> float:
        return scalar(group["eps"])

    @staticmethod
    def _foreach(group: dict[str, Any], b: Bucket) -> None:
        g = effective_grads(b.params, b.grads, group["weight_decay"], group["maximize"])
        s = b.buffers["sum"]
        rho = scalar(group["decay"])
        if rho != 1.0:
            torch._foreach_mul_(s, rho)
            torch._foreach_add_(s, (1.0 - rho) * scalar(group["eps"]))
        torch._foreach_addcmul_(s, g, g)
        root = torch._foreach_sqrt(s)
        torch._foreach_addcdiv_(b.params, g, root, value=-scalar(group["lr"]))


register(
    "adagrad",
    Adagrad,
    "first-order",
    "G ← ρ G + g² ; a ← a − α g / √(G + ε)",
    [
        HParam("lr", 1e-2, 1e-3, 1.0, log=True, doc="learning rate α"),
        HParam("eps", 1e-10, doc="ε inside the root"),
        HParam("decay", 1.0, 0.9, 1.0, doc="accumulator decay ρ (1 = the seed's Adagrad)"),
        HParam("weight_decay", 0.0, 1e-6, 1e-2, log=True, doc="coupled L2 coefficient λ"),
        HParam("maximize", False, doc="ascend instead of descend"),
        HParam(
            "fused",
            None,
            doc="None: native fused kernel where exact; True: always single-pass; False: foreach",
        ),
    ],
)
