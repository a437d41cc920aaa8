"""The config of one trial, validated up front.

A trial's config is a flat dict (what Ray Tune samples). The loop's own keys are listed in
:data:`DEFAULTS`; every other key must be a hyperparameter of the chosen optimizer (``lr``,
``weight_decay``, ``betas`` …, see ``raytune_opt.optim.spec(name).hparams``). Anything else is a
``ConfigError`` naming the key, with a did-you-mean.

:func:`validate` checks a concrete config; :func:`validate_space` checks a Tune ``param_space``
whose values may be search domains (``tune.loguniform``, ``tune.choice``, ``tune.grid_search``):
it checks names, and the values that are fixed or categorical. Both run before Ray starts a trial.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.tasks import check_fraction, get_task
from raytune_opt.train.glm_solvers import GLM_METHODS
from raytune_opt.train.schedules import SCHEDULES

__all__ = ["DEFAULTS", "TrainConfig", "validate", "validate_space", "resolve_optimizer_keys", "SECOND_ORDER"]

SECOND_ORDER = "second-order"

DEFAULTS: dict[str, Any] = {
    "task": None,  # required: a name from raytune_opt.tasks.available_tasks()
    "task_args": {},  # keyword arguments of the task function
    "optimizer": "adamw",  # a name from raytune_opt.optim.available()
    "batch_size": 64,  # int, or "full" for full-batch gradient descent
    "epochs": 10,  # the epoch budget (fidelity; also the schedule's horizon)
    "schedule": "constant",  # constant | step | cosine | warmup_cosine | onecycle
    "warmup_epochs": 1.0,  # warmup_cosine: linear warm-up length in epochs
    "step_epochs": 10,  # step: decay every step_epochs epochs ...
    "step_gamma": 0.1,  # ... by this factor
    "pct_start": 0.3,  # onecycle: fraction of the steps spent increasing the lr
    "grad_clip": None,  # max global gradient norm, or None
    "seed": 0,  # model initialisation, augmentation, shuffling
    "data_fraction": 1.0,  # class-stratified training subset (fidelity); validation stays whole
    "data_seed": 0,  # seed of the subset (fixed across trials so fidelities nest)
    "checkpoint_every": 1,  # epochs between checkpoints (0: only the last epoch, see checkpoint_at_end)
    "checkpoint_at_end": True,  # also save at the last epoch (Ray's CheckpointConfig name); False with
    # checkpoint_every 0: no checkpoints at all (nothing to clone or resume from)
    "num_workers": 1,  # 1: inside the Tune trial; > 1: DDP under ray.train.torch.TorchTrainer
    "use_gpu": False,  # one GPU per worker (runs under TorchTrainer)
    "resources_per_worker": None,  # e.g. {"CPU": 2}; default {"CPU": 1} (+ {"GPU": 1} with use_gpu)
    "precision": "fp32",  # fp32 | bf16 (autocast)
    "eval_batch_size": 4096,  # batch size of the validation pass
}


@dataclass(frozen=True)
class TrainConfig:
    """A validated trial config: the loop's settings and the optimizer's hyperparameters."""

    task: str
    task_args: dict[str, Any]
    optimizer: str
    hparams: dict[str, Any]
    batch_size: int | str
    epochs: int
    schedule: str
    warmup_epochs: float
    step_epochs: int
    step_gamma: float
    pct_start: float
    grad_clip: float | None
    seed: int
    data_fraction: float
    data_seed: int
    checkpoint_every: int
    checkpoint_at_end: bool
    num_workers: int
    use_gpu: bool
    resources_per_worker: dict[str, float] | None
    precision: str
    eval_batch_size: int
    kind: str = field(default="first-order")

    @property
    def distributed(self) -> bool:
        """Whether the trial runs under ``TorchTrainer`` (more than one worker, or a GPU)."""
        return self.num_workers > 1 or self.use_gpu

    def worker_resources(self) -> dict[str, float]:
        """Ray resources of one worker (Tune trial or Train worker)."""
        res = dict(self.resources_per_worker or {"CPU": 1})
        if self.use_gpu:
            res.setdefault("GPU", 1)
        return res


@dataclass(frozen=True)
class _GLMSolverSpec:
    """What the config needs of a GLM solver (``raytune_opt.train.glm_solvers``): no hyperparameters."""

    name: str
    kind: str = SECOND_ORDER
    hparams: dict[str, Any] = field(default_factory=dict)


def _spec(name: Any) -> Any:
    """The optimizer's registry spec, or a GLM solver's stand-in; ConfigError listing both otherwise."""
    from raytune_opt import optim

    if name in GLM_METHODS:
        return _GLMSolverSpec(name)
    if not isinstance(name, str) or name not in optim.available():
        raise ConfigError.unknown("optimizer", name, [*optim.available(), *GLM_METHODS])
    return optim.spec(name)


def _int(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError.invalid(key, value, f"an integer >= {low}")
    if value < low:
        raise ConfigError.invalid(key, value, f"an integer >= {low}")
    return value


def _number(key: str, value: Any, low: float, high: float = math.inf, *, open_low: bool = False) -> float:
    what = f"a number in {'(' if open_low else '['}{low}, {high}{']' if high < math.inf else ')'}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigTypeError.invalid(key, value, what)
    ok = (value > low if open_low else value >= low) and value <= high and not math.isnan(value)
    if not ok:
        raise ConfigError.invalid(key, value, what)
    return float(value)


def _choice(key: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ConfigError.unknown(key, value, choices)
    return value


def _check_keys(config: Mapping[str, Any], optimizers: Iterable[str]) -> None:
    allowed = set(DEFAULTS)
    for name in optimizers:
        hparams = _spec(name).hparams
        allowed |= set(hparams) | {f"{name}.{h}" for h in hparams}
    for key in config:
        if key not in allowed:
            raise ConfigError.unknown("config key", key, allowed)


def resolve_optimizer_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """Fold the optimizer-aware keys of a conditional search space into flat ones.

    ``{"optimizer": "lion", "lion.lr": 3e-4, "adamw.lr": 1e-3}`` → ``{"optimizer": "lion", "lr": 3e-4}``:
    ``"<name>.<hparam>"`` is the hyperparameter of optimizer ``name`` (the naming of
    ``raytune_opt.search.SearchSpace.for_optimizers``); the chosen optimizer's keys become flat
    hyperparameters, other optimizers' (inactive branches) are dropped. A flat key given as well
    is a ``ConfigError`` (the value would be ambiguous).
    """
    name = config.get("optimizer", DEFAULTS["optimizer"])
    out = {k: v for k, v in config.items() if not (isinstance(k, str) and "." in k)}
    for key, value in config.items():
        if not (isinstance(key, str) and "." in key):
            continue
        owner, _, hparam = key.partition(".")
        from raytune_opt import optim

        if owner not in optim.available() and owner not in GLM_METHODS:
            raise ConfigError.unknown(
                "config key", key, [*DEFAULTS, *(f"{n}.<hparam>" for n in optim.available())]
            )
        hparams = _spec(owner).hparams
        if hparam not in hparams:  # checked in inactive branches too
            raise ConfigError.unknown(f"config key {key!r}: {owner} hyperparameter", hparam, hparams)
        if owner != name:
            continue
        if hparam in config:
            raise ConfigError.invalid(
                key, value, f"either {key!r} or {hparam!r}, not both ({hparam} = {config[hparam]!r})"
            )
        out[hparam] = value
    return out


def validate(config: Mapping[str, Any]) -> TrainConfig:
    """Check a concrete trial config and return it as a :class:`TrainConfig`.

    Builds the optimizer once on a dummy parameter, so a bad hyperparameter value is caught
    here by the optimizer's own checks.
    """
    if not isinstance(config, Mapping):
        raise ConfigTypeError(f"config = {type(config).__name__} is not allowed: expected a dict")
    if config.get("task") is None:
        raise ConfigError("config['task'] is required: a name from raytune_opt.tasks.available_tasks()")
    c = {**DEFAULTS, **config}
    spec = _spec(c["optimizer"])
    config = resolve_optimizer_keys(config)
    _check_keys(config, [c["optimizer"]])
    task = get_task(c["task"])
    if not isinstance(c["task_args"], Mapping):
        raise ConfigTypeError.invalid("task_args", c["task_args"], "a dict of the task function's arguments")
    task.check_args(c["task_args"])
    hparams = {k: config[k] for k in spec.hparams if k in config}
    if spec.name in GLM_METHODS:
        if task.build(**c["task_args"]).glm_family is None:
            raise ConfigError.invalid("optimizer", spec.name, "a GLM solver only for the glm-* tasks")
    else:
        from raytune_opt import optim

        optim.create(spec.name, [torch.zeros(2, 2, requires_grad=True)], **hparams)
    bs = c["batch_size"]
    if bs != "full":
        if isinstance(bs, str):
            raise ConfigError.invalid("batch_size", bs, "a positive integer or 'full'")
        _int("batch_size", bs, 1)
        workers = c["num_workers"]
        if isinstance(workers, int) and workers > 1 and bs % workers:
            raise ConfigError.invalid(
                "batch_size",
                bs,
                f"a multiple of num_workers = {workers} (it is the global batch, split evenly)",
            )
    if spec.kind == SECOND_ORDER and c["num_workers"] != 1:
        raise ConfigError.invalid(
            "num_workers",
            c["num_workers"],
            f"1 for the second-order optimizer {spec.name!r} (full-batch closure steps)",
        )
    grad_clip = c["grad_clip"]
    if grad_clip is not None:
        grad_clip = _number("grad_clip", grad_clip, 0.0, open_low=True)
    res = c["resources_per_worker"]
    if res is not None and not (
        isinstance(res, Mapping) and all(isinstance(v, (int, float)) and v >= 0 for v in res.values())
    ):
        raise ConfigError.invalid("resources_per_worker", res, "a dict of resource name -> amount >= 0")
    for key in ("use_gpu", "checkpoint_at_end"):
        if not isinstance(c[key], bool):
            raise ConfigTypeError.invalid(key, c[key], "True or False")
    return TrainConfig(
        task=c["task"],
        task_args=dict(c["task_args"]),
        optimizer=spec.name,
        hparams=hparams,
        batch_size=bs,
        epochs=_int("epochs", c["epochs"], 1),
        schedule=_choice("schedule", c["schedule"], SCHEDULES),
        warmup_epochs=_number("warmup_epochs", c["warmup_epochs"], 0.0),
        step_epochs=_int("step_epochs", c["step_epochs"], 1),
        step_gamma=_number("step_gamma", c["step_gamma"], 0.0, 1.0, open_low=True),
        pct_start=_number("pct_start", c["pct_start"], 0.0, 1.0, open_low=True),
        grad_clip=grad_clip,
        seed=_int("seed", c["seed"], 0),
        data_fraction=check_fraction(c["data_fraction"]),
        data_seed=_int("data_seed", c["data_seed"], 0),
        checkpoint_every=_int("checkpoint_every", c["checkpoint_every"], 0),
        checkpoint_at_end=c["checkpoint_at_end"],
        num_workers=_int("num_workers", c["num_workers"], 1),
        use_gpu=c["use_gpu"],
        resources_per_worker=dict(res) if res is not None else None,
        precision=_choice("precision", c["precision"], ("fp32", "bf16")),
        eval_batch_size=_int("eval_batch_size", c["eval_batch_size"], 1),
        kind=spec.kind,
    )


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


_SCALING_KEYS = ("num_workers", "use_gpu", "resources_per_worker")


def validate_space(param_space: Mapping[str, Any]) -> TrainConfig:
    """Check a Tune ``param_space`` whose values may be search domains; return the config made
    of the first candidate of every loop key (what the launcher sizes its resources from).

    Checks every key's name, and every fixed or categorical value (each on its own, for each
    candidate optimizer that takes it). The scaling keys (``num_workers``, ``use_gpu``,
    ``resources_per_worker``) must be fixed: Tune reserves resources before it samples a config.
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
            elif "." in key:
                name, _, hparam = key.partition(".")
                if name in optimizers:
                    validate({**base, "optimizer": name, hparam: value})
            else:
                for name in optimizers:
                    if key in _spec(name).hparams:
                        validate({**base, "optimizer": name, key: value})
    return validate(base)
