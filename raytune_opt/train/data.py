"""The data side of the loop: tensors sliced in memory, or a Dataset read through a DataLoader.

A task's split is ``(X, y)`` tensors or a ``torch.utils.data.Dataset`` of ``(x, y)`` items
(:class:`raytune_opt.tasks.TaskSpec`). Both kinds are read in the same order, so a Dataset that
holds the same samples as the tensors trains to the same result:

* ``data_fraction`` keeps the sorted indices ``keep`` of a seeded subset
  (:func:`raytune_opt.tasks.stratified_subset`, class-stratified when the labels are known: the
  tensors' ``y``, a Dataset's ``targets`` attribute or ``TaskSpec.train_targets``); a Dataset is
  wrapped in a ``Subset(ds, keep)``, never copied.
* epoch e: ``DistributedSampler(seed=seed).set_epoch(e)`` permutes the positions 0 … n−1 of the
  subset; worker r of W takes positions r, r + W, … and cuts them into batches of ``batch_size / W``
  (``drop_last`` drops the last incomplete one). W workers with the global batch B step like one
  worker with B (DDP averages the gradients).

Tensors (the built-in, small tasks) keep the fast path: on a GPU they are copied to the device
once and every batch is an index into them. A Dataset streams: a ``DataLoader`` with the
``train.data`` options (:class:`raytune_opt.train.config.DataSettings`) collates each batch on the
host (in ``num_workers`` loader processes), into pinned memory on a GPU, and the batch is copied
to the device non-blocking. The loader workers' seeds are drawn per epoch from a generator seeded
by ``(seed, rank, epoch)``, so they do not consume the trial's RNG and a resumed run draws the same
(``persistent_workers`` keeps the workers, and their RNG, across epochs: resumes then differ).
An ``IterableDataset`` without a length is read as it comes: one worker, ``data_fraction`` 1,
a constant schedule and an integer batch size only (nothing that needs its length or random access);
with ``num_workers`` > 0 every loader worker iterates its own replica, so such a dataset shards
itself by ``torch.utils.data.get_worker_info()`` (torch's contract).
A ``ray.data.Dataset`` split is read by :mod:`raytune_opt.train.ray_data` (its own sampling,
shuffling and sharding: ``TorchTrainer(datasets=...)`` on N workers).

:func:`check_data` checks a task's splits against a config (the item type and shape, what an
unsized Dataset allows, the labels that ``stratify: true`` needs) before any trial trains;
:func:`check_loader_options` checks the ``train.data`` options against the installed torch.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Subset

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.tasks import TaskSpec, stratified_subset
from raytune_opt.tasks.registry import check_splits_agree
from raytune_opt.train.ray_data import RayBatches, check_ray_data, is_ray_dataset, sample

__all__ = [
    "is_tensors",
    "sized",
    "targets",
    "subset_indices",
    "train_subset",
    "check_loader_options",
    "check_data",
    "TrainData",
    "EvalData",
]

log = logging.getLogger(__name__)

#: the DataLoader options of ``train.data`` and the values that leave torch's behaviour as is
_LOADER_DEFAULTS = {
    "num_workers": 0,
    "pin_memory": None,
    "persistent_workers": False,
    "prefetch_factor": None,
    "drop_last": False,
}


def is_tensors(part: Any) -> bool:
    """Whether a split is given as ``(X, y)`` tensors (the in-memory fast path)."""
    return isinstance(part, tuple) and len(part) == 2 and all(isinstance(t, Tensor) for t in part)


def sized(part: Any) -> bool:
    """Whether a split has a length (tensors, a map-style Dataset, a sized IterableDataset)."""
    if is_tensors(part):
        return True
    try:
        len(part)
    except TypeError:
        return False
    return True


def targets(part: Any, given: Any = None) -> Tensor | None:
    """The labels of a split: the tensors' ``y``, ``given`` (``TaskSpec.train_targets``), or the
    Dataset's ``targets`` attribute (torchvision's name; a list or array is made a tensor); ``None``
    if unknown."""
    if is_tensors(part):
        return part[1]
    labels = given if given is not None else getattr(part, "targets", None)
    if labels is None:
        return None
    return labels if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels))


@functools.cache
def _loader_parameters() -> frozenset[str]:
    """The parameter names of the installed torch's ``DataLoader``."""
    return frozenset(inspect.signature(DataLoader.__init__).parameters)


