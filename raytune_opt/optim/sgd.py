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
from raytune_opt.optim._first_order import FLAGS, Bucket, FirstOrderOptimizer, effective_grads, scalar
from raytune_opt.optim.registry import UNIT, Range, register

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
        params: parameters or parameter-group dicts (complex ones are stepped as ``view_as_real``).
        lr: learning rate α ≥ 0.
        weight_decay: coupled L2 coefficient λ ≥ 0 (added to g).
        maximize: ascend J instead of descending.
        fused, foreach: torch's flags, choosing how the step runs (``optim._dispatch``). Default (both
            ``None``): torch's native fused SGD kernel for parameters laid out densely like their
            gradients (a strided view takes the foreach rule); the multi-tensor ``torch._foreach_*``
            rule for the rest, on the CPU applied to ~1 MiB blocks by worker threads. ``fused=True``: a
            fused kernel always (native, else the rule compiled by ``torch.compile``); ``fused=False``:
            never one. ``foreach=True``: the foreach rule over whole tensors; ``foreach=False``: never
            it (tensor by tensor where no fused kernel runs). ``fused=True`` with ``foreach=True`` is a
            ``ConfigError``, as in torch.
    """

    name = "sgd"
    native_kernel = True
    rule = staticmethod(sgd_update)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        *,
        weight_decay: float = 0.0,
        maximize: bool = False,
        fused: bool | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params, dict(lr=lr, weight_decay=weight_decay, maximize=maximize, fused=fused, foreach=foreach)
        )

    def _native(self, b: Bucket, hyper: dict[str, Any]) -> bool:
        torch._fused_sgd_(
            b.params,
            b.grads,
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
    α, the seed's form (used here) keeps past steps at the rate they were taken with.

    It therefore **still moves at lr = 0**: with α = 0 the step is v ← γ v ; a ← a − v, the velocity
    built before decaying by γ per step (torch's SGD, a ← a − α·buf, stops). This matters under a
    warm-up from 0 — a resumed run or a warm restart whose schedule starts at lr = 0 keeps moving while
    lr is 0 — and during any warm-up, since each gradient enters v weighted by the lr of its own step
    (the accumulated velocity is not rescaled when lr grows, as torch's buf is). Reset the state, or
    keep lr > 0, where a step at lr = 0 must leave the parameters unchanged.

    The default path runs torch's fused SGD kernel with lr = 1 and dampening = 1 − α, which computes
    exactly this (for dense-layout parameters; strided views and γ = 0 take the foreach rule).

    Args:
        lr: learning rate α ≥ 0; momentum: γ in [0, 1); weight_decay: coupled L2 λ ≥ 0;
        maximize, fused, foreach: as :class:`SGD`.
    """

    name = "momentum"
    native_kernel = True
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
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                maximize=maximize,
                fused=fused,
                foreach=foreach,
            ),
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        check_unit(self.name, "momentum", group["momentum"])

    def _native(self, b: Bucket, hyper: dict[str, Any]) -> bool:
        if hyper["momentum"] == 0:  # the kernel skips the buffer when γ = 0; the rule keeps v = α g
            return False
        torch._fused_sgd_(
            b.params,
            b.grads,
            b.buffers["momentum_buffer"],
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
    c as it is: u ← γ u ; b ← b − γ c u.) The default path runs the native kernel (for dense-layout
    parameters; strided views and γ = 0 take the foreach rule); ``fused``, ``foreach``: as :class:`SGD`.

    Like :class:`Momentum` (the seed's form v ← γ v + α g) it **still moves at lr = 0**: v ← γ v and
    the parameter by −γ v; under a warm-up from 0 with a non-zero velocity (a resumed run, a warm
    restart) the lr = 0 steps are not no-ops, and each gradient enters v at the lr of its own step.
    """

    name = "nesterov"
    rule = staticmethod(nesterov_update)

    def _update(self, b: Bucket, hyper: dict[str, Any], fused: bool | None, foreach: bool | None) -> None:
        lr, gamma = hyper["lr"], hyper["momentum"]
        scales = [self.state[p].get("momentum_scale") for p in b.sources]
        for c in dict.fromkeys(scales):  # usually one scale for the whole bucket
            idx = [i for i, s in enumerate(scales) if s == c]
            sub = b if len(idx) == len(scales) else b.subset(idx)
            u = sub.buffers["momentum_buffer"]
            if lr == 0.0:  # v ← γ v ; b ← b − γ v, in u = v / c (c unchanged; u = 0 while c is unset)
                torch._foreach_mul_(u, gamma)
                if c is not None:
                    torch._foreach_add_(sub.params, u, alpha=-gamma * c)
                continue
            c = lr if c is None else c  # u = 0 so far: any scale represents it
            ratio = math.sqrt(c / lr)
            kernel = dict(hyper, momentum=gamma * ratio, dampening=1.0 - 1.0 / ratio)
            super()._update(sub, kernel, fused, foreach)
            new_scale = math.sqrt(c * lr) if c != lr else lr
            for p in sub.sources:
                self.state[p]["momentum_scale"] = new_scale

    def _native(self, b: Bucket, hyper: dict[str, Any]) -> bool:
        if hyper["momentum"] == 0:  # the kernel leaves the buffer alone when μ = 0; the rule updates it
            return False
        torch._fused_sgd_(
            b.params,
            b.grads,
            b.buffers["momentum_buffer"],
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


_LR = Range("lr", 1e-3, 1.0, log=True, doc="learning rate α")
_WD = Range("weight_decay", 1e-6, 1e-2, log=True, doc="coupled L2 coefficient λ (added to g)")
_MOMENTUM = Range("momentum", 0.9, 0.99, doc="momentum γ (seed: 0.9–0.99 often works well)", bounds=UNIT)

register("sgd", SGD, "first-order", "a ← a − α g", [_LR, _WD, *FLAGS])
register("momentum", Momentum, "first-order", "v ← γ v + α g ; a ← a − v", [_LR, _MOMENTUM, _WD, *FLAGS])
register(
    "nesterov",
    Nesterov,
    "first-order",
    "v ← γ v + α ∇J(a − γ v) ; a ← a − v (parameter holds a − γ v)",
    [_LR, _MOMENTUM, _WD, *FLAGS],
)
