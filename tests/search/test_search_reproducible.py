"""A seed makes a sequential run (``max_concurrent_trials=1``) reproducible bit for bit, per strategy.

Two identical tiny ``Tuner`` runs of each strategy on the synthetic trainable (its losses a known
function of the configuration and iteration): the same configurations, in the same order, with the
same reported results. (Under concurrency a seed fixes the suggestions' random streams only: which
results a searcher or scheduler has seen when it decides depends on the order trials finish in.)

PBT and PB2 run their population one member at a time (their scheduler's ``max_concurrent``: the
members wait ``PAUSED``; raytune_opt.search.schedulers, "Concurrency"), each pausing at each sync time
for the next one, and their explore draws from the seeded streams: the same exploits, mutations and
results, in the same order.
"""

from __future__ import annotations

import pytest
from ray import tune
from synthetic import space, trainable

from raytune_opt import trial_logs
from raytune_opt.search import SearchSpace, available_strategies, make_tune_config

FLAT = {"opt": "a", "lr": {"loguniform": [1e-4, 1.0]}, "mom": {"uniform": [0.0, 1.0]}}
OPTIONS = {
    "grid": {"points": 2},
    "fabolas": {"cost_attr": "cost", "n_initial": 3},
    "pbt": {"perturbation_interval": 1, "quantile_fraction": 0.5, "synch": True},
    "pb2": {"perturbation_interval": 1, "quantile_fraction": 0.5, "synch": True},
}


def run(strategy: str, name: str, tmp_path) -> list:
    population = strategy in ("pbt", "pb2")
    cfg = make_tune_config(
        strategy,
        SearchSpace(FLAT) if population or strategy == "grid" else space(),
        metric="loss",
        mode="min",
        num_samples=1 if strategy == "grid" else 4,
        max_t=3,
        seed=0,
        max_concurrent=1,
        trainable=trainable,
        **OPTIONS.get(strategy, {}),
    )
    grid = tune.Tuner(
        trainable,
        tune_config=cfg,
        param_space={"max_t": 3, "checkpoint": population or strategy in ("hyperband", "bohb")},
        # the project's loggers: Ray's drop a paused trial's reports made since the last upload, so
        # which rows a PBT trial's progress.csv holds would depend on upload timing (trial_logs)
        run_config=tune.RunConfig(
            name=name, storage_path=str(tmp_path), verbose=0, callbacks=trial_logs.loggers()
        ),
    ).fit()
    assert grid.num_errors == 0
    out = []
    for r in sorted(grid, key=lambda r: int(r.path.rstrip("/").split("/")[-1].split("_")[2])):
        df = r.metrics_dataframe
        searched = {k: v for k, v in r.config.items() if k in ("opt", "lr", "mom", "width", "data_fraction")}
        out.append((searched, list(df["training_iteration"]), list(df["loss"])))
    return out


@pytest.mark.parametrize("strategy", list(available_strategies()))
def test_a_seeded_sequential_run_is_reproducible(strategy, ray_local, tmp_path):
    first = run(strategy, "a", tmp_path)
    assert first and first == run(strategy, "b", tmp_path)
