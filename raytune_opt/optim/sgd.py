"""Gradient descent and its momentum variants (seed section 3.1): ``SGD``, ``Momentum``, ``Nesterov``.

Full-batch gradient descent is ``SGD`` fed the whole data set (the seed's a ← a − α (1/n) Σᵢ ∇J_i);
the training loop decides the batch size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from raytune_opt.optim._checks import check_unit
from raytune_opt.optim._first_order import Bucket, FirstOrderOptimizer, effective_grads, scalar
from raytune_opt.optim.registry import HParam, register

__all__ = ["SGD", "Momentum", "Nesterov", "sgd_update", "momentum_update", "nesterov_update"]


def sgd_update(
    params: list[Tensor], grads: list[Tensor], *, lr: float, weight_decay: float, maximize: bool
) -> None:
    """a ← a − α g."""
    g = effective_grads(params, grads, weight_decay, maximize)
    torch._foreach_add_(params, g, alpha=-lr)


def momentum_update(
    params: list[Tensor],
    grads: list[Tensor],
    v: list[Tensor],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """v ← γ v + α g ; a ← a − v."""
    g = effective_grads(params, grads, weight_decay, maximize)
    torch._foreach_mul_(v, momentum)
    torch._foreach_add_(v, g, alpha=lr)
    torch._foreach_sub_(params, v)


def nesterov_update(
    params: list[Tensor],
    grads: list[Tensor],
    v: list[Tensor],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """In the look-ahead point b = a − γ v that the parameter holds: v ← γ v + α g ; b ← b − α g − γ v."""
    g = effective_grads(params, grads, weight_decay, maximize)
    torch._foreach_mul_(v, momentum)
    torch._foreach_add_(v, g, alpha=lr)
    torch._foreach_add_(params, g, alpha=-lr)
    torch._foreach_add_(params, v, alpha=-momentum)


class SGD(FirstOrderOptimizer):
    r"""Stochastic gradient descent (seed 3.1):

        a ← a − α g,        g = ∇_a J (+ λ a with ``weight_decay`` λ; −∇_a J with ``maximize``)

    Args:
        params: parameters or parameter-group dicts.
        lr: learning rate α ≥ 0.
        weight_decay: coupled L2 coefficient λ ≥ 0 (added to g).
        maximize: ascend J instead of descending.
        fused: ``None`` (default) torch's native fused kernel where it computes this equation, else
            the multi-tensor ``torch._foreach_*`` path; ``True`` a single-pass kernel always (native, or
            the foreach rule compiled by ``torch.compile``); ``False`` the foreach path.
    """

    name = "sgd"
    rule = staticmethod(sgd_update)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        *,
        weight_decay: float = 0.0,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, maximize=maximize, fused=fused))

    def _native(self, b: Bucket, lists: tuple[Any, ...], hyper: dict[str, Any]) -> bool:
        params, grads = lists
        torch._fused_sgd_(
            params,
            grads,
            [],
            weight_decay=hyper["weight_decay"],
            momentum=0.0,
            lr=hyper["lr"],
            dampening=0.0,
            nesterov=False,
            maximize=hyper["maximize"],
            is_first_step=False,
        )
        return True


class Momentum(FirstOrderOptimizer):
    r"""Gradient descent with momentum (seed 3.1), velocity v (state ``momentum_buffer``, v₀ = 0):

        v ← γ v + α g
        a ← a − v

    At constant α this is ``torch.optim.SGD(momentum=γ)`` (which keeps v/α); when a scheduler changes
    α, the seed's form (used here) keeps past steps at the rate they were taken with. The native path
    runs torch's fused SGD kernel with lr = 1 and dampening = 1 − α, which computes exactly this.

    Args:
        lr: learning rate α ≥ 0; momentum: γ in [0, 1); weight_decay: coupled L2 λ ≥ 0;
        maximize, fused: as :class:`SGD`.
    """

    name = "momentum"
    state_keys = ("momentum_buffer",)
    rule = staticmethod(momentum_update)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        momentum: float = 0.9,
        *,
        weight_decay: float = 0.0,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, maximize=maximize, fused=fused)
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        check_unit(self.name, "momentum", group["momentum"])

    def _native(self, b: Bucket, lists: tuple[Any, ...], hyper: dict[str, Any]) -> bool:
        if hyper["momentum"] == 0:  # the kernel skips the buffer when γ = 0; the rule keeps v = α g
            return False
        params, grads, v = lists
        torch._fused_sgd_(
            params,
            grads,
            v,
            weight_decay=hyper["weight_decay"],
            momentum=hyper["momentum"],
            lr=1.0,
            dampening=1.0 - hyper["lr"],
            nesterov=False,
            maximize=hyper["maximize"],
            is_first_step=False,
        )
        return True


class Nesterov(Momentum):
    r"""Nesterov accelerated gradient (seed 3.1), velocity v (state ``momentum_buffer``, v₀ = 0):

        v ← γ v + α ∇J(a − γ v)
        a ← a − v

    The parameter tensor holds the look-ahead point b = a − γ v, not a, so the gradient autograd
    computes at the parameter is the seed's ∇J(a − γ v), with no second forward pass. In b the
    update reads

        v' = γ v + α g,   b' = a' − γ v' = b − α g − γ v'      (g = ∇J(b))

    which is ``torch.optim.SGD(momentum=γ, nesterov=True)`` at constant α. Recover the seed's iterate
    a = b + γ v with :meth:`iterate` (a = b at the start, where v = 0).

    ``fused=True`` runs the rule compiled into one pass (torch's fused kernel keeps v/α, which is the
    seed's form only at constant α); the default is the foreach path.
    """

    name = "nesterov"
    rule = staticmethod(nesterov_update)

    def _native(self, b: Bucket, lists: tuple[Any, ...], hyper: dict[str, Any]) -> bool:
        return False

    @torch.no_grad()
    def iterate(self) -> list[Tensor]:
        """The seed's iterate a = b + γ v of every parameter (b: the look-ahead point), as new tensors."""
        out = []
        for group in self.param_groups:
            for p in group["params"]:
                v = self.state[p].get("momentum_buffer")
                out.append(p.detach().clone() if v is None else p.detach() + scalar(group["momentum"]) * v)
        return out


_LR = HParam("lr", 1e-2, 1e-3, 1.0, log=True, doc="learning rate α")
_WD = HParam("weight_decay", 0.0, 1e-6, 1e-2, log=True, doc="coupled L2 coefficient λ (added to g)")
_MOMENTUM = HParam("momentum", 0.9, 0.9, 0.99, doc="momentum γ (seed: 0.9–0.99 often works well)")
_MAXIMIZE = HParam("maximize", False, doc="ascend instead of descend")
_FUSED = HParam(
    "fused", None, doc="None: native fused kernel if exact; True: single-pass always; False: foreach"
)

register("sgd", SGD, "first-order", "a ← a − α g", [_LR, _WD, _MAXIMIZE, _FUSED])
register(
    "momentum", Momentum, "first-order", "v ← γ v + α g ; a ← a − v", [_LR, _MOMENTUM, _WD, _MAXIMIZE, _FUSED]
)
register(
    "nesterov",
    Nesterov,
    "first-order",
    "v ← γ v + α ∇J(a − γ v) ; a ← a − v (parameter holds a − γ v)",
    [_LR, _MOMENTUM, _WD, _MAXIMIZE, _FUSED],
)
