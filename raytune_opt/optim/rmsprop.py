"""RMSProp (seed section 3.3), with ε inside the root and optional momentum on the step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from raytune_opt.optim._checks import check_positive, check_unit
from raytune_opt.optim._first_order import FLAGS, FirstOrderOptimizer, effective_grads, scalar
from raytune_opt.optim.registry import UNIT, Fixed, Range, register

__all__ = ["RMSProp", "rmsprop_update"]


def rmsprop_update(
    params: list[Tensor],
    grads: list[Tensor],
    v: list[Tensor],
    u: list[Tensor] | None = None,
    *,
    lr: float,
    beta: float,
    eps: float,
    momentum: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """v ← β v + (1 − β) g² ; a ← a − α g / √(v + ε)  (or u ← γ u + α g / √(v + ε) ; a ← a − u)."""
    g = effective_grads(params, grads, weight_decay, maximize)
    torch._foreach_mul_(v, beta)
    torch._foreach_addcmul_(v, g, g, value=1.0 - beta)
    root = torch._foreach_add(v, eps)
    torch._foreach_sqrt_(root)
    if u is None:
        torch._foreach_addcdiv_(params, g, root, value=-lr)
    else:
        torch._foreach_mul_(u, momentum)
        torch._foreach_addcdiv_(u, g, root, value=lr)
        torch._foreach_sub_(params, u)


class RMSProp(FirstOrderOptimizer):
    r"""RMSProp (seed 3.3), mean square v (state ``square_avg``, v₀ = 0):

        v ← β v + (1 − β) g²
        a ← a − α g / √(v + ε)                         (``momentum`` γ = 0, the seed's form)

    With ``momentum`` γ > 0 the step goes through a velocity u (state ``momentum_buffer``, created
    when γ first becomes > 0) as in the seed's momentum method: u ← γ u + α g / √(v + ε); a ← a − u.

    Unlike ``torch.optim.RMSprop`` (ε outside the root), ε sits inside the root as the seed writes it;
    torch has no fused RMSProp kernel. Default path: on the CPU this project's single-pass kernel
    (``_kernels.rmsprop_update``) once a bucket's contiguous float32/float64 parameters are large
    (``_dispatch.KERNEL_MIN_TOTAL``), the foreach rule cache-blocked below that; on other devices the
    foreach rule. ``fused=True`` always takes one pass (the CPU kernel; compiled by ``torch.compile``
    on CUDA and for half precision).

    Args:
        lr: α ≥ 0; beta: β in [0, 1); eps: ε > 0; momentum: γ in [0, 1);
        weight_decay: coupled L2 λ ≥ 0; maximize, fused, foreach: as :class:`~raytune_opt.optim.SGD`.
    """

    name = "rmsprop"
    state_keys = ("square_avg", "momentum_buffer")
    compiled_tensors = ("lr", "momentum")
    rule = staticmethod(rmsprop_update)
    cpu_kernel = "rmsprop_update"

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        beta: float = 0.9,
        eps: float = 1e-8,
        momentum: float = 0.0,
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
                beta=beta,
                eps=eps,
                momentum=momentum,
                weight_decay=weight_decay,
                maximize=maximize,
                fused=fused,
                foreach=foreach,
            ),
        )

    def _buffer_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return self.state_keys if scalar(group["momentum"]) != 0 else ("square_avg",)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_unit(self.name, "beta", group["beta"])
        check_positive(self.name, "eps", group["eps"])
        check_unit(self.name, "momentum", group["momentum"])


register(
    "rmsprop",
    RMSProp,
    "first-order",
    "v ← β v + (1−β) g² ; a ← a − α g / √(v + ε)",
    [
        Range("lr", 1e-5, 1e-1, log=True, doc="learning rate α"),
        Range("beta", 0.8, 0.999, doc="decay rate β of the mean square (seed: typically 0.9)", bounds=UNIT),
        Fixed("eps", doc="ε inside the root"),
        Range("momentum", 0.0, 0.99, doc="momentum γ on the step (0 = the seed's RMSProp)", bounds=UNIT),
        Range("weight_decay", 1e-6, 1e-2, log=True, doc="coupled L2 coefficient λ"),
        *FLAGS,
    ],
)
