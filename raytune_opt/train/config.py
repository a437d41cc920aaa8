"""The config of one trial, validated up front.

A trial's config is a flat dict (what Ray Tune samples). The loop's own keys are the fields of
:class:`TrainSettings` (what an experiment's ``train`` section holds) plus the trial's task, optimizer
and scaling keys, listed with their defaults in :data:`DEFAULTS`; every other key must be a
hyperparameter of the chosen optimizer (``lr``, ``weight_decay``, ``betas`` …, see
``raytune_opt.optim.spec(name).hparams``), flat or optimizer-aware (``"lion.lr"``, see
:mod:`raytune_opt.keys`). Anything else is a ``ConfigError`` naming the key, with a did-you-mean.

:func:`validate` checks a concrete config; :func:`validate_space` checks a Tune ``param_space``
whose values may be search domains (``tune.loguniform``, ``tune.choice``, ``tune.grid_search``):
it checks names, and the values that are fixed or categorical. Both run before Ray starts a trial.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from raytune_opt import keys
from raytune_opt.errors import ConfigError, ConfigTypeError, expected
from raytune_opt.tasks import check_fraction, get_task
from raytune_opt.train.glm_solvers import GLM_METHODS
from raytune_opt.train.schedules import SCHEDULES

__all__ = [
    "DEFAULTS",
    "DataSettings",
    "TrainSettings",
    "TrainConfig",
    "validate",
    "validate_space",
    "task_names",
    "resolve_optimizer_keys",
    "SECOND_ORDER",
    "STRATEGIES",
    "check_strategy",
]

SECOND_ORDER = "second-order"
#: how a trial's workers hold the model (``resources.strategy``): ddp replicates it on every
#: worker; fsdp shards its parameters over them (``raytune_opt.train.sharding``)
STRATEGIES = ("ddp", "fsdp")


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not True/False")
    return value


def _finite(value: float) -> float:
    if math.isnan(value):
        raise ValueError("a number, not NaN")
    return value


#: an integer (True/False refused, as YAML's ``yes`` would otherwise count as 1)
Int = Annotated[int, BeforeValidator(_no_bool)]
#: a float (True/False and NaN refused)
Float = Annotated[float, BeforeValidator(_no_bool)]


class DataSettings(BaseModel):
    """How a task's ``torch.utils.data.Dataset`` is read (the experiment's ``train.data`` section): the
    ``torch.utils.data.DataLoader`` options of the same names. Tensors (the built-in tasks) are
    sliced in memory and ignore them. ``raytune_opt.train.data.check_loader_options`` checks them
    against the installed torch."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)

    #: loader worker processes per training worker (0: load in the training process)
    num_workers: Int = Field(0, ge=0)
    #: page-locked host batches for fast host → GPU copies (None: on when the device is a GPU)
    pin_memory: bool | None = None
    #: keep the loader workers alive between epochs (needs num_workers > 0)
    persistent_workers: bool = False
    #: batches each loader worker loads ahead (None: torch's default; needs num_workers > 0)
    prefetch_factor: Int | None = Field(None, ge=1)
    #: drop each epoch's last incomplete batch (tensors too, so both kinds step alike)
    drop_last: bool = False
    #: class-stratified data_fraction subsets: None stratifies when the labels are known (a
    #: ``targets`` attribute, or ``TaskSpec.train_targets``), True requires it, False never does
    stratify: bool | None = None

    @field_validator("pin_memory", "persistent_workers", "drop_last", "stratify", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool):
            raise ValueError("True or False")
        return value


