"""Gradient descent and its momentum variants (seed section 3.1): ``SGD``, ``Momentum``, ``Nesterov``.

Full-batch gradient descent is ``SGD`` fed the whole data set (the seed's a ← a − α (1/n) Σᵢ ∇J_i);
the training loop decides the batch size.
"""

from __future__ import annotations

import math
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
    u: list[Tensor],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """u ← μ u + (1 − d) g ; b ← b − L (g + μ u): ``torch.optim.SGD(nesterov=True)``'s equation in its
    parameters (L, μ, d) = (``lr``, ``momentum``, ``dampening``), which :class:`Nesterov` sets from α, γ and
    the buffer's scale so that it is the seed's update (see there)."""
    g = effective_grads(params, grads, weight_decay, maximize)
    torch._foreach_mul_(u, momentum)
    torch._foreach_add_(u, g, alpha=1.0 - dampening)
    torch._foreach_add_(params, g, alpha=-lr)
    torch._foreach_add_(params, u, alpha=-lr * momentum)


class SGD(FirstOrderOptimizer):
    r"""Stochastic gradient descent (seed 3.1):

        a ← a − α g,        g = ∇_a J (+ λ a with ``weight_decay`` λ; −∇_a J with ``maximize``)

    Args:
        params: parameters or parameter-group dicts.
        lr: learning rate α ≥ 0.
        weight_decay: coupled L2 coefficient λ ≥ 0 (added to g).
        maximize: ascend J instead of descending.
        fused: ``None`` (default) torch's native fused kernel where it computes this equation, else
            (Lion, RMSProp) on the CPU this project's single-pass kernel for large float32/float64
            parameters, else the multi-tensor ``torch._foreach_*`` path (on the CPU cache-blocked:
            applied to ~1 MiB blocks by worker threads); ``True`` a single-pass kernel always (native,
            the CPU kernel, or the foreach rule compiled by ``torch.compile``); ``False`` the foreach
            path over whole tensors. (See ``optim._first_order``.)
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
    r"""Nesterov accelerated gradient (seed 3.1), velocity v (v₀ = 0):

        v ← γ v + α ∇J(a − γ v)
        a ← a − v

    The parameter tensor holds the look-ahead point b = a − γ v, not a, so the gradient autograd
    computes at the parameter is the seed's ∇J(a − γ v), with no second forward pass. In b the
    update reads

        v' = γ v + α g,   b' = a' − γ v' = b − α g − γ v'      (g = ∇J(b))

    which is ``torch.optim.SGD(momentum=γ, nesterov=True)`` at constant α. Recover the seed's iterate
    a = b + γ v with :meth:`iterate` (a = b at the start, where v = 0).

    State: v is kept scaled, ``momentum_buffer`` u = v / c with the scale c in ``momentum_scale`` (a
    float; torch keeps u = v / α). Then one pass of torch's fused Nesterov kernel, u ← μ u + (1 − d) g ;
    b ← b − L (g + μ u), is the seed's step for L = α, μ = γ √(c/α), 1 − d = √(α/c), after which
    c ← √(c α): at constant α (c = α) it is torch's own step (μ = γ, d = 0), and after an lr change it
    is still exact — the scale follows α geometrically, no extra pass over the buffer. (α = 0 leaves
    c as it is: u ← γ u ; b ← b − γ c u.) The native kernel runs by default and with ``fused=True``;
    ``fused=False`` runs the same equation as foreach ops.
    """

    name = "nesterov"
    rule = staticmethod(nesterov_update)

    def _apply(self, b: Bucket, lists: tuple[Any, ...], hyper: dict[str, Any], fused: bool | None) -> None:
        lr, gamma = hyper["lr"], hyper["momentum"]
        scales = [self.state[p].get("momentum_scale") for p in b.params]
        for c in dict.fromkeys(scales):  # usually one scale for the whole bucket
            idx = [i for i, s in enumerate(scales) if s == c]
            sub = lists if len(idx) == len(scales) else tuple([t[i] for i in idx] for t in lists)
            params, _, u = sub
            if lr == 0.0:  # v ← γ v ; b ← b − γ v, in u = v / c (c unchanged; u = 0 while c is unset)
                torch._foreach_mul_(u, gamma)
                if c is not None:
                    torch._foreach_add_(params, u, alpha=-gamma * c)
                continue
            c = lr if c is None else c  # u = 0 so far: any scale represents it
            ratio = math.sqrt(c / lr)
            kernel = dict(hyper, momentum=gamma * ratio, dampening=1.0 - 1.0 / ratio)
            super()._apply(b, sub, kernel, fused)
            new_scale = math.sqrt(c * lr) if c != lr else lr
            for p in params:
                self.state[p]["momentum_scale"] = new_scale

    def _native(self, b: Bucket, lists: tuple[Any, ...], hyper: dict[str, Any]) -> bool:
        if hyper["momentum"] == 0:  # the kernel leaves the buffer alone when μ = 0; the rule updates it
            return False
        params, grads, u = lists
        torch._fused_sgd_(
            params,
            grads,
            u,
            weight_decay=hyper["weight_decay"],
            momentum=hyper["momentum"],
            lr=hyper["lr"],
            dampening=hyper["dampening"],
            nesterov=True,
            maximize=hyper["maximize"],
            is_first_step=False,
        )
        return True

    @torch.no_grad()
    def iterate(self) -> list[Tensor]:
        """The seed's iterate a = b + γ v of every parameter (b: the look-ahead point), as new tensors."""
        out = []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                u, c = state.get("momentum_buffer"), state.get("momentum_scale")
                if u is None or c is None:
                    out.append(p.detach().clone())
                else:
                    out.append(p.detach() + (scalar(group["momentum"]) * c) * u)
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
