"""Adam and AdamW (seed section 3.3)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from raytune_opt.optim._checks import check_betas, check_positive
from raytune_opt.optim._first_order import FLAGS, Bucket, FirstOrderOptimizer, effective_grads
from raytune_opt.optim.registry import Choices, Fixed, Range, register

__all__ = ["ADAMW_LR", "ADAMW_WEIGHT_DECAY", "Adam", "AdamW", "adam_update", "adamw_update"]


def adam_update(
    params: list[Tensor],
    grads: list[Tensor],
    m: list[Tensor],
    s: list[Tensor],
    *,
    steps: list[float],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    decoupled: bool = False,
) -> None:
    """V ← β₁ V + (1−β₁) g ; S ← β₂ S + (1−β₂) g² ; w ← w − η V/(1−β₁ᵗ) / (√(S/(1−β₂ᵗ)) + ε).

    ``decoupled``: AdamW, w ← w − η λ w_{t−1} first and g without λ w.
    """
    if decoupled:
        g = effective_grads(params, grads, 0.0, maximize)
        if weight_decay != 0:
            torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    else:
        g = effective_grads(params, grads, weight_decay, maximize)
    torch._foreach_mul_(m, beta1)
    torch._foreach_add_(m, g, alpha=1.0 - beta1)
    torch._foreach_mul_(s, beta2)
    torch._foreach_addcmul_(s, g, g, value=1.0 - beta2)
    denom = torch._foreach_sqrt(s)
    torch._foreach_div_(denom, [math.sqrt(1.0 - beta2**t) for t in steps])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, m, denom, [-lr / (1.0 - beta1**t) for t in steps])


def adamw_update(*lists: list[Tensor], **hyper: Any) -> None:
    """AdamW: :func:`adam_update` with decoupled weight decay."""
    adam_update(*lists, **hyper, decoupled=True)


class Adam(FirstOrderOptimizer):
    r"""Adam (seed 3.3), moments V (state ``exp_avg``) and S (state ``exp_avg_sq``), V₀ = S₀ = 0, step t:

        V ← β₁ V + (1 − β₁) g
        S ← β₂ S + (1 − β₂) g²
        V̂ = V / (1 − β₁ᵗ),   Ŝ = S / (1 − β₂ᵗ)
        w ← w − η V̂ / (√Ŝ + ε)                                  (ε outside the root)

    ``weight_decay`` λ is coupled (L2: g ← g + λ w); use :class:`AdamW` for the decoupled form.
    The default path is torch's fused Adam kernel, which computes this equation (for parameters laid
    out densely like their gradients and state; strided views take the foreach rule).

    Args:
        lr: η ≥ 0; betas: (β₁, β₂), each in [0, 1); eps: ε > 0; weight_decay: λ ≥ 0;
        maximize, fused, foreach: as :class:`~raytune_opt.optim.SGD`.
    """

    name = "adam"
    native_kernel = True
    state_keys = ("exp_avg", "exp_avg_sq")
    counts_steps = True
    rule = staticmethod(adam_update)
    _kernel = staticmethod(torch._fused_adam_)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
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
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                maximize=maximize,
                fused=fused,
                foreach=foreach,
            ),
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        check_betas(self.name, group["betas"])
        check_positive(self.name, "eps", group["eps"])

    def _rule_hyper(self, b: Bucket, hyper: dict[str, Any]) -> dict[str, Any]:
        return {**hyper, "steps": [float(t) for t in b.steps]}

    def _native(self, b: Bucket, hyper: dict[str, Any]) -> bool:
        type(self)._kernel(
            b.params,
            b.grads,
            b.buffers["exp_avg"],
            b.buffers["exp_avg_sq"],
            [],
            b.steps,
            lr=hyper["lr"],
            beta1=hyper["beta1"],
            beta2=hyper["beta2"],
            weight_decay=hyper["weight_decay"],
            eps=hyper["eps"],
            amsgrad=False,
            maximize=hyper["maximize"],
        )
        return True


class AdamW(Adam):
    r"""AdamW (seed 3.3): Adam with decoupled weight decay λ applied to the previous weights,

        w ← w − η V̂ / (√Ŝ + ε) − η λ w_{t−1}

    (V̂, Ŝ as in :class:`Adam`, from the raw gradient). Biases must not be decayed: build the optimizer
    with ``raytune_opt.optim.create("adamw", module)``, which puts tensors with ``ndim < 2`` in a group
    with ``weight_decay = 0``. The default path is torch's fused AdamW kernel (dense-layout parameters;
    strided views take the foreach rule); ``fused``, ``foreach``: as :class:`~raytune_opt.optim.SGD`.
    """

    name = "adamw"
    rule = staticmethod(adamw_update)
    _kernel = staticmethod(torch._fused_adamw_)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        weight_decay: float = 1e-2,
        maximize: bool = False,
        fused: bool | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay=weight_decay,
            maximize=maximize,
            fused=fused,
            foreach=foreach,
        )


ADAMW_LR = Range("lr", 1e-4, 1e-2, log=True, doc="learning rate η (seed: start at 1e-3)")
"""Adam's and AdamW's lr range; Lion's is derived from it (``lion.py``)."""
ADAMW_WEIGHT_DECAY = Range("weight_decay", 1e-3, 1e-1, log=True, doc="decoupled weight decay λ")
"""AdamW's weight-decay range; Lion's is derived from it (``lion.py``)."""
_BETAS = Choices(
    "betas",
    ((0.9, 0.999), (0.95, 0.999), (0.99, 0.999)),
    doc="(β₁, β₂); seed: β₁ in 0.9–0.99 often works well",
)
_EPS = Fixed("eps", doc="ε outside the root")

register(
    "adam",
    Adam,
    "first-order",
    "bias-corrected moments; w ← w − η V̂ / (√Ŝ + ε)",
    [
        ADAMW_LR,
        _BETAS,
        _EPS,
        Range("weight_decay", 1e-6, 1e-2, log=True, doc="coupled L2 coefficient λ"),
        *FLAGS,
    ],
)
register(
    "adamw",
    AdamW,
    "first-order",
    "Adam, then w ← w − η λ w_{t−1} (decoupled)",
    [ADAMW_LR, _BETAS, _EPS, ADAMW_WEIGHT_DECAY, *FLAGS],
)
