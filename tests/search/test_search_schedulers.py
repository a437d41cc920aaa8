"""raytune_opt.search.schedulers without a Ray run: the seeded PBT/PB2 explore, the state's ride.

(The end-to-end checks — PBT/PB2 cloning after ``Tuner.restore``, two seeded synchronous PBT runs
mutating alike — are in test_tune_runs.)
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from ray.tune.experiment import Trial

from raytune_opt.search import SearchSpace, make_tune_config
from raytune_opt.search._searcher import PresetGenerator
from raytune_opt.search.schedulers import SeededPB2, SeededPBT, SeededStreams

FLAT = {
    "opt": "a",
    "lr": {"loguniform": [1e-4, 1.0]},
    "mom": {"uniform": [0.0, 1.0]},
    "k": {"choice": [1, 2, 3, 4]},
}

KW = {"metric": "loss", "mode": "min", "num_samples": 4, "max_t": 8}


def stub(config: dict, status: str = Trial.PENDING) -> Trial:
    trial = Trial("trainable", config=dict(config), stub=True)
    trial.set_status(status)
    return trial


def explore_sequence(seed: int | None, n: int = 12) -> list:
    """``n`` explore steps of the ``pbt`` strategy's scheduler, each from the previous result."""
    cfg = make_tune_config(
        "pbt", SearchSpace(FLAT), metric="loss", mode="min", num_samples=4, max_t=8, seed=seed
    )
    sched = cfg.scheduler
    donor = stub({"opt": "a", "lr": 1e-2, "mom": 0.5, "k": 2})
    me = stub(donor.config)
    out = []
    for _ in range(n):
        config, operations = sched._get_new_config(me, donor)
        out.append((config, operations))
        donor.set_config(config)
    return out


def test_pbt_explore_is_reproducible_from_the_seed_and_leaves_global_streams_alone():
    py_state, np_state = random.getstate(), np.random.get_state()
    a, b, c = explore_sequence(0), explore_sequence(0), explore_sequence(1)
    assert a == b and a != c
    assert {op for _, ops in a for op in ops.values()} >= {"resample", "* 0.8", "* 1.2"}  # both kinds
    assert random.getstate() == py_state
    assert all(np.array_equal(x, y) for x, y in zip(np.random.get_state(), np_state, strict=True))


def test_unseeded_pbt_draws_from_the_global_streams_as_ray_does():
    random.seed(5)
    np.random.seed(5)
    a = explore_sequence(None)
    random.seed(5)
    np.random.seed(5)
    assert explore_sequence(None) == a


def test_seeded_streams_are_reentrant():
    streams = SeededStreams(3)
    with streams.active():
        x = random.random()
        with streams.active():  # a nested hook keeps drawing from the same stream
            y = random.random()
    ref = random.Random(3)
    assert (x, y) == (ref.random(), ref.random())


@pytest.mark.parametrize(
    "strategy, cls, searcher", [("pbt", SeededPBT, PresetGenerator), ("pb2", SeededPB2, PresetGenerator)]
)
def test_population_schedulers_ride_with_their_searcher(strategy, cls, searcher):
    cfg = make_tune_config(
        strategy, SearchSpace(FLAT), metric="loss", mode="min", num_samples=4, max_t=8, seed=0
    )
    assert isinstance(cfg.scheduler, cls) and isinstance(cfg.search_alg, searcher)
    assert cfg.search_alg.companion is cfg.scheduler
    state = cfg.search_alg.get_state()
    assert "companion" not in state and state["__companion_scheduler_state__"]["trials"] == {}
