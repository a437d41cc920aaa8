"""Shared pieces of the tests that run gloo process groups in this process's children: a free port,
a spawn of N ranks that each join the group, and a LocalSession that is one rank of it.

Spawn, not fork: a test process may hold the suite's Ray driver connection (gRPC threads), which a
forked child would inherit half-copied, and Ray calls after it could hang.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from raytune_opt.train.session import LocalSession


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_group(rank: int, fn: Callable[..., None], world: int, port: int, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn_gloo(fn: Callable[..., None], *args: Any, world: int = 2) -> None:
    """Run ``fn(rank, world, *args)`` on ``world`` spawned ranks of one gloo group (one thread each);
    ``fn`` and ``args`` must pickle (a module-level function). Raises when a rank fails."""
    mp.start_processes(_in_group, args=(fn, world, free_port(), args), nprocs=world, start_method="spawn")


class GlooSession(LocalSession):
    """A LocalSession that is rank ``rank`` of the gloo process group (all-reduce, gather)."""

    def __init__(self, rank: int, world_size: int, storage: str, checkpoint: str | None = None) -> None:
        super().__init__(checkpoint=checkpoint, storage=storage)
        self.rank, self.world_size = rank, world_size

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        dist.all_reduce(t)
        return t

    def gather(self, obj: Any) -> list:
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out