def check_loader_options(data: Any, task: str = "", accepted: Collection[str] | None = None) -> None:
    """A ``ConfigError`` for a ``train.data`` option the installed torch's ``DataLoader`` lacks
    (``accepted``: its parameter names, read from its signature by default), or one that needs
    loader workers while ``num_workers`` is 0 (torch refuses those too, but only once a trial runs)."""
    if accepted is None:
        accepted = _loader_parameters()
    where = f"task {task!r}: " if task else ""
    for name, default in _LOADER_DEFAULTS.items():
        value = getattr(data, name)
        if value != default and name not in accepted:
            raise ConfigError.invalid(
                f"{where}train.data.{name}",
                value,
                f"{default!r}: torch {torch.__version__}'s DataLoader has no {name!r} option",
            )
    if data.num_workers == 0:
        for name in ("persistent_workers", "prefetch_factor"):
            if getattr(data, name) != _LOADER_DEFAULTS[name]:
                raise ConfigError.invalid(
                    f"{where}train.data.{name}",
                    getattr(data, name),
                    f"{_LOADER_DEFAULTS[name]!r} with train.data.num_workers = 0 (it sets the loader "
                    "workers, and there are none)",
                )


def subset_indices(
    part: Any,
    fraction: float,
    seed: int = 0,
    *,
    stratify: bool | None = None,
    labels: Tensor | None = None,
    classes: bool = True,
    where: str = "",
) -> Tensor:
    """Sorted indices of the ``data_fraction`` subset of a split (every index for 1).

    Class-stratified (:func:`raytune_opt.tasks.stratified_subset`) when ``stratify`` is not False,
    the data has ``classes`` and its labels are known (``labels``, else :func:`targets`); a plain
    seeded subset otherwise (logged when classes were expected); a ``ConfigError`` when ``stratify``
    is True without labels, or the split has no length. ``where`` prefixes the messages
    (``"task 'x': "``).
    """
    if not sized(part):
        raise ConfigError.invalid(
            f"{where}data_fraction",
            fraction,
            f"1 for a {type(part).__name__} without a length (a subset needs its indices)",
        )
    n = len(part[1]) if is_tensors(part) else len(part)
    if labels is None and stratify is not False:
        labels = targets(part)
    if labels is not None and len(labels) != n:
        raise ConfigError.invalid(f"{where}the labels' length", len(labels), f"{n}, the split's length")
    if stratify and labels is None:
        raise ConfigError.invalid(
            f"{where}train.data.stratify",
            True,
            f"False or None for a {type(part).__name__} without labels (give it a `targets` "
            "attribute, or TaskSpec.train_targets)",
        )
    wants = stratify is True or (stratify is None and classes)
    if labels is None and wants and fraction != 1.0:
        log.warning("%sno labels, so data_fraction draws a plain (unstratified) subset", where)
    keys = labels if labels is not None and stratify is not False else torch.zeros(n, dtype=torch.long)
    return stratified_subset(keys, fraction, seed, stratify=wants and labels is not None)


def train_subset(spec: TaskSpec, task: str, cfg: Any) -> Tensor:
    """:func:`subset_indices` of a task's training split for the trial config ``cfg``."""
    return subset_indices(
        spec.train,
        cfg.data_fraction,
        cfg.data_seed,
        stratify=cfg.data.stratify,
        labels=targets(spec.train, spec.train_targets),
        classes=spec.num_classes is not None,
        where=f"task {task!r}: ",
    )


def _item(part: Any) -> tuple[Any, Any]:
    """The first ``(x, y)`` of a split (``X[0], y[0]`` for tensors)."""
    if is_tensors(part):
        return part[0][0], part[1][0]
    if isinstance(part, IterableDataset):
        return next(iter(part))
    return part[0]


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, (Tensor, np.ndarray)):
        return tuple(value.shape)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return ()
    return None


