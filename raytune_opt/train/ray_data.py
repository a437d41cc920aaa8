"""Ray Data splits: a task's ``ray.data.Dataset``, read in batches of its feature and label columns.

A split of a :class:`raytune_opt.tasks.TaskSpec` may be a ``ray.data.Dataset`` whose rows hold a
feature column and a label column (``TaskSpec.columns``, default ``("x", "y")``); its batches are
``iter_torch_batches`` of those two columns, copied to the session's device like any other batch.

* ``data_fraction`` f keeps the rows r with u(r) < f, where u(r) ∈ [0, 1) is a keyed hash
  (BLAKE2b, key ``data_seed``) of the row's feature and label bytes: a seeded Bernoulli sample
  that is the same whatever the blocks, their order or the number of read tasks (Ray's own
  ``random_sample(seed=...)`` draws per read task, and a Parquet read hands files to tasks in an
  order that varies between executions, so its samples differ between runs), nested across
  fractions (the same u, a higher threshold) and streamed (no count, no pass before training).
  It is not stratified: each class keeps f of its rows in expectation and the size is
  f·n ± √(n f (1 − f)) (an exact stratified subset needs every label first: a full pass over the
  data); rows with the same content are kept or dropped together. ``samples_seen`` counts what
  was read.
* One worker (the Tune trial): epoch e reads the sample with its blocks in the order
  ``randomize_block_order(seed + e)``, rows shuffled in a local buffer of
  :data:`SHUFFLE_BATCHES` batches (``local_shuffle_seed = seed + e``), with the execution's
  ``preserve_order`` on: a rerun reads the same batches.
* N workers: the trial's driver hands the sample and the val / test splits to
  ``TorchTrainer(datasets=...)`` with ``DataConfig(datasets_to_split=["train"])``
  (:func:`trainer_datasets`); each worker reads ``ray.train.get_dataset_shard("train")``, Ray's
  ``streaming_split(equal=True)``: the same number of rows on every worker, so DDP steps in
  lockstep. Which rows go to which worker is decided as blocks arrive, so unlike a torch
  Dataset's ``DistributedSampler`` shards such a run is not bit-reproducible. Every worker
  evaluates the whole val split (the summed losses and counts give the same means).
* A step schedule (``schedule`` not constant) needs the steps of an epoch: the sample's rows are
  counted once (``Dataset.count()``, one pass over the data) when a trial starts.

:func:`check_ray_data` checks the columns (and that the feature and label types agree across the
splits) and the settings that need a materialised split before any trial.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from raytune_opt.errors import ConfigError
from raytune_opt.tasks.registry import check_splits_agree, is_ray_dataset

__all__ = ["SHUFFLE_BATCHES", "is_ray_dataset", "sample", "check_ray_data", "trainer_datasets", "RayBatches"]

#: rows in the local shuffle buffer of a training split, in batches
SHUFFLE_BATCHES = 4

_SPLITS = ("train", "val", "test")


class _KeepRows:
    """``map_batches`` function of :func:`sample`: the rows whose keyed hash is below ``fraction``."""

    def __init__(self, fraction: float, seed: int, columns: tuple[str, str]) -> None:
        self.threshold = int(fraction * 2**64)
        self.key = seed.to_bytes(8, "little")
        self.columns = columns

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x, y = (np.asarray(batch[c]) for c in self.columns)
        keep = np.fromiter(
            (self._hash(x[i].tobytes() + y[i].tobytes()) < self.threshold for i in range(len(y))),
            dtype=bool,
            count=len(y),
        )
        return {name: np.asarray(values)[keep] for name, values in batch.items()}

    def _hash(self, row: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(row, digest_size=8, key=self.key).digest(), "little")


def sample(ds: Any, fraction: float, seed: int, columns: tuple[str, str]) -> Any:
    """The ``fraction`` sample of a Ray Dataset (the module's docstring: keyed by row content)."""
    if fraction == 1.0:
        return ds
    return ds.map_batches(_KeepRows(fraction, seed, columns), batch_format="numpy", batch_size=None)


def check_ray_data(spec: Any, task: str, cfg: Any) -> None:
    """ConfigErrors, naming the task and the field, for a Ray Data split: a column that is not
    there (read from the schema), feature / label types that differ between splits, and
    ``batch_size: full`` or a second-order optimizer (which need the split in one batch)."""
    types: dict[str, tuple[str, str]] = {}
    for name in _SPLITS:
        part = getattr(spec, name)
        if not is_ray_dataset(part):
            continue
        schema = part.schema()
        names = list(schema.names) if schema is not None else []
        for column in spec.columns:
            if column not in names:
                raise ConfigError.invalid(
                    f"task {task!r}: TaskSpec.columns",
                    spec.columns,
                    f"columns of the {name} ray.data.Dataset: {names}",
                )
        types[name] = tuple(str(schema.types[names.index(c)]) for c in spec.columns)
    check_splits_agree(
        types,
        lambda name: f"task {task!r}: the column types (x, y) of the {name} ray.data.Dataset",
        lambda _, first: f"{first}, those of the other splits",
    )
    if is_ray_dataset(spec.train):
        for field, value, bad in (
            ("batch_size", cfg.batch_size, "full"),
            ("optimizer", cfg.kind, "second-order"),
        ):
            if value == bad:
                raise ConfigError.invalid(
                    f"task {task!r}: {field}",
                    cfg.batch_size if field == "batch_size" else cfg.optimizer,
                    "an integer batch size and a first-order optimizer for a training ray.data.Dataset "
                    "(it streams in batches)",
                )


def trainer_datasets(spec: Any, cfg: Any) -> dict[str, Any]:
    """The Ray Datasets of a distributed trial, for ``TorchTrainer(datasets=...)``: the
    ``data_fraction`` sample of train, and val / test whole (``{}`` for a task without any)."""
    out = {name: getattr(spec, name) for name in _SPLITS if is_ray_dataset(getattr(spec, name))}
    if "train" in out:
        out["train"] = sample(out["train"], cfg.data_fraction, cfg.data_seed, spec.columns)
    return out


class RayBatches:
    """One worker's batches ``(x, y)`` of a Ray Data split, on the session's device.

    ``shard`` is the worker's ``DataIterator`` from ``ray.train.get_dataset_shard`` (N workers) or
    ``None`` (one worker: the Dataset itself). ``train`` shuffles (seeded by ``seed`` and the
    epoch) and counts the rows when ``count`` is set (:attr:`num_rows`: this worker's rows).
    """

    def __init__(
        self,
        ds: Any,
        columns: tuple[str, str],
        batch_size: int,
        device: torch.device,
        *,
        shard: Any = None,
        train: bool = False,
        seed: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        pin_memory: bool | None = None,
        count: bool = False,
    ) -> None:
        self.ds, self.shard, self.columns = ds, shard, columns
        self.batch_size, self.device, self.train, self.seed = batch_size, device, train, seed
        self.drop_last = drop_last
        self.pin = pin_memory if pin_memory is not None else device.type == "cuda"
        self.num_rows = ds.count() // world_size if count else None

    def epoch(self, epoch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of epoch ``epoch`` (0-based)."""
        kw: dict[str, Any] = {"batch_size": self.batch_size, "drop_last": self.drop_last}
        if self.train:
            kw.update(
                local_shuffle_buffer_size=SHUFFLE_BATCHES * self.batch_size,
                local_shuffle_seed=self.seed + epoch,
            )
        source = self.shard
        if source is None:
            source = self.ds.randomize_block_order(seed=self.seed + epoch) if self.train else self.ds
            source.context.execution_options.preserve_order = True
        x, y = self.columns
        for batch in source.iter_torch_batches(device="cpu", pin_memory=self.pin, **kw):
            yield batch[x].to(self.device, non_blocking=True), batch[y].to(self.device, non_blocking=True)
