"""Where the loop's metrics and checkpoints go: a local run, a Tune trial or a Ray Train worker.

The loop talks to one :class:`Session`; the three implementations differ only in how they
report, find the checkpoint to resume from and combine numbers across workers.
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import Any

import torch
from torch import nn

__all__ = ["Session", "LocalSession", "TuneSession", "TrainSession"]


@functools.cache
def _node_id() -> str:
    """The Ray node this worker runs on (reported with every epoch: where each trial ran); a worker
    process stays on its node, so it is looked up once."""
    import ray

    return ray.get_runtime_context().get_node_id()


class Session:
    """One worker's view of its run (rank 0 of 1 unless distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_checkpoint(self) -> Any:
        """The checkpoint to resume from (a ``ray.train.Checkpoint`` or a directory), or ``None``."""
        raise NotImplementedError

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Report one epoch's metrics, with the directory of a checkpoint to persist (rank 0 only)."""
        raise NotImplementedError

    def should_stop(self) -> bool:
        """Whether to end the run after the epoch just reported (Tune and Train stop trials themselves)."""
        return False

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Σ over workers of ``t`` (``t`` itself with one worker)."""
        return t

    def gather(self, obj: Any) -> list[Any]:
        """Every worker's ``obj``, in rank order."""
        return [obj]

    def dataset_shard(self, name: str) -> Any:
        """This worker's ``ray.data.DataIterator`` of the trial's Ray Dataset ``name`` (handed to
        ``TorchTrainer(datasets=...)``), or ``None`` where there is none (the Dataset is read itself)."""
        return None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Move the model to the device (and wrap it for data-parallel training when distributed)."""
        return model.to(self.device)

    def shard_model(self, model: nn.Module) -> nn.Module:
        """``resources.strategy: fsdp``: the model on the device, its parameters sharded over the
        workers of the process group (:mod:`raytune_opt.train.sharding`); without one (a single
        process) the model whole, as :meth:`prepare_model` gives it."""
        from raytune_opt.train import sharding

        return sharding.shard_model(model, self.device) if sharding.can_shard() else self.prepare_model(model)


class LocalSession(Session):
    """No Ray: keeps the reported metrics in ``results`` and copies checkpoints under ``storage``.

    ``stop_after`` ends the run after that many reports, like a Tune stopper on ``training_iteration``;
    ``device`` (default the CPU) is where the loop trains, e.g. ``"cuda"``.
    """

    def __init__(
        self,
        checkpoint: Any = None,
        storage: str | None = None,
        stop_after: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._resume = checkpoint
        self.storage = storage
        self.stop_after = stop_after
        self.results: list[dict[str, Any]] = []
        self.checkpoints: list[str] = []

    @property
    def device(self) -> torch.device:
        return self._device

    def get_checkpoint(self) -> Any:
        return self._resume

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.results.append(dict(metrics))
        if checkpoint_dir is not None and self.storage is not None:
            dest = os.path.join(self.storage, f"checkpoint_epoch_{metrics['epoch']:06d}")
            shutil.copytree(checkpoint_dir, dest, dirs_exist_ok=True)
            self.checkpoints.append(dest)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.results) >= self.stop_after


class TuneSession(Session):
    """Inside a Tune function trainable (one worker): ``ray.tune.report`` / ``ray.tune.get_checkpoint``."""

    def get_checkpoint(self) -> Any:
        import ray.tune

        return ray.tune.get_checkpoint()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.tune

        ckpt = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report({**metrics, "node_id": _node_id()}, checkpoint=ckpt)


class TrainSession(Session):
    """A Ray Train worker: ``ray.train.report`` from every rank, checkpoints from rank 0, DDP collectives.

    ``resume`` is the checkpoint the trial started from (handed down by the Tune driver); Ray
    Train's own latest checkpoint wins over it after a worker-group restart.
    """

    def __init__(self, resume: Any = None) -> None:
        import ray.train

        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self._resume = resume

    @property
    def device(self) -> torch.device:
        import ray.train.torch

        return ray.train.torch.get_device()

    def get_checkpoint(self) -> Any:
        import ray.train

        return ray.train.get_checkpoint() or self._resume

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.train

        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report({**metrics, "node_id": _node_id()}, checkpoint=ckpt)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            torch.distributed.all_reduce(t)
        return t

    def gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def dataset_shard(self, name: str) -> Any:
        import ray.train

        try:
            return ray.train.get_dataset_shard(name)
        except KeyError:  # not handed to the TorchTrainer (a task without Ray Datasets)
            return None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)