def check_data(spec: TaskSpec, task: str, cfg: Any, world_size: int | None = None) -> None:
    """Check the task's splits against the trial config ``cfg`` (a :class:`TrainConfig`): a
    ConfigError naming the task and the field before any training.

    Every split's first item must be an ``(x, y)`` pair (x a tensor or array, y a tensor, array or
    number) with the same shapes as the other splits'; a training split without a length takes
    one worker, ``data_fraction`` 1, a constant schedule and an integer batch size only; the
    ``train.data`` options must suit the installed torch; GLM solvers need tensors.
    """
    check_loader_options(cfg.data, task)
    check_ray_data(spec, task, cfg)
    shapes: dict[str, tuple[Any, Any]] = {}
    for name in ("train", "val", "test"):
        part = getattr(spec, name)
        if part is None or is_ray_dataset(part):  # checked by its schema (check_ray_data)
            continue
        try:
            item = _item(part)
        except StopIteration:
            raise ConfigError(f"task {task!r}: TaskSpec.{name} is empty") from None
        x, y = item if isinstance(item, (tuple, list)) and len(item) == 2 else (None, None)
        got = (_shape(x), _shape(y))
        if x is None or not isinstance(x, (Tensor, np.ndarray)) or None in got:
            shown = type(item).__name__ if x is None else f"({type(x).__name__}, {type(y).__name__})"
            raise ConfigTypeError.invalid(
                f"task {task!r}: TaskSpec.{name}[0]",
                shown,
                "an (x, y) pair: x a tensor or NumPy array, y a tensor, array or number",
            )
        shapes[name] = got
    check_splits_agree(
        shapes,
        lambda name: f"task {task!r}: the shapes of a TaskSpec.{name} item (x, y)",
        lambda first_name, first: f"{first}, the shapes of a {first_name} item",
    )
    workers = cfg.num_workers if world_size is None else world_size
    streamed = is_ray_dataset(spec.train)  # its sample needs no length (raytune_opt.train.ray_data)
    if not streamed and not sized(spec.train):
        kind = type(spec.train).__name__
        for field, value, allowed in (
            ("data_fraction", cfg.data_fraction, 1.0),
            ("num_workers", workers, 1),
            ("schedule", cfg.schedule, "constant"),
        ):
            if value != allowed:
                raise ConfigError.invalid(
                    f"task {task!r}: {field}",
                    value,
                    f"{allowed!r} for a training {kind} without a length (it has no indices to shard, "
                    "subset or count steps by)",
                )
        if cfg.batch_size == "full":
            raise ConfigError.invalid(
                f"task {task!r}: batch_size", "full", f"an integer for a training {kind} without a length"
            )
    elif not streamed and not is_tensors(spec.train):  # the labels that stratify needs (tensors: y)
        train_subset(spec, task, cfg)
    if workers > 1:
        for name in ("val", "test"):
            part = getattr(spec, name)
            if part is not None and not is_ray_dataset(part) and not sized(part):
                raise ConfigError.invalid(
                    f"task {task!r}: num_workers",
                    workers,
                    f"1 for a {name} {type(part).__name__} without a length (it cannot be sharded)",
                )


def _loader(dataset: Dataset, batch_size: int, data: Any, device: torch.device, **kw: Any) -> DataLoader:
    """A DataLoader with the ``train.data`` options (pinned on a GPU unless told otherwise)."""
    pin = data.pin_memory if data.pin_memory is not None else device.type == "cuda"
    extra: dict[str, Any] = {}
    if data.num_workers > 0:
        extra["persistent_workers"] = data.persistent_workers
        if data.prefetch_factor is not None:
            extra["prefetch_factor"] = data.prefetch_factor
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=data.num_workers, pin_memory=pin, **extra, **kw
    )


