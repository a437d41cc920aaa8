"""Named tasks: a data set, a model, its loss and its metric behind one name.

A task is a function ``fn(**task_args) -> TaskSpec``; :func:`register_task` puts it under a
name and :func:`get_task` finds it again. Built-in tasks register themselves when
``raytune_opt.tasks`` is imported; a user registers their own from a script::

    from raytune_opt.tasks import TaskSpec, register_task

    @register_task("my-task")
    def my_task(hidden: int = 64) -> TaskSpec:
        ...
        return TaskSpec(train=(X, y), val=(Xv, yv), model=net, loss=F.cross_entropy)

The training loop seeds torch before it calls the function, so the model's initial weights
are a function of the trial's seed.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.utils.data import Dataset

from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = [
    "Metric",
    "ACCURACY",
    "TaskSpec",
    "Task",
    "register_task",
    "get_task",
    "available_tasks",
    "is_ray_dataset",
]


def is_ray_dataset(part: Any) -> bool:
    """Whether ``part`` is a ``ray.data.Dataset`` (without importing Ray: a task that built one has)."""
    data = sys.modules.get("ray.data")
    return data is not None and isinstance(part, data.Dataset)


def check_splits_agree(
    found: dict[str, Any], field: Callable[[str], str], expected: Callable[[str, Any], str]
) -> None:
    """A ConfigError unless what ``found`` holds for each split (its name → item shapes, column
    types …) is the same for all: ``field(name)`` names the first split that differs,
    ``expected(first_name, first_value)`` says what the first split had."""
    first_name, first = next(iter(found.items()), (None, None))
    for name, got in found.items():
        if got != first:
            raise ConfigError.invalid(field(name), got, expected(first_name, first))


@dataclass(frozen=True)
class Metric:
    """A metric reported as ``val_<name>``: the mean over samples of ``total(output, target) / n``.

    ``total`` returns the metric summed over the samples of a batch, so that batches and
    workers can be added up exactly before dividing by the sample count.
    """

    name: str
    mode: str
    total: Callable[[Tensor, Tensor], Tensor]

    @property
    def worst(self) -> float:
        """The value a diverged trial reports: 0 for accuracy-like (max) metrics, +inf for min ones."""
        return 0.0 if self.mode == "max" else math.inf


def _correct(output: Tensor, target: Tensor) -> Tensor:
    """Number of samples whose arg-max class equals the target."""
    return (output.argmax(dim=-1) == target).sum()


ACCURACY = Metric("accuracy", "max", _correct)


@dataclass
class TaskSpec:
    """What a task function returns.

    Each split is ``(X, y)`` tensors (sliced in memory: the fast path for small data) or a
    ``torch.utils.data.Dataset`` whose items are ``(x, y)`` pairs (read through a ``DataLoader``
    configured by ``train.data``; an ``IterableDataset`` only where nothing needs random access:
    one worker, ``data_fraction`` 1, see :mod:`raytune_opt.train.data`), or a ``ray.data.Dataset``
    whose rows hold a feature and a label column (``columns``; see :mod:`raytune_opt.train.ray_data`).

    Attributes:
        train: the training split (the ``data_fraction`` subset is drawn from it).
        val: the validation split (always used whole): what trials report and the search tunes on.
        test: the test split, or ``None``: held out from every trial, for a final evaluation of
            the configuration the search found only.
        model: the freshly initialised model.
        loss: ``loss(output, target) -> Tensor`` with mean reduction.
        metric: the task metric (default: classification accuracy).
        num_classes: number of classes for class-stratified subsets; ``None`` for regression.
        residuals: ``residuals(output, target) -> Tensor`` of prediction − observed, for
            least-squares optimizers (``lm``); ``None`` when the task has none.
        augment: ``augment(x) -> x`` applied to each training batch (uses torch's global RNG).
        train_targets: the labels of a training ``Dataset`` that has no ``targets`` attribute,
            for class-stratified ``data_fraction`` subsets (ignored for tensors).
        columns: the feature and the label column of a ``ray.data.Dataset`` split.
        glm_family: for GLM tasks (a :class:`~raytune_opt.tasks.models.LinearPredictor` model), the
            :class:`raytune_opt.glm.families.Family` (with its link), so GLM solvers can fit it.
    """

    train: tuple[Tensor, Tensor] | Dataset | Any  # Any: a ray.data.Dataset
    val: tuple[Tensor, Tensor] | Dataset | Any
    model: nn.Module
    loss: Callable[[Tensor, Tensor], Tensor]
    metric: Metric = ACCURACY
    num_classes: int | None = None
    residuals: Callable[[Tensor, Tensor], Tensor] | None = None
    augment: Callable[[Tensor], Tensor] | None = None
    glm_family: Any = None  # raytune_opt.glm.families.Family
    test: tuple[Tensor, Tensor] | Dataset | Any | None = None
    train_targets: Tensor | None = None
    columns: tuple[str, str] = ("x", "y")

    def __post_init__(self) -> None:
        for part in ("train", "val", "test"):
            xy = getattr(self, part)
            if (part == "test" and xy is None) or is_ray_dataset(xy):
                continue
            if isinstance(xy, Dataset) and not isinstance(xy, tuple):
                if hasattr(xy, "__len__") and len(xy) == 0:
                    raise ConfigError(f"TaskSpec.{part}: the Dataset is empty")
                continue
            if not (isinstance(xy, tuple) and len(xy) == 2 and all(isinstance(t, Tensor) for t in xy)):
                raise ConfigTypeError(
                    f"TaskSpec.{part} must be a tuple (X, y) of tensors, a torch.utils.data.Dataset or a "
                    f"ray.data.Dataset, got {type(xy).__name__}"
                )
            if len(xy[0]) != len(xy[1]) or len(xy[0]) == 0:
                raise ConfigError(f"TaskSpec.{part}: X and y must be non-empty with equal lengths")
        columns = tuple(self.columns) if isinstance(self.columns, (tuple, list)) else None
        if columns is None or len(columns) != 2 or not all(isinstance(c, str) for c in columns):
            raise ConfigTypeError.invalid(
                "TaskSpec.columns", self.columns, "a pair (feature column, label column) of names"
            )
        self.columns = columns
        if self.train_targets is not None and not isinstance(self.train_targets, Tensor):
            raise ConfigTypeError.invalid(
                "TaskSpec.train_targets", type(self.train_targets).__name__, "a Tensor or None"
            )
        if not isinstance(self.model, nn.Module):
            raise ConfigTypeError(f"TaskSpec.model must be an nn.Module, got {type(self.model).__name__}")
        if self.metric.mode not in ("min", "max"):
            raise ConfigError.invalid("TaskSpec.metric.mode", self.metric.mode, "'min' or 'max'")


@dataclass(frozen=True)
class Task:
    """A registered task: its name, the function that builds it and that function's arguments."""

    name: str
    fn: Callable[..., TaskSpec]
    summary: str = ""
    builtin: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)

    def check_args(self, task_args: dict[str, Any]) -> None:
        """Raise a ``ConfigError`` (with did-you-mean) for an argument the task function does not take,
        or whose value does not have the type its annotation (or, unannotated, its default) states
        (``int``, ``float``, ``bool``, ``str``: ``hidden: 'x'`` for ``hidden: int = 64``)."""
        hints = _hints(self.fn)
        for key, value in task_args.items():
            if key not in self.defaults:
                raise ConfigError.unknown(f"task_args of {self.name!r}: {key!r}", key, self.defaults)
            kind = hints.get(key)
            if kind is None and type(self.defaults[key]) in _SCALARS:
                kind = type(self.defaults[key])
            if kind in _SCALARS and not _is(value, kind):
                raise ConfigTypeError.invalid(f"task {self.name!r}: args.{key}", value, _SCALARS[kind])

    def build(self, **task_args: Any) -> TaskSpec:
        """Call the task function; checks its arguments and its return type. An exception of the
        task function (a value it cannot take: ``hidden: -1``, ``num_samples: 0``) becomes a
        ConfigError naming the task and its arguments."""
        self.check_args(task_args)
        try:
            spec = self.fn(**task_args)
        except ConfigError:
            raise
        except Exception as e:  # the task's own code: any error, in one line with the task's name
            shown = ", ".join(f"{k}={v!r}" for k, v in task_args.items()) or "its defaults"
            raise ConfigError(
                f"task {self.name!r} cannot be built with {shown}: {type(e).__name__}: {str(e)[:300]}"
            ) from e
        if not isinstance(spec, TaskSpec):
            raise ConfigTypeError(f"task {self.name!r} returned {type(spec).__name__}, expected a TaskSpec")
        return spec


