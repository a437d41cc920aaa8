"""Bad names and values are ConfigErrors (with did-you-mean) before any work starts."""

from __future__ import annotations

import pytest
from ray import tune

from raytune_opt.errors import ConfigError
from raytune_opt.train import validate, validate_space

OK = {"task": "digits-mlp", "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01}


def test_valid_config() -> None:
    cfg = validate({**OK, "batch_size": "full", "schedule": "onecycle", "data_fraction": 0.5})
    assert cfg.hparams == {"lr": 1e-3, "weight_decay": 0.01} and cfg.batch_size == "full"
    assert not cfg.distributed and cfg.worker_resources() == {"CPU": 1}
    assert validate({**OK, "num_workers": 2}).distributed


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"task": "digit-mlp"}, "did you mean 'digits-mlp'"),
        ({"optimizer": "adamm"}, "did you mean 'adam"),
        ({"schedule": "cosin"}, "did you mean 'cosine'"),
        ({"lrr": 0.1}, "did you mean 'lr'"),
        ({"momentum": 0.9}, "momentum"),  # not a hyperparameter of adamw
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "all"}, "batch_size"),
        ({"batch_size": 63, "num_workers": 2}, "multiple of num_workers"),
        ({"epochs": 2.5}, "epochs"),
        ({"data_fraction": 0.0}, "data_fraction"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"precision": "fp8"}, "precision"),
        ({"lr": -1.0}, "lr"),
        ({"task_args": {"hiden": 3}}, "did you mean 'hidden'"),
        ({"optimizer": "newton", "num_workers": 2, "lr": 1.0, "weight_decay": None}, "num_workers"),
    ],
)
def test_bad_config(change: dict, match: str) -> None:
    config = {k: v for k, v in {**OK, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=match):
        validate(config)


def test_missing_task() -> None:
    with pytest.raises(ConfigError, match="task"):
        validate({"optimizer": "sgd"})


def test_search_space() -> None:
    space = {
        "task": "digits-mlp",
        "optimizer": tune.choice(["sgd", "adam"]),
        "lr": tune.loguniform(1e-4, 1e-1),
        "batch_size": tune.grid_search([32, "full"]),
        "schedule": tune.choice(["cosine", "constant"]),
    }
    assert validate_space(space).optimizer == "sgd"
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        validate_space({**space, "schedule": tune.choice(["cosine", "cosin"])})
    with pytest.raises(ConfigError, match="num_workers"):
        validate_space({**space, "num_workers": tune.choice([1, 2])})
    with pytest.raises(ConfigError, match="betas"):
        validate_space({**space, "optimizer": "sgd", "betas": (0.9, 0.99)})