def _read(loader: DataLoader) -> Iterator[Any]:
    """The loader's batches; a loader worker that died while handing over a batch (torch receives
    it through the worker's file-descriptor server: an ``EOFError`` / ``ConnectionError`` before
    torch's own check sees the worker gone) is a RuntimeError that says so. Errors the worker
    caught and forwarded (a Dataset's own exception) pass unchanged."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (EOFError, ConnectionError) as e:
            if loader.num_workers == 0 or "in DataLoader worker process" in str(e):
                raise
            raise RuntimeError(
                f"DataLoader worker exited unexpectedly: the batch it was sending was lost "
                f"({type(e).__name__}: {e})"
            ) from e
        yield batch


def _to(t: Tensor, device: torch.device) -> Tensor:
    """``t`` on ``device`` (a non-blocking copy from pinned memory on CUDA; no copy if already there)."""
    return t.to(device, non_blocking=True)


class TrainData:
    """One worker's training batches, epoch by epoch, on the session's device.

    ``local_batch`` is the per-worker batch (``batch_size / W``, or the whole shard for full
    batches), ``num_samples`` the shard's size, ``steps_per_epoch`` the optimizer steps of an
    epoch (``None`` for a training split without a length), ``tensors`` the subset's ``(X, y)``
    when the split is tensors (what the GLM solvers fit), else ``None``.
    """

    def __init__(self, spec: TaskSpec, task: str, cfg: Any, session: Any) -> None:
        self.device = device = session.device
        self.rank, self.world_size, self.seed = session.rank, session.world_size, cfg.seed
        self.drop_last = cfg.data.drop_last
        full = cfg.batch_size == "full" or cfg.kind == "second-order"
        part = spec.train
        self.tensors: tuple[Tensor, Tensor] | None = None
        self._ray: RayBatches | None = None
        if is_ray_dataset(part):  # check_data refused a full batch
            self.sampler = None
            self.local_batch = max(cfg.batch_size // self.world_size, 1)
            self._ray = RayBatches(
                sample(part, cfg.data_fraction, cfg.data_seed, spec.columns),
                spec.columns,
                self.local_batch,
                device,
                shard=session.dataset_shard("train"),
                train=True,
                seed=cfg.seed,
                world_size=self.world_size,
                drop_last=self.drop_last,
                pin_memory=cfg.data.pin_memory,
                count=cfg.schedule != "constant",  # the steps of an epoch: one pass to count
            )
            self.num_samples = self._ray.num_rows
            self.steps_per_epoch = None
            if self.num_samples is not None:
                steps, rest = divmod(self.num_samples, self.local_batch)
                self.steps_per_epoch = steps + (rest > 0 and not self.drop_last)
            return
        if not sized(part):  # an IterableDataset read as it comes (check_data allowed it)
            self.sampler = None
            self.num_samples, self.steps_per_epoch = None, None
            self.local_batch = cfg.batch_size
            self._loader = _loader(part, self.local_batch, cfg.data, device, drop_last=self.drop_last)
            return
        keep = train_subset(spec, task, cfg)
        n = len(keep)
        self.sampler = DistributedSampler(
            _Sized(n), num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=cfg.seed
        )
        self.num_samples = self.sampler.num_samples
        self.local_batch = self.num_samples if full else max(cfg.batch_size // self.world_size, 1)
        steps, rest = divmod(self.num_samples, self.local_batch)
        self.steps_per_epoch = steps + (rest > 0 and not self.drop_last)
        if self.steps_per_epoch == 0:
            raise ConfigError.invalid(
                f"task {task!r}: train.data.drop_last",
                True,
                f"False when a worker's {self.num_samples} samples are fewer than its batch of "
                f"{self.local_batch} (no batch would be left)",
            )
        if is_tensors(part):
            x, y = part if n == len(part[1]) else (part[0][keep], part[1][keep])  # no copy of all
            if device.type == "cuda":  # small data sets: one pinned, non-blocking copy, then slice there
                x, y = _to(x.pin_memory(), device), _to(y.pin_memory(), device)
            self.tensors = (x, y)
            return
        dataset = part if n == len(part) else Subset(part, keep.tolist())
        self._generator = torch.Generator()
        self._loader = _loader(
            dataset,
            self.local_batch,
            cfg.data,
            device,
            sampler=self.sampler,
            drop_last=self.drop_last,
            generator=self._generator,
        )

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches ``(x, y)`` of epoch ``epoch`` (0-based) on the device."""
        if self._ray is not None:
            yield from self._ray.epoch(epoch)
            return
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        if self.tensors is not None:
            x, y = self.tensors
            order = torch.tensor(list(iter(self.sampler)), device=x.device)
            for idx in order.split(self.local_batch):
                if self.drop_last and len(idx) < self.local_batch:
                    break
                yield _to(x[idx], self.device), _to(y[idx], self.device)
            return
        if self.sampler is not None:
            self._generator.manual_seed(self.seed + 1_000_003 * self.rank + 7_919 * epoch)
        for xb, yb in _read(self._loader):
            yield _to(xb, self.device), _to(yb, self.device)


class EvalData:
    """One worker's share of a split for evaluation (positions rank, rank + W, …), in device batches
    (a Ray Dataset: all of split ``name``, on every worker; ``columns``: its feature and label)."""

    def __init__(
        self,
        part: Any,
        batch_size: int,
        data: Any,
        session: Any,
        columns: tuple[str, str] = ("x", "y"),
        name: str = "val",
    ) -> None:
        self.device = session.device
        self.batch_size = batch_size
        rank, world = session.rank, session.world_size
        self.tensors: tuple[Tensor, Tensor] | None = None
        self._ray: RayBatches | None = None
        if is_ray_dataset(part):
            shard = session.dataset_shard(name)
            self._ray = RayBatches(
                part, columns, batch_size, self.device, shard=shard, pin_memory=data.pin_memory
            )
            return
        if is_tensors(part):
            x, y = part
            if self.device.type == "cuda":
                x, y = _to(x.pin_memory(), self.device), _to(y.pin_memory(), self.device)
            self.tensors = (x, y)
            self._idx = torch.arange(rank, len(y), world, device=x.device)
            return
        if sized(part) and world > 1:
            part = Subset(part, list(range(rank, len(part), world)))
        self._loader = _loader(part, batch_size, data, self.device, shuffle=False)

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Every batch ``(x, y)`` of this worker's share, on the device."""
        if self._ray is not None:
            yield from self._ray.epoch()
            return
        if self.tensors is not None:
            x, y = self.tensors
            for chunk in self._idx.split(self.batch_size):
                yield _to(x[chunk], self.device), _to(y[chunk], self.device)
            return
        for xb, yb in _read(self._loader):
            yield _to(xb, self.device), _to(yb, self.device)


class _Sized:
    """A sized stand-in for the training subset, for ``DistributedSampler``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n
