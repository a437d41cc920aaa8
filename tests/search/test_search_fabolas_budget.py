"""Fabolas' cost budget, its moves up in data fraction, and its recommendation (issue 20, item 1).

A budget in full-data-equivalents (``cost_budget``: Σ data fraction of the trials suggested) ends
the search with ``Searcher.FINISHED`` after the incumbent's evaluation on all of the data; on a
problem whose small fractions are biased (they prefer a ten times larger learning rate) and noisy,
the model-guided proposals go above the smallest fractions; the recommendation is never worse
than a configuration evaluated at ``s = 1``; the report shows the fraction histogram. The last
test is a real ``Tuner`` run.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from ray import tune
from ray.tune.search import Searcher
from synthetic import objective, space, trainable

from raytune_opt import report
from raytune_opt.errors import ConfigError
from raytune_opt.search import FabolasSearcher, make_tune_config


def biased(config: dict, rng: np.random.Generator) -> float:
    """``f(x)`` at ``s = 1``; below, a bias ``(1 − s)² (0.3 + shift(lr))`` under which the best lr is
    1e-1 instead of 1e-2, and noise of standard deviation ``0.05 √((1 − s) / s)``."""
    s = config["data_fraction"]
    lr = math.log10(config["lr"])
    shift = (lr + 1) ** 2 / 4 - (lr + 2) ** 2 / 4
    return objective(config) + (1 - s) ** 2 * (0.3 + shift) + 0.05 * math.sqrt((1 - s) / s) * rng.normal()


def run_to_the_end(f: FabolasSearcher, value, limit: int = 200) -> list[dict]:
    """Suggest and complete one trial at a time until the searcher says FINISHED."""
    f.set_search_properties("loss", "min", {})
    rng = np.random.default_rng(1)
    configs = []
    for i in range(limit):
        c = f.suggest(f"t{i}")
        if c == Searcher.FINISHED:
            return configs
        assert isinstance(c, dict), c
        f.on_trial_complete(f"t{i}", {"loss": value(c, rng), "cost": c["data_fraction"]})
        configs.append(c)
    raise AssertionError(f"no FINISHED after {limit} trials")


def test_the_cost_budget_ends_the_search_after_the_incumbent_is_evaluated_on_all_data():
    f = FabolasSearcher(space(), seed=0, cost_attr="cost", cost_budget=2.25, n_initial=4, n_candidates=32)
    configs = run_to_the_end(f, biased)
    fractions = [c["data_fraction"] for c in configs]
    assert sum(fractions) == pytest.approx(f.spent) and f.spent <= 2.25 + 1e-9
    assert f.finished and f.phase == "done" and f.suggest("after") == Searcher.FINISHED
    # the last trial evaluates the incumbent on all of the data (unless it already was)
    full = [(c, i) for i, c in enumerate(configs) if c["data_fraction"] == 1.0]
    assert full, "nothing was evaluated at s = 1"
    if f.recommended:
        assert f.recommended == [f"t{len(configs) - 1}"] and fractions[-1] == 1.0
    # the recommendation: the lowest loss observed at s = 1, so no configuration evaluated there is better
    rec = f.recommend()
    losses = {i: o[2] for i, o in enumerate(f.observations) if o[1]["data_fraction"] == 1.0}
    best = min(losses, key=losses.get)
    assert rec == {k: v for k, v in configs[best].items() if k != "data_fraction"}
    assert f.incumbent == rec


def test_proposals_move_up_in_fraction_where_small_fractions_are_biased_and_noisy():
    f = FabolasSearcher(space(), seed=0, cost_attr="cost", cost_budget=3.0, n_initial=6, n_candidates=48)
    configs = run_to_the_end(f, biased)
    guided = [c["data_fraction"] for c in configs[6:]]
    if f.recommended:
        guided = guided[:-1]  # the incumbent's evaluation at s = 1 is not a proposal
    histogram = collections.Counter(guided)
    assert len(histogram) > 1 and max(guided) >= 0.25, histogram  # not all at s_min
    assert histogram[f.s_min] >= 1  # and the cheap fraction is still used
    assert f.fallback_count == 0
    # no worse than any configuration evaluated at s = 1; close to the optimum (0) of f
    rec = f.recommend()
    at_full = [objective(o[1]) for o in f.observations if o[1]["data_fraction"] == 1.0]
    assert objective(rec) <= min(at_full) + 1e-12
    assert objective(rec) <= 0.5


def test_the_cost_budget_is_checked():
    for bad in (1.0, 0, True, "3"):
        with pytest.raises(ConfigError, match="fabolas.cost_budget"):
            FabolasSearcher(space(), cost_budget=bad)
    cfg = make_tune_config("fabolas", space(), metric="loss", mode="min", num_samples=50, cost_budget=4)
    assert cfg.search_alg.cost_budget == 4.0


def test_a_tuner_run_stops_at_its_cost_budget_and_reports_the_fraction_histogram(ray_local, tmp_path):
    cfg = make_tune_config(
        "fabolas",
        space(),
        metric="loss",
        mode="min",
        num_samples=60,
        seed=0,
        max_concurrent=1,
        trainable=trainable,
        cost_attr="cost",
        cost_budget=1.5,
        n_initial=4,
        n_candidates=32,
        reuse_actors=True,
    )
    grid = tune.Tuner(
        trainable,  # one report: loss = f(x) + 0.3 (1 − s)² + 0.5, cost = s
        tune_config=cfg,
        param_space={"max_t": 1},
        run_config=tune.RunConfig(name="fabolas", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert grid.num_errors == 0 and len(grid) < 60  # the budget, not num_samples, ended it
    fractions = [r.config["data_fraction"] for r in grid]
    assert sum(fractions) <= 1.5 + 1e-9 and 1.0 in fractions
    files = report.write(tmp_path / "fabolas", metric="loss", mode="min")
    assert files["fractions.png"].stat().st_size > 1000
    text = files["report.md"].read_text()
    assert "## Data fractions" in text and "![data fractions](fractions.png)" in text
    counts = collections.Counter(round(s, 6) for s in fractions)
    for s, n in counts.items():
        assert f"| {s:.4g} | {n} |" in text


def test_a_single_trial_is_a_full_data_one():
    f = FabolasSearcher(space(), seed=0, num_samples=1)
    f.set_search_properties("loss", "min", {})
    c = f.suggest("only")
    assert c["data_fraction"] == 1.0 and f.recommended == ["only"]
    f.on_trial_complete("only", {"loss": objective(c)})
    assert f.suggest("next") == Searcher.FINISHED
    assert f.recommend() == {k: v for k, v in c.items() if k != "data_fraction"}
