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
    fsdp = validate({**OK, "strategy": "fsdp"})
    assert fsdp.strategy == "fsdp" and fsdp.distributed  # under TorchTrainer (a process group) even alone


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
        ({"strategy": "zero3"}, r"strategy = 'zero3' is not allowed: expected one of 'ddp' or 'fsdp'"),
        (
            {"strategy": "fsdp", "optimizer": "lbfgs", "lr": None, "weight_decay": None},
            r"strategy = 'fsdp' is not allowed: expected 'ddp' with the second-order optimizer 'lbfgs'.*"
            r"step shards: (?=.*sgd)(?=.*nesterov)(?=.*lion)(?=.*adamw)",
        ),
        (
            {
                "strategy": "fsdp",
                "task": "glm-logistic",
                "optimizer": "irls",
                "lr": None,
                "weight_decay": None,
            },
            "second-order optimizer 'irls'",
        ),
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
    with pytest.raises(ConfigError, match="strategy = .* a fixed value"):
        validate_space({**space, "strategy": tune.choice(["ddp", "fsdp"])})
    with pytest.raises(ConfigError, match="second-order optimizer 'newton'"):
        validate_space({**space, "strategy": "fsdp", "optimizer": tune.choice(["sgd", "newton"])})
    with pytest.raises(ConfigError, match="betas"):
        validate_space({**space, "optimizer": "sgd", "betas": (0.9, 0.99)})


def test_optimizer_aware_keys_fold_into_the_chosen_optimizers_hparams():
    """``SearchSpace.for_optimizers`` names hyperparameters ``<optimizer>.<hparam>``: the chosen one's
    become flat hyperparameters, the other optimizers' (inactive branches) are dropped."""
    from raytune_opt.train.config import resolve_optimizer_keys

    config = {
        "task": "digits-mlp",
        "optimizer": "lion",
        "lion.lr": 3e-4,
        "adamw.lr": 1e-3,
        "adamw.weight_decay": 0.1,
    }
    assert resolve_optimizer_keys(config) == {"task": "digits-mlp", "optimizer": "lion", "lr": 3e-4}
    assert validate(config).hparams == {"lr": 3e-4}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"lion.lrr": 1e-3}, "did you mean 'lr'"),
        ({"adamw.x": 1.0}, "adamw hyperparameter = 'x' is not known"),
        ({"foo.lr": 1.0}, "'foo.lr' is not known"),
        ({"lion.lr": 1e-3, "lr": 1e-2}, "either 'lion.lr' or 'lr'"),
    ],
)
def test_bad_optimizer_aware_keys_are_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message):
        validate({"task": "digits-mlp", "optimizer": "lion", **extra})


def test_validate_space_checks_optimizer_aware_values():
    from raytune_opt.search import SearchSpace

    space = SearchSpace.for_optimizers(["adamw", "lion"], task="digits-mlp").to_tune()
    assert validate_space(space).task == "digits-mlp"
    with pytest.raises(ConfigError, match="betas"):
        validate_space({**space, "lion.betas": tune.choice([(0.9, 1.5)])})