class TrainSettings(BaseModel):
    """The loop's settings, fixed for every trial of an experiment (its ``train`` section) or searched
    (a key of the search space). The one declaration of these keys: their defaults, types and ranges."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    #: the epoch budget (fidelity; also the schedule's horizon)
    epochs: Int = Field(10, ge=1)
    #: int, or "full" for full-batch gradient descent (the global batch over all workers)
    batch_size: Annotated[int, BeforeValidator(_no_bool), Field(ge=1)] | Literal["full"] = 64
    #: constant | step | cosine | warmup_cosine | onecycle (``raytune_opt.train.SCHEDULES``)
    schedule: str = "constant"
    #: warmup_cosine: linear warm-up length in epochs
    warmup_epochs: Float = Field(1.0, ge=0.0)
    #: step: decay every step_epochs epochs ...
    step_epochs: Int = Field(10, ge=1)
    #: ... by this factor
    step_gamma: Float = Field(0.1, gt=0.0, le=1.0)
    #: onecycle: fraction of the steps spent increasing the lr
    pct_start: Float = Field(0.3, gt=0.0, le=1.0)
    #: max global gradient norm, or None
    grad_clip: Float | None = Field(None, gt=0.0)
    #: model initialisation, augmentation, shuffling
    seed: Int = Field(0, ge=0)
    #: class-stratified training subset (fidelity); validation stays whole
    data_fraction: float = 1.0
    #: seed of the subset (fixed across trials so fidelities nest)
    data_seed: Int = Field(0, ge=0)
    #: epochs between checkpoints (0: only the last epoch, see checkpoint_at_end)
    checkpoint_every: Int = Field(1, ge=0)
    #: also save at the last epoch (Ray's CheckpointConfig name); False with checkpoint_every 0:
    #: no checkpoints at all (nothing to clone or resume from)
    checkpoint_at_end: bool = True
    #: fp32 | bf16 (autocast)
    precision: Literal["fp32", "bf16"] = "fp32"
    #: batch size of the validation pass
    eval_batch_size: Int = Field(4096, ge=1)
    #: the DataLoader of a task that gives Datasets (:class:`DataSettings`)
    data: DataSettings = Field(default_factory=DataSettings)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value not in SCHEDULES:
            raise ConfigError.unknown("schedule", value, SCHEDULES)
        return value

    @field_validator("data_fraction", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> float:
        return check_fraction(value)

    @field_validator("checkpoint_at_end", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError("True or False")
        return value

    @property
    def checkpoints(self) -> bool:
        """Whether the trial saves any checkpoint (what PBT's clones and resumes need)."""
        return self.checkpoint_every > 0 or self.checkpoint_at_end


class TrainConfig(TrainSettings):
    """A validated trial config: the loop's settings, the task, the scaling and the optimizer's
    hyperparameters (its ``kind`` from the registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    task_args: dict[str, Any] = Field(default_factory=dict)
    optimizer: str = "adamw"
    hparams: dict[str, Any] = Field(default_factory=dict)
    #: 1: inside the Tune trial; > 1: DDP under ray.train.torch.TorchTrainer
    num_workers: Int = Field(1, ge=1)
    #: one GPU per worker (runs under TorchTrainer)
    use_gpu: bool = False
    #: e.g. {"CPU": 2}; default {"CPU": 1} (+ {"GPU": 1} with use_gpu)
    resources_per_worker: dict[str, Annotated[float, BeforeValidator(_no_bool), Field(ge=0.0)]] | None = None
    #: ddp | fsdp (:data:`STRATEGIES`); fsdp runs under TorchTrainer even with one worker
    strategy: Literal["ddp", "fsdp"] = "ddp"
    kind: str = "first-order"

    @field_validator("use_gpu", mode="before")
    @classmethod
    def _strict_gpu(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError("True or False")
        return value

    @property
    def distributed(self) -> bool:
        """Whether the trial runs under ``TorchTrainer`` (more than one worker, a GPU, or fsdp)."""
        return self.num_workers > 1 or self.use_gpu or self.strategy == "fsdp"

    def worker_resources(self) -> dict[str, float]:
        """Ray resources of one worker (Tune trial or Train worker)."""
        res = dict(self.resources_per_worker or {"CPU": 1})
        if self.use_gpu:
            res.setdefault("GPU", 1)
        return res


#: every loop key of a trial's config and its default (the optimizer's hyperparameters aside)
DEFAULTS: dict[str, Any] = {
    "task": None,  # required: a name from raytune_opt.tasks.available_tasks()
    "task_args": {},  # keyword arguments of the task function
    "optimizer": "adamw",  # a name from raytune_opt.optim.available()
    **TrainSettings().model_dump(),
    "num_workers": 1,
    "use_gpu": False,
    "resources_per_worker": None,
    "strategy": "ddp",
}


def settings_error(error: ValidationError) -> ConfigError:
    """The first pydantic error of a trial config as a ConfigError naming the key and the value."""
    err = error.errors()[0]
    loc = err["loc"][:2] if err["loc"][:1] == ("data",) else err["loc"][:1]
    field = ".".join(str(x) for x in loc) or "config"
    msg = expected(err)
    if err["type"] == "value_error" and msg.startswith(f"{field} = "):
        return ConfigError(msg)  # already one of our own messages
    kind = ConfigTypeError if err["type"].endswith(("_type", "_parsing")) else ConfigError
    return kind(f"{field} = {err.get('input')!r} is not allowed: {msg}")


class _GLMSolverSpec:
    """What the config needs of a GLM solver (``raytune_opt.train.glm_solvers``): no hyperparameters."""

    kind = SECOND_ORDER
    hparams: dict[str, Any] = {}

    def __init__(self, name: str) -> None:
        self.name = name


def _spec(name: Any) -> Any:
    """The optimizer's registry spec, or a GLM solver's stand-in; ConfigError listing both otherwise."""
    from raytune_opt import optim

    if name in GLM_METHODS:
        return _GLMSolverSpec(name)
    if not isinstance(name, str) or name not in optim.available():
        raise ConfigError.unknown("optimizer", name, [*optim.available(), *GLM_METHODS])
    return optim.spec(name)


def check_strategy(strategy: str, optimizer: str, field: str = "strategy") -> None:
    """fsdp shards every parameter over the workers; only the first-order optimizers (elementwise
    rules) step shards: a second-order one (or a GLM solver) with fsdp is a ``ConfigError``."""
    if strategy == "fsdp" and _spec(optimizer).kind == SECOND_ORDER:
        from raytune_opt import optim

        raise ConfigError.invalid(
            field,
            strategy,
            f"'ddp' with the second-order optimizer {optimizer!r}: its step needs every parameter whole, "
            "and fsdp shards them over the workers (the optimizers that step shards: "
            f"{', '.join(optim.available('first-order'))})",
        )


def _check_keys(config: Mapping[str, Any], optimizers: Iterable[str]) -> None:
    allowed = set(DEFAULTS)
    for name in optimizers:
        hparams = _spec(name).hparams
        allowed |= set(hparams) | {keys.key(name, h) for h in hparams}
    for key in config:
        if key not in allowed:
            raise ConfigError.unknown("config key", key, allowed)


def resolve_optimizer_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """Fold the optimizer-aware keys of a conditional search space into flat ones.

    ``{"optimizer": "lion", "lion.lr": 3e-4, "adamw.lr": 1e-3}`` → ``{"optimizer": "lion", "lr": 3e-4}``:
    ``"<name>.<hparam>"`` is the hyperparameter of optimizer ``name`` (:mod:`raytune_opt.keys`); the
    chosen optimizer's keys become flat hyperparameters, other optimizers' (inactive branches) are
    dropped. Every optimizer-aware key is checked (inactive ones too); a flat key given as well is a
    ``ConfigError`` (the value would be ambiguous).
    """
    from raytune_opt import optim

    name = config.get("optimizer", DEFAULTS["optimizer"])
    for key in config:
        parts = keys.split(key)
        if parts is None:
            continue
        owner, hparam = parts
        if owner not in optim.available() and owner not in GLM_METHODS:
            raise ConfigError.unknown(
                "config key", key, [*DEFAULTS, *(keys.key(n, "<hparam>") for n in optim.available())]
            )
        hparams = _spec(owner).hparams
        if hparam not in hparams:
            raise ConfigError.unknown(f"config key {key!r}: {owner} hyperparameter", hparam, hparams)
    for key in keys.clashes(config, name):
        hparam = keys.split(key)[1]
        raise ConfigError.invalid(
            key, config[key], f"either {key!r} or {hparam!r}, not both ({hparam} = {config[hparam]!r})"
        )
    return keys.active(config, name)


def validate(config: Mapping[str, Any]) -> TrainConfig:
    """Check a concrete trial config and return it as a :class:`TrainConfig`.

    Builds the optimizer once on a dummy parameter, so a bad hyperparameter value is caught
    here by the optimizer's own checks.
    """
    if not isinstance(config, Mapping):
        raise ConfigTypeError(f"config = {type(config).__name__} is not allowed: expected a dict")
    if config.get("task") is None:
        raise ConfigError("config['task'] is required: a name from raytune_opt.tasks.available_tasks()")
    spec = _spec(config.get("optimizer", DEFAULTS["optimizer"]))
    config = resolve_optimizer_keys(config)
    _check_keys(config, [spec.name])
    task = get_task(config["task"])
    task_args = config.get("task_args", {})
    if not isinstance(task_args, Mapping):
        raise ConfigTypeError.invalid("task_args", task_args, "a dict of the task function's arguments")
    task.check_args(dict(task_args))
    hparams = {k: config[k] for k in spec.hparams if k in config}
    loop = {k: v for k, v in config.items() if k in DEFAULTS}
    try:
        cfg = TrainConfig.model_validate(
            {**loop, "optimizer": spec.name, "hparams": hparams, "kind": spec.kind, "task_args": task_args}
        )
    except ValidationError as e:
        raise settings_error(e) from None
    if spec.name in GLM_METHODS:
        if task.build(**cfg.task_args).glm_family is None:
            raise ConfigError.invalid("optimizer", spec.name, "a GLM solver only for the glm-* tasks")
    else:
        from raytune_opt import optim

        optim.create(spec.name, [torch.zeros(2, 2, requires_grad=True)], **hparams)
    from raytune_opt.train.data import check_loader_options

    check_loader_options(cfg.data, cfg.task)
    if cfg.batch_size != "full" and cfg.num_workers > 1 and cfg.batch_size % cfg.num_workers:
        raise ConfigError.invalid(
            "batch_size",
            cfg.batch_size,
            f"a multiple of num_workers = {cfg.num_workers} (it is the global batch, split evenly)",
        )
    check_strategy(cfg.strategy, spec.name)
    if spec.kind == SECOND_ORDER and cfg.num_workers != 1:
        raise ConfigError.invalid(
            "num_workers",
            cfg.num_workers,
            f"1 for the second-order optimizer {spec.name!r} (full-batch closure steps)",
        )
    return cfg


def task_names(param_space: Mapping[str, Any]) -> list[str]:
    """The task names a ``param_space``'s trials can take (its ``task``, or a categorical search over
    tasks)."""
    values = _candidates(param_space.get("task")) or []
    return [v for v in values if isinstance(v, str)]


def _candidates(value: Any) -> list[Any] | None:
    """The concrete values a search-space entry can take, or ``None`` when it is continuous."""
    if isinstance(value, Mapping) and set(value) == {"grid_search"}:
        return list(value["grid_search"])
    categories = getattr(value, "categories", None)
    if categories is not None:
        return list(categories)
    if type(value).__module__.startswith("ray.tune.search"):
        return None
    return [value]


_SCALING_KEYS = ("num_workers", "use_gpu", "resources_per_worker", "strategy")


def validate_space(param_space: Mapping[str, Any]) -> TrainConfig:
    """Check a Tune ``param_space`` whose values may be search domains; return the config made
    of the first candidate of every loop key (what the launcher sizes its resources from).

    Checks every key's name, and every fixed or categorical value (each on its own, for each
    candidate optimizer that takes it). The scaling keys (``num_workers``, ``use_gpu``,
    ``resources_per_worker``, ``strategy``) must be fixed: Tune reserves resources before it samples
    a config.
    """
    for key in _SCALING_KEYS:
        if key in param_space and _candidates(param_space[key]) != [param_space[key]]:
            raise ConfigError.invalid(key, param_space[key], "a fixed value (not a search domain)")
    optimizers = _candidates(param_space.get("optimizer", DEFAULTS["optimizer"]))
    if optimizers is None:
        raise ConfigError.invalid(
            "optimizer", param_space["optimizer"], "a name or a categorical choice of names"
        )
    _check_keys(param_space, optimizers)
    cands = {k: _candidates(v) for k, v in param_space.items()}
    base = {k: c[0] for k, c in cands.items() if c and k in DEFAULTS}
    for key, values in cands.items():
        for value in values or ():
            if key in DEFAULTS:
                validate({**base, key: value})
            elif (parts := keys.split(key)) is not None:
                name, hparam = parts
                if name in optimizers:
                    validate({**base, "optimizer": name, hparam: value})
            else:
                for name in optimizers:
                    if key in _spec(name).hparams:
                        validate({**base, "optimizer": name, key: value})
    return validate(base)
