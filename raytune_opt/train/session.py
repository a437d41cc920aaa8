"""Where the loop's metrics and checkpoints go: a local run, a Tune trial or a Ray Train worker.

The loop talks to one :class:`Session`; the three implementations differ only in how they
report, find the checkpoint to resume from and combine numbers across workers.
"""

from __future__ import annotations

import collections
import functools
import os
import shutil
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["Session", "LocalSession", "TuneSession", "TrainSession", "resume_checkpoint", "tune_metrics"]


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


def resume_checkpoint(config: Mapping[str, Any]) -> Any:
    """The checkpoint a Tune trial resumes from: the newest complete one on the trial's own storage
    made under ``config`` when it is newer than ``ray.tune.get_checkpoint()``, else that one.

    Tune's saved state (saved every few seconds, with the driver's copy of every trial's results) may
    name an older checkpoint after the driver was killed: the trial then re-reports, marked
    ``replayed``, the epochs from that one to the newest that the saved ``result.json`` lacks (their
    reports are kept in the checkpoints' ``meta.json``), continues from the newest, and numbers its
    next checkpoints after it. Each epoch is trained and reported once. A trial resumed so at its last
    epoch re-reports that epoch's report (Tune needs a result of it). A handed checkpoint Tune knows
    (a PBT pause, a retry) is resumed as it is: Tune has its result."""
    import ray.tune

    from raytune_opt._compat.ray_train import set_checkpoint_index, trial_storage
    from raytune_opt.train.checkpoint import newest_checkpoint

    handed = ray.tune.get_checkpoint()
    path, filesystem = trial_storage()
    newer = newest_checkpoint(path, filesystem, config, handed)
    if newer is None:
        return handed
    checkpoint, index, reports = newer
    set_checkpoint_index(index)
    saved = saved_iterations(path, filesystem)
    replay = [r for r in reports if r.get("training_iteration") not in saved]
    if not replay:
        # resumed at its last epoch, the trial trains nothing, and Tune's last result of it is the
        # handed checkpoint's (or none): Tune needs the last epoch's report all the same
        replay = final_report(checkpoint, path, config)
    for report in replay:
        ray.tune.report({**report, "replayed": True})
    return checkpoint


def final_report(checkpoint: Any, trial_path: str, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[the last report]`` kept in ``checkpoint`` 's ``meta.json`` when it is a checkpoint of this
    trial (in ``trial_path``) at the config's last epoch; else ``[]``."""
    import json
    import os

    from raytune_opt.train.checkpoint import META_FILE

    parent = str(checkpoint.path).rstrip("/").rpartition("/")[0]
    if os.path.normpath(parent) != os.path.normpath(trial_path.rstrip("/")):
        return []
    try:
        with checkpoint.filesystem.open_input_stream(f"{str(checkpoint.path).rstrip('/')}/{META_FILE}") as f:
            meta = json.loads(f.read())
        reports = meta["reports"]
        final = int(meta["epoch"]) >= int(config.get("epochs", 0) or 0) > 0
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [reports[-1]] if final and reports and isinstance(reports[-1], dict) else []


def saved_iterations(trial_path: str, filesystem: Any) -> set[int]:
    """The ``training_iteration`` s in the trial's ``result.json`` on storage (the driver's results as
    of Tune's last save; a half-written last line skipped)."""
    import json

    try:
        with filesystem.open_input_stream(f"{trial_path.rstrip('/')}/result.json") as f:
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return set()
    out = set()
    for line in text.splitlines():
        try:
            out.add(json.loads(line)["training_iteration"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def tune_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial reports to Tune for one epoch: ``training_iteration`` is the epoch (Tune counts
    reports from the checkpoint it restored; a trial resumed from a newer one counts on from there)."""
    out = dict(metrics)
    if "epoch" in out:
        out["training_iteration"] = int(out["epoch"])
    return out


#: the most reports kept for the next checkpoint's ``meta.json`` (the latest ones; a trial that
#: checkpoints rarely or never keeps no more in memory)
MAX_UNSAVED_REPORTS = 1000


class _Meta:
    """The reports since the last checkpoint, for the next checkpoint's ``meta.json``."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        self.config = config
        self.unsaved: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_UNSAVED_REPORTS)

    def add(self, reported: dict[str, Any], checkpoint_dir: str | None) -> None:
        from raytune_opt.train.checkpoint import write_meta

        if self.config is None:
            return
        self.unsaved.append(reported)
        if checkpoint_dir:
            write_meta(checkpoint_dir, reported["epoch"], self.config, list(self.unsaved))
            self.unsaved.clear()


class TuneSession(Session):
    """Inside a Tune function trainable (one worker): ``ray.tune.report`` / ``ray.tune.get_checkpoint``.

    With the trial's ``config``, checkpoints carry ``meta.json``
    (:func:`raytune_opt.train.checkpoint.write_meta`) and a resumed trial continues from its newest
    complete checkpoint on storage (:func:`resume_checkpoint`); without it, from the one Tune hands it."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self._meta = _Meta(config)

    def get_checkpoint(self) -> Any:
        import ray.tune

        if self.config is None:
            return ray.tune.get_checkpoint()
        return resume_checkpoint(self.config)

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.tune

        reported = {**tune_metrics(metrics), "node_id": _node_id()}
        self._meta.add(reported, checkpoint_dir)
        ckpt = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(reported, checkpoint=ckpt)


class TrainSession(Session):
    """A Ray Train worker: ``ray.train.report`` from every rank, checkpoints from rank 0, DDP collectives.

    ``resume`` is the checkpoint the trial started from (handed down by the Tune driver); Ray
    Train's own latest checkpoint wins over it after a worker-group restart. With the trial's
    ``config``, rank 0's checkpoints carry ``meta.json`` (what :func:`resume_checkpoint` reads).
    """

    def __init__(self, resume: Any = None, config: Mapping[str, Any] | None = None) -> None:
        import ray.train

        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self._resume = resume
        self._meta = _Meta(config if self.rank == 0 else None)

    @property
    def device(self) -> torch.device:
        import ray.train.torch

        return ray.train.torch.get_device()

    def get_checkpoint(self) -> Any:
        import ray.train

        return ray.train.get_checkpoint() or self._resume

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.train

        reported = {**metrics, "node_id": _node_id()}
        self._meta.add(tune_metrics(reported), checkpoint_dir)
        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(reported, checkpoint=ckpt)

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