_TASKS: dict[str, Task] = {}

#: the argument types a task's arguments are checked against, and how a message names them
_SCALARS: dict[type, str] = {int: "an integer", float: "a number", bool: "True or False", str: "a string"}


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The task function's parameter annotations as types (``{}`` when they cannot be resolved)."""
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: fall back to the defaults' types
        return {}


def register_task(
    name: str,
    fn: Callable[..., TaskSpec] | None = None,
    *,
    summary: str = "",
    overwrite: bool = False,
    _builtin: bool = False,
) -> Any:
    """Register ``fn`` (a function returning a :class:`TaskSpec`) under ``name``.

    Usable as ``register_task("name", fn)`` or as a decorator ``@register_task("name")``.
    Registering a taken name raises a ``ConfigError`` unless ``overwrite=True``.
    """

    def _register(f: Callable[..., TaskSpec]) -> Callable[..., TaskSpec]:
        if not isinstance(name, str) or not name:
            raise ConfigTypeError(f"task name = {name!r} is not allowed: expected a non-empty string")
        if not callable(f):
            raise ConfigTypeError(f"task {name!r}: fn = {f!r} is not callable")
        if name in _TASKS and not overwrite:
            raise ConfigError(f"task {name!r} is already registered; pass overwrite=True to replace it")
        params = inspect.signature(f).parameters.values()
        defaults = {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        doc = summary or (inspect.getdoc(f) or "").split("\n")[0]
        _TASKS[name] = Task(name, f, doc, _builtin, defaults)
        return f

    return _register if fn is None else _register(fn)


def get_task(name: str) -> Task:
    """The task registered as ``name``; a ``ConfigError`` with did-you-mean otherwise."""
    if not isinstance(name, str) or name not in _TASKS:
        raise ConfigError.unknown("task", name, _TASKS)
    return _TASKS[name]


def available_tasks() -> dict[str, Task]:
    """Every registered task by name, in registration order."""
    return dict(_TASKS)


def user_tasks(names: Iterable[str] | None = None) -> dict[str, Task]:
    """The tasks registered by the user (not built in), or those of them named in ``names``: what
    travels to Ray workers with a trainable (only the ones its trials use, so that an unrelated
    registered task whose code a worker cannot load never breaks a trial)."""
    wanted = None if names is None else set(names)
    return {n: t for n, t in _TASKS.items() if not t.builtin and (wanted is None or n in wanted)}


def restore_user_tasks(tasks: dict[str, Task]) -> None:
    """Re-register tasks captured by :func:`user_tasks` in another process (a Ray worker)."""
    for name, task in tasks.items():
        _TASKS.setdefault(name, task)
