"""The machinery shared by the first-order optimizers: one ``torch.optim.Optimizer`` base class.

Each first-order optimizer (``sgd.py`` … ``lion.py``) writes its update rule once, as a function over
lists of tensors built from ``torch._foreach_*`` ops (the bare equation), and may name a native fused
torch kernel that computes the same equation. :class:`FirstOrderOptimizer` does the rest:

- validates hyperparameters when a parameter group is added (a ``ConfigError`` names the optimizer,
  the field, the value and what is allowed);
- creates per-parameter state (zero buffers and a float32 ``step`` counter, as torch.optim does), so
  ``state_dict()`` / ``load_state_dict()`` round-trip bit-exactly; state dicts of older versions (no
  ``foreach`` / ``fused`` / ``maximize`` keys, a Python-number ``step``) load as torch's do;
- steps complex parameters as real ones, through ``torch.view_as_real`` (as torch.optim does: real and
  imaginary parts are separate coordinates);
- groups the parameters that have a gradient by (device, dtype) and hands each bucket to the
  dispatcher, ``optim._dispatch``, which picks the execution path from the group's ``fused`` and
  ``foreach`` flags (torch's two flags; both ``None`` by default: the dispatcher's choice);
- steps sharded parameters (``torch.distributed.tensor.DTensor``, what FSDP2's ``fully_shard`` makes)
  through their local shards: every rule here is elementwise, so each worker updating its shard of
  the parameter, gradient and state is the unsharded step, element for element, and every execution
  path (torch's fused kernels, this project's CPU kernels) runs on plain tensors.

Gradient conventions shared by all (g is what the update rule sees):
``maximize`` uses g = −∇J; coupled weight decay λ adds λ a to g (L2 regularisation). AdamW and Lion
decouple it instead (a ← a − η λ a, outside the adaptive step).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.optim import _dispatch
from raytune_opt.optim._checks import check_choice, check_nonneg
from raytune_opt.optim._dispatch import Bucket
from raytune_opt.optim.registry import Fixed

__all__ = ["FLAGS", "Bucket", "FirstOrderOptimizer", "effective_grads", "local", "scalar"]

FLAGS = [
    Fixed("maximize", doc="ascend instead of descend"),
    Fixed("fused", doc="None: the dispatcher's choice; True: a fused kernel always; False: never one"),
    Fixed("foreach", doc="None: the dispatcher's choice; True: the foreach rule; False: never it"),
]
"""The registry entries of the flags every first-order optimizer takes (not searched)."""


def effective_grads(
    params: list[Tensor], grads: list[Tensor], weight_decay: float, maximize: bool
) -> list[Tensor]:
    """g = (−∇J if maximize else ∇J) + λ a: the gradient the update rule sees (coupled L2 decay).

    Returns ``grads`` itself when neither applies (no copy); never modifies ``grads`` in place.
    """
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    return grads


def scalar(x: float | Tensor) -> float:
    """A hyperparameter as a Python float (a 1-element tensor lr is read once)."""
    return float(x.item()) if isinstance(x, Tensor) else float(x)


def _dtensor_type() -> type | None:
    """``torch.distributed.tensor.DTensor``, or ``None`` while that module is not imported (then no
    DTensor exists; importing it costs seconds, which a process that never shards should not pay)."""
    module = sys.modules.get("torch.distributed.tensor")
    return None if module is None else module.DTensor


def local(t: Tensor, dtensor: type | None = None) -> Tensor:
    """The local shard of a ``DTensor`` (the tensor itself otherwise), sharing its memory: an in-place
    update of it updates the DTensor. ``dtensor``: :func:`_dtensor_type`, when the caller has it."""
    dtensor = _dtensor_type() if dtensor is None else dtensor
    return t.to_local() if dtensor is not None and isinstance(t, dtensor) else t


def _check_shards(name: str, p: Tensor, grad: Tensor) -> None:
    """A DTensor parameter and its gradient must be laid out alike, with no pending reduction (a
    ``Partial`` placement): then their local shards hold the same elements."""
    placements = getattr(p, "placements", None)
    if getattr(grad, "placements", None) != placements or any(x.is_partial() for x in placements):
        raise ConfigError.invalid(
            f"{name}.grad",
            f"placements {getattr(grad, 'placements', None)}",
            f"a gradient sharded like its parameter ({placements}) and already reduced "
            "(what FSDP2's fully_shard gives)",
        )


class FirstOrderOptimizer(torch.optim.Optimizer):
    """Base class of the first-order optimizers; subclasses set the class attributes and ``rule``.

    Class attributes:
      name        registry name, used in error messages;
      counts_steps  keep a float32 ``step`` counter per parameter (as torch.optim does) when the
                  equation needs t (Adam's bias correction) or torch's fused kernel reads it;
      state_keys  per-parameter buffers (same shape and dtype as the parameter), created at the first
                  step that needs them with :meth:`_init_fill` (0 unless overridden);
      compiled_tensors  the rule's scalars that the compiled path passes as 0-d tensors (those a
                  schedule changes: lr, betas, momentum);
      native_kernel  a torch fused kernel computes the equation: ``_native(bucket, hyper)`` runs it;
      cpu_kernel  the name of a single-pass CPU kernel in ``optim._kernels`` with the rule's signature
                  (for rules torch has no fused kernel for), or ``None``;
    and ``_buffer_keys(group)`` when a buffer is needed only for some hyperparameters, and
    ``_buffer_dtype(key, group)`` when a buffer is kept in another dtype than its parameter's.
    """

    name: ClassVar[str] = ""
    state_keys: ClassVar[tuple[str, ...]] = ()
    counts_steps: ClassVar[bool] = False
    compiled_tensors: ClassVar[tuple[str, ...]] = ()
    cpu_kernel: ClassVar[str | None] = None
    native_kernel: ClassVar[bool] = False
    #: group keys that are not the rule's scalars: the execution-path flags (and a subclass's storage
    #: options, such as Lion's ``state_dtype``)
    _PATH_KEYS: ClassVar[tuple[str, ...]] = ("fused", "foreach", "differentiable")

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise ConfigTypeError(
                f"{self.name}: params = Tensor is not allowed: "
                "expected an iterable of tensors or parameter-group dicts"
            )
        params = list(params) if isinstance(params, Iterable) else params
        if not params:
            raise ConfigError.invalid(f"{self.name}.params", [], "a non-empty iterable of tensors")
        super().__init__(params, defaults)

    @property
    def _hyper_keys(self) -> tuple[str, ...]:
        """This optimizer's hyperparameter names (torch adds ``differentiable`` to ``defaults`` on load)."""
        return tuple(k for k in self.defaults if k not in self._PATH_KEYS)

    # -- validation -----------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch semantics) and validate its hyperparameters and parameters."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_nonneg(self.name, "lr", group["lr"])
        if "weight_decay" in group:
            check_nonneg(self.name, "weight_decay", group["weight_decay"])
        check_choice(self.name, "maximize", group["maximize"], (False, True))
        check_choice(self.name, "fused", group["fused"], (None, False, True))
        check_choice(self.name, "foreach", group["foreach"], (None, False, True))
        if group["fused"] and group["foreach"]:
            raise ConfigError.invalid(
                f"{self.name}.foreach", True, "None or False with fused=True (torch: not both True)"
            )
        self._check_group(group)
        for p in group["params"]:
            if not (p.is_floating_point() or p.is_complex()):
                raise ConfigTypeError(
                    f"{self.name}: parameter dtype = {p.dtype} is not allowed: expected a floating dtype "
                    "(float16, bfloat16, float32, float64) or a complex one (stepped as view_as_real)"
                )

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate this optimizer's own hyperparameters (subclasses)."""

    # -- state ----------------------------------------------------------------------------------

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load (``load_state_dict``, unpickling) and fill in what older state dicts lack, as torch does:
        group keys added since (``foreach``, ``fused``, ``maximize``, …) take the constructor's
        defaults, and a ``step`` saved as a Python number becomes a float32 tensor. A buffer kept in
        its own dtype (:meth:`_buffer_dtype`) goes back to it: ``load_state_dict`` casts every floating
        buffer to its parameter's dtype (losslessly, from a narrower one)."""
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            for p in group["params"]:
                st = self.state.get(p)
                if not st:
                    continue
                if "step" in st and not torch.is_tensor(st["step"]):
                    st["step"] = torch.tensor(
                        float(st["step"]), dtype=torch.float32, device=_step_device(p, group)
                    )
                for key in self.state_keys:
                    dtype = self._buffer_dtype(key, group)
                    if dtype is not None and key in st and st[key].dtype != dtype:
                        st[key] = st[key].to(dtype)

    def _buffer_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The buffers this group's hyperparameters need (default: all of ``state_keys``)."""
        return self.state_keys

    def _buffer_dtype(self, key: str, group: dict[str, Any]) -> torch.dtype | None:
        """The dtype buffer ``key`` is kept in (``None``: its parameter's, the default)."""
        return None

    def _init_state(self, p: Tensor, group: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        state = self.state[p]
        if self.counts_steps and "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=_step_device(p, group))
        for key in keys:
            if key not in state:
                dtype = self._buffer_dtype(key, group)
                buf = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
                fill = self._init_fill(key, group)
                if fill != 0:  # every real coordinate (of a complex buffer: both parts)
                    _real(buf).fill_(fill)
                state[key] = buf
        return state

    def _init_fill(self, key: str, group: dict[str, Any]) -> float:
        """Initial value of buffer ``key`` (0 unless a subclass says otherwise)."""
        return 0.0

    def _buckets(self, group: dict[str, Any]) -> list[Bucket]:
        """The group's parameters that have a gradient, by (device, dtype) of their real views (of their
        local shards, for DTensors)."""
        buckets: dict[tuple[torch.device, torch.dtype], Bucket] = {}
        keys = self._buffer_keys(group)
        dtensor = _dtensor_type()
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ConfigError.invalid(
                    f"{self.name}.grad", "sparse", "dense gradients (sparse gradients are not supported)"
                )
            state = self._init_state(p, group, keys)
            if dtensor is not None and isinstance(p, dtensor):
                _check_shards(self.name, p, p.grad)
            cplx = p.is_complex()
            view = torch.view_as_real if cplx else _same
            real = view(local(p, dtensor))
            b = buckets.get((real.device, real.dtype))
            if b is None:
                b = buckets[(real.device, real.dtype)] = Bucket(
                    real.device, real.dtype, buffers={k: [] for k in keys}
                )
            b.sources.append(p)
            b.params.append(real)
            b.grads.append(view(local(p.grad, dtensor)))
            if self.counts_steps:
                b.steps.append(state["step"])
            for key in keys:
                b.buffers[key].append(view(local(state[key], dtensor)))
        return list(buckets.values())

    # -- the step -------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            hyper = self._rule_inputs(group)
            for bucket in self._buckets(group):
                if bucket.steps:
                    _count_step(bucket.steps)
                self._update(bucket, hyper, group["fused"], group["foreach"])
        return loss

    def _update(self, b: Bucket, hyper: dict[str, Any], fused: bool | None, foreach: bool | None) -> None:
        """Apply the rule to one bucket, by the path the dispatcher picks (Nesterov overrides this)."""
        _dispatch.run(self, b, hyper, fused, foreach)

    def _rule_inputs(self, group: dict[str, Any]) -> dict[str, Any]:
        """The rule's keyword scalars from the group's hyperparameters (``betas`` → ``beta1``, ``beta2``)."""
        hyper: dict[str, Any] = {}
        for key in self._hyper_keys:
            value = group[key]
            if key == "betas":
                hyper["beta1"], hyper["beta2"] = scalar(value[0]), scalar(value[1])
            elif key == "maximize":
                hyper[key] = bool(value)
            else:
                hyper[key] = scalar(value)
        return hyper

    def _rule_hyper(self, b: Bucket, hyper: dict[str, Any]) -> dict[str, Any]:
        """Scalars only the rule needs (not the native kernel), e.g. Adam's step counts."""
        return hyper

    def _native(self, b: Bucket, hyper: dict[str, Any]) -> bool:
        """Run torch's native fused kernel on ``b`` if one computes this equation; return whether it did."""
        return False

    @staticmethod
    def rule(*lists: list[Tensor], **hyper: Any) -> None:
        """The update rule over tensor lists (``torch._foreach_*``), set by each subclass."""
        raise NotImplementedError


def _same(t: Tensor) -> Tensor:
    return t


def _real(t: Tensor) -> Tensor:
    """``t`` itself, or its ``torch.view_as_real`` view if complex (a trailing dimension of 2)."""
    return torch.view_as_real(t) if t.is_complex() else t


_ONE = torch.tensor(1.0)


def _step_device(p: Tensor, group: dict[str, Any]) -> torch.device | str:
    """Step counters live on the CPU, except on CUDA when torch's fused kernels (which read them) may run."""
    return p.device if p.is_cuda and group["fused"] is not False else "cpu"


def _count_step(steps: list[Tensor]) -> None:
    """t ← t + 1 for every counter (on the CPU with one wrapped 1.0, not one per tensor, as torch does)."""
    if steps[0].is_cpu:
        torch._foreach_add_(steps, _ONE, alpha=1.0)
    else:
        torch._foreach_add_(steps, 1.0)
