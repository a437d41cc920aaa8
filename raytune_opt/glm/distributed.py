"""Distributed fitting: the rows sharded across Ray actors, the p x p and p-vector pieces summed.

Each of the k actors holds one contiguous block of rows as a :class:`~raytune_opt.glm.shard.Shard`. An
iteration broadcasts the current coefficients a (p numbers), every actor returns its pieces — e.g.
(D_j, X_j^T W_j X_j, X_j^T W_j z_j) — and their sums, taken in shard order, are exactly the single-process
sums up to floating-point reassociation (about 1e-15 relative in float64). The step computed from the summed
pieces is the step every worker takes: the driver solves the p x p system once and sends the new a to all
actors, which is the allreduce-then-identical-step scheme with the reduction done in one place. Only robust
fits move per-row data (the residuals, for the MAD scale, which is a median and does not decompose).
"""

from __future__ import annotations

import numpy as np
import torch

from raytune_opt.errors import ConfigError
from raytune_opt.glm.families import Family
from raytune_opt.glm.shard import Pieces, Shard

__all__ = ["RayShards"]


class _ShardWorker:
    """A Ray actor holding one shard of rows; ``call`` runs a :class:`Shard` method on it."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        offset: np.ndarray,
        family: Family | None,
        dtype: torch.dtype,
        threads: int,
        freq: np.ndarray | None = None,
    ) -> None:
        torch.set_num_threads(threads)
        t = [torch.as_tensor(a, dtype=dtype) for a in (X, y, w, offset)]
        self.shard = Shard(*t, family, None if freq is None else torch.as_tensor(freq, dtype=dtype))

    def call(self, method: str, *args):
        return getattr(self.shard, method)(*args)


def _add(a, b):
    return tuple(x + y for x, y in zip(a, b, strict=True))


class RayShards:
    """The k-actor backend: ``sum`` adds the pieces of all shards, ``gather`` concatenates per-row output."""

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor,
        offset: torch.Tensor,
        family: Family | None,
        num_workers: int,
        device: torch.device,
        dtype: torch.dtype,
        cpus_per_worker: int = 1,
        freq: torch.Tensor | None = None,
    ) -> None:
        import ray

        if device.type != "cpu":
            raise ConfigError.invalid(
                "device", str(device), "'cpu' when num_workers > 1 (the shards run on CPU Ray actors)"
            )
        if not ray.is_initialized():
            ray.init()
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < num_workers * cpus_per_worker:
            raise ConfigError.invalid("num_workers", num_workers, f"at most the {int(cpus)} CPUs Ray has")
        self.num_workers = num_workers
        actor = ray.remote(num_cpus=cpus_per_worker)(_ShardWorker)
        blocks = [torch.tensor_split(t.cpu(), num_workers) for t in (X, y, w, offset)]
        fblocks = None if freq is None else torch.tensor_split(freq.cpu(), num_workers)
        self.workers = [
            actor.remote(
                *(ray.put(b[j].numpy()) for b in blocks),
                family,
                dtype,
                cpus_per_worker,
                None if fblocks is None else fblocks[j].numpy(),
            )
            for j in range(num_workers)
        ]
        self._ray = ray

    def _all(self, method: str, args) -> list:
        args = tuple(a.cpu() if isinstance(a, torch.Tensor) else a for a in args)
        return self._ray.get([wk.call.remote(method, *args) for wk in self.workers])

    def sum(self, method: str, *args) -> Pieces:
        parts = self._all(method, args)
        total = parts[0]
        for part in parts[1:]:
            total = _add(total, part)
        return total

    def gather(self, method: str, *args) -> torch.Tensor:
        return torch.cat(self._all(method, args))

    def close(self) -> None:
        """Stop the shard actors."""
        for wk in self.workers:
            self._ray.kill(wk)
        self.workers = []
