"""Lion, evolved sign momentum (seed section 3.4; Chen et al. 2023, "Symbolic Discovery of Optimization
Algorithms")."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from raytune_opt.errors import ConfigError
from raytune_opt.optim._checks import check_betas, check_choice
from raytune_opt.optim._first_order import FLAGS, FirstOrderOptimizer, effective_grads
from raytune_opt.optim.adam import ADAMW_LR, ADAMW_WEIGHT_DECAY
from raytune_opt.optim.registry import Choices, Fixed, Range, register

__all__ = ["STATE_DTYPES", "Lion", "lion_update"]


def lion_update(
    params: list[Tensor],
    grads: list[Tensor],
    m: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """c ← β₁ m + (1 − β₁) g ; θ ← θ − η (sgn(c) + λ θ) ; m ← β₂ m + (1 − β₂) g.

    The two interpolations are one ``lerp`` each (one pass). A momentum stored in a narrower dtype
    than the parameters (``state_dtype``) is widened to theirs, the step computed there, and the new
    m rounded back to its dtype (to nearest) once.
    """
    g = effective_grads(params, grads, 0.0, maximize)
    wide = m if m[0].dtype == params[0].dtype else [x.to(p.dtype) for x, p in zip(m, params, strict=True)]
    c = torch._foreach_lerp(wide, g, 1.0 - beta1)
    torch._foreach_sign_(c)
    if weight_decay != 0:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    torch._foreach_add_(params, c, alpha=-lr)
    torch._foreach_lerp_(wide, g, 1.0 - beta2)
    if wide is not m:
        torch._foreach_copy_(m, wide)


#: Lion's ``state_dtype`` values: the dtype its momentum is stored in (None: the parameter's)
STATE_DTYPES: dict[str | None, torch.dtype | None] = {None: None, "bfloat16": torch.bfloat16}


class Lion(FirstOrderOptimizer):
    r"""Lion (Chen et al. 2023), one momentum m (state ``exp_avg``, m₀ = 0):

        c ← β₁ m + (1 − β₁) g
        θ ← θ − η (sgn(c) + λ θ)
        m ← β₂ m + (1 − β₂) g

    The seed's simplified form m ← β₁ m + (1 − β₁) g ; θ ← θ − η sgn(m) is exactly β₁ = β₂ (then c is
    the new m). Weight decay λ is decoupled, as in AdamW; sgn(0) = 0. Lion's updates have a larger
    norm than AdamW's, so it wants an lr 3–10× smaller and a weight decay 3–10× larger (seed 3.4;
    Chen et al. §5): the defaults are AdamW's (1e-3, 1e-2) by 10 — η = 1e-4, λ = 0.1, the same decay
    per step η λ as AdamW's — and the search ranges are AdamW's, lr 3–10× below and λ 3–10× above
    across their whole ranges.
    It keeps one buffer (4 bytes a float32 parameter against Adam's 8; 2 with ``state_dtype =
    "bfloat16"``, where m is stored in bfloat16 and the step still computed in the parameter's dtype:
    c and the new m from m widened, m rounded to bfloat16 to nearest once a step). torch has no fused Lion
    kernel. Default path: on the CPU this project's single-pass kernel (``_kernels.lion_update``: read
    θ, g, m; write θ, m) once a bucket's contiguous float32/float64 parameters are large
    (``_dispatch.KERNEL_MIN_TOTAL``), the foreach rule cache-blocked below that; on other devices the
    foreach rule. ``fused=True`` always takes one pass (the CPU kernel; compiled by ``torch.compile``
    on CUDA and for half precision).

    Args:
        lr: η ≥ 0; betas: (β₁, β₂), each in [0, 1); weight_decay: λ ≥ 0 (decoupled);
        state_dtype: ``None`` (m in the parameter's dtype) or ``"bfloat16"`` (real parameters only);
        maximize, fused, foreach: as :class:`~raytune_opt.optim.SGD`.
    """

    name = "lion"
    state_keys = ("exp_avg",)
    compiled_tensors = ("lr", "beta1", "beta2")
    rule = staticmethod(lion_update)
    cpu_kernel = "lion_update"
    _PATH_KEYS = (*FirstOrderOptimizer._PATH_KEYS, "state_dtype")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        *,
        weight_decay: float = 0.1,
        state_dtype: str | None = None,
        maximize: bool = False,
        fused: bool | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=betas,
                weight_decay=weight_decay,
                state_dtype=state_dtype,
                maximize=maximize,
                fused=fused,
                foreach=foreach,
            ),
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        check_betas(self.name, group["betas"])
        check_choice(self.name, "state_dtype", group["state_dtype"], tuple(STATE_DTYPES))
        if group["state_dtype"] is not None and any(p.is_complex() for p in group["params"]):
            raise ConfigError.invalid(
                f"{self.name}.state_dtype", group["state_dtype"], "None for complex parameters"
            )

    def _buffer_dtype(self, key: str, group: dict[str, Any]) -> torch.dtype | None:
        return STATE_DTYPES[group["state_dtype"]]


#: Lion against AdamW (seed 3.4): its lr this many times smaller, its weight decay this many times larger
LION_FACTOR = (3.0, 10.0)


def _from_adamw(r: Range, *, smaller: bool, doc: str) -> Range:
    """AdamW's range ``r`` moved 3–10× down (``smaller``) or up, across the whole range: every value
    3–10× from some AdamW value is inside, e.g. lr [1e-4, 1e-2] → [1e-5, 3.3e-3]."""
    lo, hi = LION_FACTOR
    if smaller:
        return Range(r.name, r.low / hi, r.high / lo, log=r.log, doc=doc)
    return Range(r.name, r.low * lo, r.high * hi, log=r.log, doc=doc)


register(
    "lion",
    Lion,
    "first-order",
    "c ← β₁ m + (1−β₁) g ; θ ← θ − η (sgn(c) + λ θ) ; m ← β₂ m + (1−β₂) g",
    [
        _from_adamw(ADAMW_LR, smaller=True, doc="learning rate η (3–10× smaller than AdamW's)"),
        Choices("betas", ((0.9, 0.99), (0.95, 0.98), (0.9, 0.9)), doc="(β₁, β₂)"),
        _from_adamw(ADAMW_WEIGHT_DECAY, smaller=False, doc="decoupled weight decay λ (3–10× AdamW's)"),
        Fixed(
            "state_dtype",
            doc="None: m in the parameter's dtype; 'bfloat16': m stored in bf16 (half the bytes)",
        ),
        *FLAGS,
    ],
)
