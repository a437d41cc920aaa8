"""``resources.strategy: fsdp``: the model's parameters sharded over the workers (torch's FSDP2,
``torch.distributed.fsdp.fully_shard``), for models larger than one device.

Each worker holds 1/W of every parameter, gradient and optimizer state (``DTensor`` shards); before
a module's forward and backward FSDP all-gathers its parameters, after the backward it
reduce-scatters the gradients (the mean over workers, as DDP's all-reduce). The optimizers of the
zoo that step shards are the first-order ones: their update rules are elementwise, so a worker
stepping its shard is the unsharded step (``raytune_opt.optim._first_order``); the second-order
ones need every parameter whole and are refused up front (``train.config.check_strategy``).

A forward pass is a collective: every worker must run as many as the others, so evaluation runs in
lockstep (:func:`in_lockstep`); the training loop's batches are equal in number on every worker
already (``DistributedSampler`` semantics).

Checkpoints hold the full, unsharded state (:func:`full_state`, gathered on rank 0 on the CPU) in
the layout of an unsharded run's ``state_dict()`` — the optimizer's keyed by parameter index, as
``torch.optim.Optimizer.state_dict`` numbers them — so one checkpoint resumes sharded or not, on
any number of workers, and a PBT clone or a driver-kill resume finds the state it expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["can_shard", "full_state", "in_lockstep", "load_full_state", "shard_model"]


def can_shard() -> bool:
    """Whether a process group joins this worker to others (what ``fully_shard`` needs)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def shard_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``, sharded in place over every worker of the process group: each
    module that holds parameters of its own is one FSDP unit (children first), then the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if device.type == "cuda":
        torch.cuda.set_device(device)
    model = model.to(device)
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    for sub in list(model.modules())[:0:-1]:  # reversed pre-order: each module after its descendants
        if any(True for _ in sub.parameters(recurse=False)):
            fully_shard(sub, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _fqns(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of every parameter of ``optimizer``, in ``state_dict()``'s numbering order."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sharded ``model``'s and ``optimizer``'s full state dicts, on the CPU of rank 0 (the other
    workers get empty dicts), laid out as an unsharded model's ``state_dict()`` and optimizer's
    ``state_dict()``. A collective: every worker calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    options = _options()
    model_state = get_model_state_dict(model, options=options)
    osd = get_optimizer_state_dict(model, optimizer, options=options)
    if not osd:
        return model_state, {}
    index = {name: i for i, name in enumerate(_fqns(model, optimizer))}
    return model_state, {
        "state": {index[name]: value for name, value in osd["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in osd["param_groups"]],
    }


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_state: dict[str, Any],
    optimizer_state: dict[str, Any],
) -> None:
    """Load what :func:`full_state` saved (or an unsharded run's state dicts) into the sharded
    ``model`` and ``optimizer``: every worker passes the full dicts and keeps its shards."""
    from torch.distributed.checkpoint.state_dict import set_state_dict

    names = _fqns(model, optimizer)
    osd = {
        "state": {names[i]: value for i, value in optimizer_state["state"].items()},
        "param_groups": [
            {**g, "params": [names[i] for i in g["params"]]} for g in optimizer_state["param_groups"]
        ],
    }
    options = _options()
    set_state_dict(
        model,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict=osd,
        options=type(options)(full_state_dict=True),
    )


def in_lockstep(
    batches: Iterable[tuple[Tensor, Tensor]], all_reduce_sum: Any, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """``batches``, then empty batches (the last one's first 0 rows) until every worker has run out:
    a sharded model's forward is a collective, so every worker must run as many. One all-reduce of
    a flag per batch."""
    last: tuple[Tensor, Tensor] | None = None
    it = iter(batches)
    while True:
        item = next(it, None)
        more = all_reduce_sum(torch.tensor([float(item is not None)], device=device))
        if not more.item():
            return
        if item is None:
            if last is None:
                raise RuntimeError(
                    "a worker had no evaluation batch while others had some: the split has fewer "
                    "samples than there are workers"
                )
            item = (last[0][:0], last[1][:0])
        last = item
        yield item
