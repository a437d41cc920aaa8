"""Optuna's samplers as strategies (``optuna-tpe``, ``optuna-gp``, ``optuna-cmaes``, ``optuna-nsga2``)
through Ray's ``OptunaSearch``: the space's conversion (conditional parameters, bounds), real Tuner
runs, the concurrency cap, and the error without optuna. (Their seeded sequential runs are
reproducible: tests/search/test_search_reproducible.py runs every strategy.)"""

from __future__ import annotations

import sys

import optuna
import pytest
from ray import tune
from synthetic import SPACE, objective, space, trainable

from raytune_opt.errors import ConfigError
from raytune_opt.search import SearchSpace, available_strategies, make_tune_config
from raytune_opt.search.optuna_samplers import SAMPLERS, OptunaSpace

NAMES = sorted(SAMPLERS)
#: the conditional space, a log range reaching the report's bounds, a log-int and a fixed value
EDGES = {
    **SPACE,
    "lr": {"loguniform": [1e-05, 1.0]},
    "width": {"int": [1, 32], "log": True, "when": {"opt": "b"}},
    "max_t": 2,
}


def test_every_sampler_is_a_strategy_with_a_description():
    strategies = available_strategies()
    for name in NAMES:
        assert name in strategies and "OptunaSearch" in strategies[name]


def test_the_define_by_run_space_suggests_only_active_parameters_inside_their_bounds():
    """Optuna's own study over :class:`OptunaSpace` (no Ray): every suggestion is a valid configuration
    of the space — the conditional parameter only under its parent's value, numbers in their bounds."""
    for spec in (SearchSpace(EDGES), SearchSpace.for_optimizers(["sgd", "adam"])):
        define = OptunaSpace(spec)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
        branches = set()
        for _ in range(12):
            t = study.ask()
            constants = define(t)
            config = define.to_config({**t.params, **constants})
            spec.validate(config)  # raises on an inactive, missing or out-of-range parameter
            branches.add(config.get("opt", config.get("optimizer")))
            study.tell(t, float(len(t.params)))
        assert len(branches) == 2  # both branches of the condition were visited


@pytest.mark.parametrize("strategy", NAMES)
def test_a_real_tuner_run_respects_the_space(strategy, ray_local, tmp_path):
    options = {"population_size": 4} if strategy == "optuna-nsga2" else {"n_startup_trials": 3}
    spec = SearchSpace(EDGES)
    cfg = make_tune_config(
        strategy, spec, metric="loss", mode="min", num_samples=6, seed=1, max_concurrent=2, **options
    )
    assert cfg.max_concurrent_trials == 2
    # OptunaSearch keeps no cap itself: Tune wraps it in a ConcurrencyLimiter of max_concurrent_trials
    assert cfg.search_alg.set_max_concurrency(2) is False
    grid = tune.Tuner(
        trainable,
        tune_config=cfg,
        run_config=tune.RunConfig(name=strategy, storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert len(grid) == 6 and grid.num_errors == 0
    for r in grid:
        config = {k: v for k, v in r.config.items() if k in spec.params}
        spec.validate(config)
        assert r.metrics["loss"] == pytest.approx(objective(config) + 0.5 / 2)


def test_a_seeded_sampler_repeats_its_suggestions():
    """The experiment's seed reaches the sampler: two searchers with the same seed suggest the same
    configurations given the same results (no Ray)."""
    for strategy in NAMES:
        runs = []
        for _ in range(2):
            alg = make_tune_config(
                strategy, space(), metric="loss", mode="min", num_samples=8, seed=5
            ).search_alg
            configs = []
            for i in range(8):
                c = alg.suggest(f"t{i}")
                alg.on_trial_complete(f"t{i}", {"loss": objective(c), "training_iteration": 1})
                configs.append(c)
            runs.append(configs)
        assert runs[0] == runs[1], strategy


def test_without_optuna_a_config_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what `import optuna` meets when it is absent
    with pytest.raises(ConfigError, match=r"pip install optuna"):
        make_tune_config("optuna-tpe", space(), metric="loss", mode="min", num_samples=2)
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "cmaes", None)
    with pytest.raises(ConfigError, match=r"pip install cmaes"):
        make_tune_config("optuna-cmaes", space(), metric="loss", mode="min", num_samples=2)


def test_options_reach_the_sampler_and_unknown_ones_are_refused():
    cfg = make_tune_config(
        "optuna-tpe", space(), metric="loss", mode="min", num_samples=2, n_startup_trials=7
    )
    sampler = cfg.search_alg.inner._sampler
    assert isinstance(sampler, optuna.samplers.TPESampler) and sampler._n_startup_trials == 7
    assert sampler._multivariate and sampler._group  # the space is conditional: one model per branch
    with pytest.raises(ConfigError, match="population_size"):
        make_tune_config("optuna-tpe", space(), metric="loss", mode="min", num_samples=2, population_size=4)
