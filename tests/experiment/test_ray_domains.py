"""Ray Tune's domains in the Python API are converted to the SearchSpace syntax before validation."""

from __future__ import annotations

import pytest
from ray import tune

from raytune_opt import Experiment
from raytune_opt.errors import ConfigError
from raytune_opt.experiment.ray_domains import from_tune_domains
from raytune_opt.search import Choice, Float, Int


def test_tune_domains_become_the_dict_syntax() -> None:
    space = {
        "lr": tune.loguniform(1e-4, 1e-1),
        "momentum": tune.uniform(0.8, 0.99),
        "batch_size": tune.choice([64, 128]),
        "depth": tune.randint(1, 4),
        "width": tune.lograndint(8, 65),
        "seed": tune.grid_search([0, 1]),
        "epochs": 3,
    }
    assert from_tune_domains(space) == {
        "lr": {"loguniform": [1e-4, 1e-1]},
        "momentum": {"uniform": [0.8, 0.99]},
        "batch_size": {"choice": [64, 128]},
        "depth": {"int": [1, 3]},  # Tune's randint excludes its upper bound
        "width": {"int": [8, 64], "log": True},
        "seed": {"grid": [0, 1]},
        "epochs": 3,
    }


def test_an_experiment_takes_tune_domains() -> None:
    exp = Experiment(
        name="tune-domains",
        task="digits-mlp",
        search={
            "strategy": "random",
            "space": {"lr": tune.loguniform(1e-4, 1e-1), "batch_size": tune.choice([64, 128])},
        },
    ).check()
    params = {p.name: p.domain for p in exp.plan().space}
    assert params == {"lr": Float(1e-4, 1e-1, log=True), "batch_size": Choice((64, 128))}
    assert exp.to_dict()["search"]["space"]["lr"] == {"loguniform": [1e-4, 1e-1]}  # stored as YAML would be
    again = Experiment.from_dict(exp.to_dict())
    assert {p.name: p.domain for p in again.plan().space} == params
    assert isinstance(Int(1, 3).low, int)


def test_a_domain_without_a_dict_form_is_refused() -> None:
    for name, dom in (("lr", tune.quniform(0, 1, 0.1)), ("w", tune.randn(0, 1))):
        raw = {"name": "q", "task": "digits-mlp", "search": {"strategy": "random", "space": {name: dom}}}
        with pytest.raises(ConfigError, match=rf"search\.space\.{name} = 'a tune Float domain.*no quantised"):
            Experiment.from_dict(raw)
