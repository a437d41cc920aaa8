"""raytune_opt.search.schedulers without a Ray run: seeded PBT/PB2 explore, Hyperband state round trip.

(The end-to-end checks — a restored Hyperband run ending as its brackets say, PBT/PB2 cloning
after ``Tuner.restore``, two seeded synchronous PBT runs mutating alike — are in test_tune_runs.)
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from ray.tune.experiment import Trial

from raytune_opt.search import SearchSpace, make_tune_config
from raytune_opt.search._searcher import PresetGenerator
from raytune_opt.search.qmc import SequenceSearcher
from raytune_opt.search.schedulers import (
    ResumableASHA,
    ResumableHyperBand,
    SeededPB2,
    SeededPBT,
    SeededStreams,
)

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


def restored(fresh: tuple, path: str, trials: list[Trial]) -> tuple:
    """What ``Tuner.restore`` does with a ``fresh`` (searcher, scheduler) pair: the searcher's state
    loaded from ``path``, then every trial re-added (the first finished, the others PENDING, with their
    ids), latest first. Returns the searcher, the scheduler and the re-added trials."""
    search, sched = fresh
    search.restore(path)
    again = [stub(t.config, Trial.TERMINATED if t is trials[0] else Trial.PENDING) for t in trials]
    for t, old in zip(again, trials, strict=True):
        t.trial_id = old.trial_id
    for t in reversed(again):
        sched.on_trial_add(None, t)
    return search, sched, again


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


def hyperband(bracket_order: str = "paper") -> tuple[SequenceSearcher, ResumableHyperBand]:
    cfg = make_tune_config(
        "hyperband",
        SearchSpace(FLAT),
        **{**KW, "num_samples": 9, "max_t": 9},
        seed=0,
        bracket_order=bracket_order,
    )
    assert cfg.search_alg.companion is cfg.scheduler
    cfg.scheduler.set_search_properties("loss", "min")  # as tune.run does
    return cfg.search_alg, cfg.scheduler


def membership(sched: ResumableHyperBand) -> list:
    """Per bracket: its counters and its trials (by id) with their last results."""
    out = []
    for band in sched._hyperbands:
        for b in band:
            out.append(
                (
                    b._n,
                    b._cumul_r,
                    b._halves,
                    [t.trial_id for t in b._all_trials],
                    {t.trial_id: r for t, r in b._live_trials.items()},
                )
            )
    return out


@pytest.mark.parametrize("order, first", [("paper", (9, 1)), ("ray", (3, 9))])
def test_hyperband_fills_its_brackets_in_the_chosen_order(order, first):
    """max_t = 9, η = 3: the paper starts with s = 2 (9 trials from 1 iteration), Ray with s = 0
    (3 trials trained to 9: random search)."""
    _, sched = hyperband(order)
    sched.on_trial_add(None, stub({"lr": 0.1}))
    bracket = sched._state["bracket"]
    assert (bracket._n, bracket._cumul_r) == first


def test_hyperband_brackets_survive_a_save_and_restore_through_the_searcher(tmp_path):
    search, sched = hyperband("ray")  # Ray's order: three brackets of different sizes for 8 trials
    trials = [stub({"lr": 0.1 * (i + 1)}) for i in range(8)]
    for t in trials:
        sched.on_trial_add(None, t)
    # first bracket (s = 0, 3 trials): the first trial finished; second bracket (s = 1, 5 trials,
    # milestone 3): trials 3 and 4 wait at the milestone, trial 5 is at iteration 1
    for t, it in [(trials[0], 9), (trials[3], 3), (trials[4], 3), (trials[5], 1)]:
        for i in range(1, it + 1):
            decision = sched.on_trial_result(None, t, {"training_iteration": i, "loss": t.config["lr"]})
    assert decision == "CONTINUE"
    sched._trial_info[trials[0]][0].cleanup_trial(trials[0])  # what on_trial_complete does
    trials[0].set_status(Trial.TERMINATED)
    for t in trials[3:5]:
        t.set_status(Trial.PAUSED)
    search.save(str(tmp_path / "searcher.pkl"))
    saved = membership(sched)

    # Tuner.restore: the searcher and its companion from tuner.pkl (fresh), the state loaded, then
    # Ray re-adds every trial — unfinished ones PENDING, latest result first
    _, sched2, again = restored(hyperband("ray"), str(tmp_path / "searcher.pkl"), trials)
    assert membership(sched2) == saved
    assert [t.status for t in again[3:6]] == [Trial.PAUSED, Trial.PAUSED, Trial.PENDING]  # wait at 3
    new = stub({"lr": 0.05})
    sched2.on_trial_add(None, new)  # the 9th trial opens the third bracket (s = 2), as it would have
    assert sched2._trial_info[new][0] is sched2._hyperbands[0][2] and membership(sched2)[:2] == saved


def test_hyperband_never_puts_a_finished_trial_it_does_not_know_into_a_bracket():
    _, sched = hyperband()
    done = stub({"lr": 0.1}, Trial.TERMINATED)
    sched.on_trial_add(None, done)  # a restore without saved state (e.g. a run older than this)
    assert done not in sched._trial_info and sched._state["bracket"] is None


def asha() -> tuple[SequenceSearcher, ResumableASHA]:
    cfg = make_tune_config("asha", SearchSpace(FLAT), **{**KW, "max_t": 9}, seed=0, reduction_factor=3)
    assert isinstance(cfg.scheduler, ResumableASHA) and cfg.search_alg.companion is cfg.scheduler
    cfg.scheduler.set_search_properties("loss", "min")  # as tune.run does
    return cfg.search_alg, cfg.scheduler


def test_asha_rungs_survive_a_save_and_restore_through_the_searcher(tmp_path):
    """max_t = 9, η = 3, grace 1: rungs at 1 and 3 (9 stops). Three trials report before the save,
    one of them finished; after the restore a new trial meets the pre-restore values at each rung
    (Ray's restored ASHA would let it pass: its rungs were empty) and a restored live trial is not
    recorded again at a rung it had reached."""
    search, sched = asha()
    trials = [stub({"lr": 0.1 * (i + 1)}) for i in range(3)]
    for t in trials:
        sched.on_trial_add(None, t)
    losses = {0: [0.5, 0.4, 0.3], 1: [0.45, 0.35, 0.25], 2: [0.2]}  # trial 2: iteration 1 only
    for i, history in losses.items():
        for it, loss in enumerate(history, 1):
            assert (
                sched.on_trial_result(None, trials[i], {"training_iteration": it, "loss": loss}) == "CONTINUE"
            )
    sched.on_trial_complete(None, trials[0], {"training_iteration": 3, "loss": 0.3})
    trials[0].set_status(Trial.TERMINATED)
    saved = sched.rungs()
    assert saved == [
        {
            9: {},
            3: {trials[0].trial_id: -0.3, trials[1].trial_id: -0.25},
            1: {trials[0].trial_id: -0.5, trials[1].trial_id: -0.45, trials[2].trial_id: -0.2},
        }
    ]
    search.save(str(tmp_path / "searcher.pkl"))

    # Tuner.restore: searcher and scheduler from tuner.pkl (fresh), the state loaded, then Ray
    # re-adds every trial, finished ones included, latest result first
    _, sched2, again = restored(asha(), str(tmp_path / "searcher.pkl"), trials)
    assert sched2.rungs() == saved and sched2._num_stopped == sched._num_stopped
    assert set(sched2._trial_info) == {trials[1].trial_id, trials[2].trial_id}  # the live ones
    # trial 1 resumed from an older checkpoint re-reports iteration 3: recorded once, unchanged
    assert sched2.on_trial_result(None, again[1], {"training_iteration": 3, "loss": 0.1}) == "CONTINUE"
    assert sched2.rungs() == saved
    new = stub({"lr": 0.05})
    sched2.on_trial_add(None, new)
    # at rung 1 the cutoff is the 2/3-quantile of (-0.5, -0.45, -0.2): -0.37; -0.55 is below it
    assert sched2.on_trial_result(None, new, {"training_iteration": 1, "loss": 0.55}) == "STOP"
    fresh_search, fresh = asha()  # Ray's restore: empty rungs, the same trial passes
    fresh.on_trial_add(None, new)
    assert fresh.on_trial_result(None, new, {"training_iteration": 1, "loss": 0.55}) == "CONTINUE"


def test_asha_refuses_rungs_saved_by_another_configuration():
    _, sched = asha()
    state = sched.scheduler_state()
    cfg = make_tune_config("asha", SearchSpace(FLAT), **{**KW, "max_t": 8}, seed=0, reduction_factor=2)
    with pytest.raises(ValueError, match="grace_period, max_t"):
        cfg.scheduler.load_scheduler_state(state)
