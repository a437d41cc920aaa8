"""make_tune_config and available_strategies(): what each strategy builds, its checks, and reproducibility."""

from __future__ import annotations

import pytest
from ray import tune
from synthetic import SPACE, space, trainable

from raytune_opt.errors import ConfigError
from raytune_opt.search import available_strategies, capabilities, declare, make_tune_config
from raytune_opt.search._searcher import PresetGenerator

NAMES = [
    "grid",
    "random",
    "sobol",
    "halton",
    "bo",
    "tpe",
    "optuna-tpe",
    "optuna-gp",
    "optuna-cmaes",
    "optuna-nsga2",
    "hyperband",
    "asha",
    "bohb",
    "fabolas",
    "pbt",
    "pb2",
]


def build(strategy, seed=0, **kw):
    kw.setdefault("max_t", 9)
    return make_tune_config(strategy, space(), metric="loss", mode="min", num_samples=6, seed=seed, **kw)


def first_suggestions(cfg, n=3):
    alg = cfg.search_alg
    if isinstance(alg, PresetGenerator):
        return alg.presets[:n]
    alg.set_search_properties("loss", "min", {})
    return [alg.suggest(f"t{i}") for i in range(n)]


def test_strategies_lists_every_name_with_a_description():
    listed = available_strategies()
    assert list(listed) == NAMES
    assert all(isinstance(d, str) and len(d) > 20 for d in listed.values())


@pytest.mark.parametrize("strategy", NAMES)
def test_same_seed_same_first_suggestions(strategy):
    a = first_suggestions(build(strategy, seed=3))
    b = first_suggestions(build(strategy, seed=3))
    assert a == b
    sp = space()
    for c in a:
        sp.validate({k: v for k, v in c.items() if k in sp.params})
    if strategy != "grid":
        assert first_suggestions(build(strategy, seed=4)) != a


def test_schedulers_and_options_reach_ray():
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, PopulationBasedTraining
    from ray.tune.schedulers.hb_bohb import HyperBandForBOHB
    from ray.tune.schedulers.pb2 import PB2

    asha = build("asha", grace_period=2, reduction_factor=2).scheduler
    assert isinstance(asha, ASHAScheduler) and asha._max_t == 9 and asha._reduction_factor == 2
    assert isinstance(build("hyperband").scheduler, HyperBandScheduler)
    assert isinstance(build("bohb").scheduler, HyperBandForBOHB)
    pbt = build("pbt", perturbation_interval=3).scheduler
    assert isinstance(pbt, PopulationBasedTraining) and pbt._perturbation_interval == 3
    # the parent 'opt' and its conditional children are not mutated, 'lr' is
    assert set(pbt._hyperparam_mutations) == {"lr"}
    pb2 = build("pb2").scheduler
    assert isinstance(pb2, PB2) and set(pb2._hyperparam_bounds) == {"lr"}
    grid = make_tune_config("grid", space(), metric="loss", mode="min", num_samples=2, points=2)
    assert grid.num_samples == 2 * 8
    cfg = build("bo", max_concurrent=2, time_budget_s=60)
    assert cfg.max_concurrent_trials == 2 and cfg.time_budget_s == 60 and cfg.reuse_actors


def test_unknown_strategy_lists_them_with_did_you_mean():
    with pytest.raises(ConfigError, match=r"did you mean 'bohb'.*asha, bo, bohb"):
        build("bohbb")


@pytest.mark.parametrize("strategy", ["bo", "bohb", "fabolas"])
def test_grid_domains_rejected_by_model_based_strategies(strategy):
    with pytest.raises(ConfigError, match="use choice"):
        make_tune_config(
            strategy, {**SPACE, "depth": {"grid": [1, 2]}}, metric="loss", mode="min", num_samples=4, max_t=9
        )


def test_pbt_requires_a_trainable_that_declares_checkpoints():
    def reports_checkpoints(config):  # checkpoints, but does not say so: nothing is read from source
        tune.report({"loss": config["lr"]}, checkpoint=tune.get_checkpoint())

    with pytest.raises(ConfigError, match="not declare checkpoints.*checkpoints=True.*use asha"):
        build("pbt", trainable=reports_checkpoints)
    with pytest.raises(ConfigError, match="declares checkpoints=False"):
        build("pb2", trainable=capabilities(checkpoints=False)(lambda config: None))

    class Plain(tune.Trainable):
        def step(self):
            return {"loss": 1.0}

    class Saves(Plain):
        def save_checkpoint(self, checkpoint_dir):
            return {}

    with pytest.raises(ConfigError, match="Plain declares checkpoints=False"):
        build("pb2", trainable=Plain)  # a Trainable class declares by overriding save_checkpoint
    build("pb2", trainable=Saves)
    build("pbt", trainable=trainable)  # declared in synthetic.py
    build("pbt", trainable=declare(reports_checkpoints, checkpoints=True))
    # ray.tune.with_resources keeps the declaration, of a function and of a class
    build("pbt", trainable=tune.with_resources(trainable, {"CPU": 1}))
    build("pbt", trainable=tune.with_resources(declare(Plain, checkpoints=True), {"CPU": 1}))
    # a class trainable without reset_config is not reused between trials
    assert build("asha", trainable=Plain).reuse_actors is False


def test_fabolas_requires_a_trainable_that_declares_its_data_fraction():
    def full_data(config):
        tune.report({"loss": config["lr"]})

    with pytest.raises(ConfigError, match="does not declare data_fraction.*data_fraction=True.*use bo"):
        build("fabolas", trainable=full_data)
    build("fabolas", trainable=trainable)
    # another fidelity key must be the one declared
    subset = capabilities(data_fraction="subset")(lambda config: None)
    build("fabolas", trainable=subset, fidelity="subset")
    with pytest.raises(ConfigError, match="declares data_fraction='subset'"):
        build("fabolas", trainable=subset)
    with pytest.raises(ConfigError, match=r"capabilities\(data_fraction='subset'\)"):
        build("fabolas", trainable=trainable, fidelity="subset")


def test_capabilities_are_checked_when_declared():
    with pytest.raises(ConfigError, match="capabilities.checkpoints = 'yes'"):
        capabilities(checkpoints="yes")(lambda config: None)
    with pytest.raises(ConfigError, match="trainable"):
        declare(3, checkpoints=True)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mode": "minimum"}, "'min' or 'max'"),
        ({"num_samples": 0}, "num_samples"),
        ({"max_t": None, "strategy": "asha"}, "max_t"),
        ({"grace_period": 10}, "at most max_t"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"pointz": 3, "strategy": "grid"}, "did you mean 'points'"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"bracket_order": "fast", "strategy": "hyperband"}, "bracket_order = 'fast'"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, words):
    args = {"strategy": "random", "metric": "loss", "mode": "min", "num_samples": 4, "max_t": 9}
    args.update(kwargs)
    strategy = args.pop("strategy")
    with pytest.raises(ConfigError, match=words):
        make_tune_config(strategy, space(), **args)


def test_domains_in_param_space_are_refused():
    cfg = build("sobol")
    with pytest.raises(ConfigError, match="constants only"):
        cfg.search_alg.set_search_properties("loss", "min", {"x": tune.uniform(0, 1)})
    assert cfg.search_alg.set_search_properties("loss", "min", {"epochs": 3})
