"""The bytes an optimizer's state holds, and per parameter: the memory side of the seed's comparison
(section 3.4: Lion "only keeps track of the momentum", one buffer where Adam and RMSProp keep more).

    >>> import torch
    >>> from raytune_opt import optim
    >>> model = torch.nn.Linear(4, 2)
    >>> def stepped(name, **hparams):                # state is made at the first step
    ...     opt = optim.create(name, model, **hparams)
    ...     model(torch.randn(3, 4)).sum().backward()
    ...     opt.step()
    ...     return opt
    >>> optim.state_bytes(stepped("adam")).per_param                       # V and S, float32
    8.0
    >>> optim.state_bytes(stepped("lion")).per_param                       # m only
    4.0
    >>> optim.state_bytes(stepped("lion", state_dtype="bfloat16")).per_param
    2.0

Per parameter element, float32 parameters: sgd 0, momentum 4, nesterov 4, rmsprop 4 (8 with momentum),
adagrad 4, adam 8, adamw 8, lion 4 (2 with ``state_dtype="bfloat16"``); Adam and Adagrad add one
float32 step counter (4 bytes) per parameter tensor. The second-order methods keep what their
equations carry between steps (BFGS its n × n inverse-Hessian estimate for n parameters, L-BFGS its
m pairs of vectors).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["StateBytes", "state_bytes"]


@dataclass(frozen=True)
class StateBytes:
    """What an optimizer's state holds, in bytes, against the parameters it steps.

    Sizes are logical: a sharded tensor (an FSDP2 ``DTensor``) counts whole, so the numbers are the
    same sharded or not; each of W FSDP workers holds about 1/W of the buffers.
    """

    #: bytes of the state tensors with one or more dimensions (moments, momenta, Hessians)
    buffers: int
    #: bytes of the 0-d state tensors (per-tensor step counters)
    scalars: int
    #: elements of every parameter of the optimizer's groups
    params: int

    @property
    def total(self) -> int:
        """Every byte of tensor state."""
        return self.buffers + self.scalars

    @property
    def per_param(self) -> float:
        """Buffer bytes per parameter element (0.0 for an optimizer without parameters)."""
        return self.buffers / self.params if self.params else 0.0


def _tensors(value: Any) -> Iterator[Tensor]:
    """The tensors in one state entry: a tensor, or tensors inside lists, tuples and dicts."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def state_bytes(optimizer: torch.optim.Optimizer) -> StateBytes:
    """The bytes of ``optimizer.state``'s tensors (each tensor once) and the parameter elements it
    steps. The state is created lazily, at the first step: before it, every optimizer holds 0."""
    seen: set[int] = set()
    buffers = scalars = 0
    for entry in optimizer.state.values():
        for t in _tensors(entry):
            if id(t) in seen:
                continue
            seen.add(id(t))
            size = t.numel() * t.element_size()
            if t.dim() == 0:
                scalars += size
            else:
                buffers += size
    params = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    return StateBytes(buffers=buffers, scalars=scalars, params=params)
