"""The training loop on Ray Train: one trial from its config, on 1 worker or N (DDP).

    >>> import ray.tune
    >>> from raytune_opt import train
    >>> session = train.run_local({"task": "digits-mlp", "optimizer": "adam", "lr": 1e-2, "epochs": 2})
    >>> [r["epoch"] for r in session.results]
    [1, 2]
    >>> space = {"task": "digits-mlp", "optimizer": "adam", "lr": ray.tune.loguniform(1e-3, 0.1), "epochs": 2}
    >>> tuner = ray.tune.Tuner(train.trainable(space), param_space=space)  # tune_config=..., run_config=...

Config keys: :class:`TrainSettings` (the loop's settings), the task, optimizer and scaling keys
(:data:`DEFAULTS`), plus the optimizer's hyperparameters.
"""

from raytune_opt.train.config import DEFAULTS, TrainConfig, TrainSettings, validate, validate_space
from raytune_opt.train.loop import train_loop
from raytune_opt.train.schedules import SCHEDULES, factor
from raytune_opt.train.session import LocalSession, Session, TrainSession, TuneSession
from raytune_opt.train.trainable import run_local, trainable

__all__ = [
    "DEFAULTS",
    "SCHEDULES",
    "LocalSession",
    "Session",
    "TrainConfig",
    "TrainSession",
    "TrainSettings",
    "TuneSession",
    "factor",
    "run_local",
    "train_loop",
    "trainable",
    "validate",
    "validate_space",
]
