"""Adagrad (seed section 3.3), with the decaying variant the seed mentions (ρ < 1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from raytune_opt.optim._checks import check_positive, check_unit
from raytune_opt.optim._first_order import FLAGS, Bucket, FirstOrderOptimizer, effective_grads, scalar
from raytune_opt.optim.registry import UNIT, Fixed, Range, register

__all__ = ["Adagrad", "adagrad_update"]


def _decay_shifted(s: list[Tensor], decay: float, eps: float) -> None:
    """S ← ρ S + (1 − ρ) ε: the decay part of the shifted accumulator's recursion (nothing when ρ = 1)."""
    if decay != 1.0:
        torch._foreach_mul_(s, decay)
        torch._foreach_add_(s, (1.0 - decay) * eps)


def adagrad_update(
    params: list[Tensor],
    grads: list[Tensor],
    s: list[Tensor],
    *,
    lr: float,
    eps: float,
    decay: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """S ← ρ S + (1 − ρ) ε + g² ; a ← a − α g / √S.

    With S = G + ε this is the seed's G ← ρ G + g² ; a ← a − α g / √(G + ε).
    """
    g = effective_grads(params, grads, weight_decay, maximize)
    _decay_shifted(s, decay, eps)
    torch._foreach_addcmul_(s, g, g)
    root = torch._foreach_sqrt(s)
    torch._foreach_addcdiv_(params, g, root, value=-lr)


class Adagrad(FirstOrderOptimizer):
    r"""Adagrad (seed 3.3), accumulated squared gradients G (G₀ = 0):

        G ← ρ G + g²
        a ← a − α g / √(G + ε)

    ``decay`` ρ = 1 is the seed's Adagrad; ρ < 1 its decaying variant ("combining Adagrad-like
    accumulation with decay"). ε sits inside the root as the seed writes it (``torch.optim.Adagrad``
    adds it outside).

    State ``sum`` holds the shifted accumulator S = G + ε (S₀ = ε), so the step is a ← a − α g / √S
    with one read of S; its recursion is S ← ρ S + (1 − ρ) ε + g². Read G as ``sum − eps``. This is
    what lets torch's fused Adagrad kernel (run with its ε = 0 and lr_decay = 0) compute the seed's
    equation exactly; for ρ < 1 one extra pass applies the decay first. That kernel is the default path
    (for parameters laid out densely like their gradients and state; strided views take the foreach
    rule).

    Args:
        lr: α ≥ 0; eps: ε > 0; decay: ρ in [0, 1]; weight_decay: coupled L2 λ ≥ 0;
        maximize, fused, foreach: as :class:`~raytune_opt.optim.SGD`.
    """

    name = "adagrad"
    native_kernel = True
    state_keys = ("sum",)
    counts_steps = True  # torch's fused kernel reads t (for its lr_decay, which is 0 here)
    rule = staticmethod(adagrad_update)

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
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                eps=eps,
                decay=decay,
                weight_decay=weight_decay,
                maximize=maximize,
                fused=fused,
                foreach=foreach,
            ),
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        check_positive(self.name, "eps", group["eps"])
        check_unit(self.name, "decay", group["decay"], closed=True)

    def _init_fill(self, key: str, group: dict[str, Any]) -> float:
        return scalar(group["eps"])

    def _native(self, b: Bucket, hyper: dict[str, Any]) -> bool:
        s = b.buffers["sum"]
        _decay_shifted(s, hyper["decay"], hyper["eps"])
        torch._fused_adagrad_(
            b.params,
            b.grads,
            s,
            b.steps,
            lr=hyper["lr"],
            lr_decay=0.0,
            weight_decay=hyper["weight_decay"],
            eps=0.0,
            maximize=hyper["maximize"],
        )
        return True


register(
    "adagrad",
    Adagrad,
    "first-order",
    "G ← ρ G + g² ; a ← a − α g / √(G + ε)",
    [
        Range("lr", 1e-3, 1.0, log=True, doc="learning rate α"),
        Fixed("eps", doc="ε inside the root"),
        Range("decay", 0.9, 1.0, doc="accumulator decay ρ (1 = the seed's Adagrad)", bounds=UNIT),
        Range("weight_decay", 1e-6, 1e-2, log=True, doc="coupled L2 coefficient λ"),
        *FLAGS,
    ],
)
