"""Hyperband's brackets as Li et al. 2018 (Algorithm 1) and ASHA's promotion rate, on the real schedulers.

Paper: ``R = max_t``, ``η``, ``s_max = ⌊log_η R⌋``; bracket ``s`` has ``n = ⌈(s_max + 1) η^s / (s + 1)⌉``
trials at ``r = R η^-s``; rung ``i`` runs ``n_i = ⌊n η^-i⌋`` trials to ``r_i = r η^i``, the best ones.
"""

from __future__ import annotations

import random

import pytest
from ray import tune
from ray.tune.experiment import Trial
from synthetic import objective, space, trainable

from raytune_opt.search import make_tune_config
from raytune_opt.search.schedulers import ResumableHyperBand

ETA = 3


def paper_band(R: int, eta: int) -> list[list[tuple[int, int]]]:
    """Per bracket (s = s_max … 0): its rungs' ``(n_i, r_i)``, in integers."""
    s_max = 0
    while eta ** (s_max + 1) <= R:
        s_max += 1
    band = []
    for s in range(s_max, -1, -1):
        n = -(-(s_max + 1) * eta**s // (s + 1))  # ceil
        band.append([(n // eta**i, R * eta**i // eta**s) for i in range(s + 1)])
    return band


class Controller:
    """What the scheduler calls on Tune's controller, as ``TuneController`` does it: ``stop_trial`` of
    a paused trial ends it and tells the scheduler (``on_trial_remove``), ``get_trials``, and the
    search (``search_alg.is_finished()`` once all ``n`` trials are made)."""

    def __init__(self, sched: ResumableHyperBand, n: int) -> None:
        self.sched, self.n, self.trials = sched, n, []
        self.search_alg = self

    def is_finished(self) -> bool:
        return len(self.trials) >= self.n

    def get_trials(self) -> list[Trial]:
        return list(self.trials)

    def stop_trial(self, trial: Trial) -> None:
        trial.set_status(Trial.TERMINATED)
        self.sched.on_trial_remove(self, trial)


def replay(R: int, losses: list[float]) -> tuple[dict[int, list[tuple[int, float]]], ResumableHyperBand]:
    """Tune's loop with one trial at a time (``max_concurrent_trials=1``): a new trial whenever none
    runs or waits to start and the search has more; trial ``j`` reports ``losses[j] + 1/t`` at each
    iteration ``t``. Returns per trial its ``(iteration, loss)`` reports."""
    sched = ResumableHyperBand(max_t=R, reduction_factor=ETA, metric="loss", mode="min")
    ctl = Controller(sched, len(losses))
    it: dict[int, int] = {}
    reports: dict[int, list[tuple[int, float]]] = {}
    while True:
        if not ctl.is_finished() and not any(t.status == Trial.PENDING for t in ctl.trials):
            trial = Trial("trainable", config={"j": len(ctl.trials)}, stub=True)
            ctl.trials.append(trial)
            sched.on_trial_add(ctl, trial)
        trial = sched.choose_trial_to_run(ctl)
        if trial is None:
            break
        trial.set_status(Trial.RUNNING)
        j = trial.config["j"]
        while True:
            it[j] = it.get(j, 0) + 1
            loss = losses[j] + 1 / it[j]
            reports.setdefault(j, []).append((it[j], loss))
            action = sched.on_trial_result(ctl, trial, {"training_iteration": it[j], "loss": loss})
            if action == "PAUSE":
                trial.set_status(Trial.PAUSED)
                break
            if action == "STOP" or it[j] == R:
                trial.set_status(Trial.TERMINATED)
                sched.on_trial_complete(ctl, trial, {"training_iteration": it[j], "loss": loss})
                break
    assert all(t.status == Trial.TERMINATED for t in ctl.trials)
    return reports, sched


@pytest.mark.parametrize("R", [9, 27, 81])
def test_the_scheduler_builds_the_papers_brackets(R):
    sched = ResumableHyperBand(max_t=R, reduction_factor=ETA, metric="loss", mode="min")
    band = paper_band(R, ETA)
    assert sched._s_max_1 == len(band)
    for s, rungs in zip(range(len(band) - 1, -1, -1), band, strict=True):
        assert (sched._get_n0(s), sched._get_r0(s)) == rungs[0]


@pytest.mark.parametrize("R, seed", [(9, 0), (27, 1), (27, 2), (81, 3)])
def test_a_replayed_band_runs_every_rung_as_the_paper_says_and_promotes_the_best(R, seed):
    """One whole band plus a partial bracket (the search ends in it), random known losses: each
    bracket receives its ``n`` trials in order, rung ``i`` holds exactly its ``n_i`` best trials (by
    their loss at ``r_{i-1}``) and each of them reports up to ``r_i``."""
    band = paper_band(R, ETA)
    sizes = [rungs[0][0] for rungs in band]
    extra = 5  # a second band's first bracket, cut short by the end of the search
    rng = random.Random(seed)
    losses = [rng.random() for _ in range(sum(sizes) + extra)]
    reports, _ = replay(R, losses)
    start = 0
    brackets = [(rungs, sizes[k]) for k, rungs in enumerate(band)]
    # ⌊m η^-i⌋ (at least one) of the m trials it got
    brackets.append(([(max(1, extra // ETA**i), r) for i, (_, r) in enumerate(band[0])], extra))
    for rungs, m in brackets:
        members = list(range(start, start + m))
        start += m
        alive = members
        for i, (n_i, r_i) in enumerate(rungs):
            if i:  # the n_i best at the previous milestone, by their loss there
                prev = rungs[i - 1][1]
                at = {j: dict(reports[j])[prev] for j in alive}
                alive = sorted(alive, key=at.get)[:n_i]
            assert len(alive) == n_i
            for j in alive:
                assert dict(reports[j]).get(r_i) is not None, (rungs, i, j)
        last = {j: max(t for t, _ in reports[j]) for j in members}
        assert sorted(j for j in members if last[j] == R) == sorted(alive)
        for j in members:  # nobody trains past the milestone of the rung it was stopped at
            assert last[j] in {r for _, r in rungs}


def test_a_real_tuner_run_with_one_trial_at_a_time_fills_every_bracket(ray_local, tmp_path):
    """max_t = 9, η = 3, 17 trials (one band): s = 2 (9 trials at 1 → 3 at 3 → 1 at 9), s = 1
    (5 at 3 → 1 at 9: Ray's ``⌈5/3⌉`` kept 2), s = 0 (3 at 9), with ``max_concurrent_trials=1``
    (Ray's bracket was halved with the one trial it had received)."""
    cfg = make_tune_config(
        "hyperband", space(), metric="loss", mode="min", num_samples=17, max_t=9, seed=0,
        max_concurrent=1, trainable=trainable,
    )  # fmt: skip
    grid = tune.Tuner(
        trainable,
        tune_config=cfg,
        param_space={"max_t": 9, "checkpoint": True},
        run_config=tune.RunConfig(name="hb", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert len(grid) == 17 and grid.num_errors == 0
    runs = sorted(grid, key=lambda r: int(r.path.rstrip("/").split("/")[-1].split("_")[2]))
    reached = [int(r.metrics_dataframe["training_iteration"].max()) for r in runs]
    losses = [objective(r.config) for r in runs]
    for lo, hi, expected in [(0, 9, [9, 3, 3] + [1] * 6), (9, 14, [9, 3, 3, 3, 3]), (14, 17, [9, 9, 9])]:
        order = sorted(range(lo, hi), key=losses.__getitem__)
        assert [reached[j] for j in order] == expected


def test_asha_promotes_the_top_third_asymptotically_but_more_early_on():
    """Ray's ASHA (Li et al. 2020) promotes a trial reaching rung ``k`` when it is in the top ``1/η``
    of the trials that reached ``k`` *so far*: the first trials at a rung meet few rivals, so early
    rungs promote more than ``1/η`` of their trials (up to 60 % in short runs) while the fraction
    tends to ``1/η`` as trials accumulate. Replayed with i.i.d. losses, trials one after the other."""
    cfg = make_tune_config("asha", space(), metric="loss", mode="min", num_samples=1, max_t=9, seed=0)
    sched = cfg.scheduler
    sched.set_search_properties("loss", "min")
    rng = random.Random(0)
    promoted: list[bool] = []
    for k in range(3000):
        trial = Trial("trainable", config={"k": k}, stub=True)
        sched.on_trial_add(None, trial)
        loss = rng.random()
        d = sched.on_trial_result(None, trial, {"training_iteration": 1, "loss": loss})
        promoted.append(d == "CONTINUE")
        if d == "CONTINUE":  # it trains on (its rung-3 decision is not needed here)
            sched.on_trial_complete(None, trial, {"training_iteration": 1, "loss": loss})

    def frac(a: int, b: int) -> float:
        return sum(promoted[a:b]) / (b - a)

    assert frac(0, 10) > 0.45  # early: far more than a third
    assert abs(frac(0, 3000) - 1 / 3) < 0.03  # asymptotically the top third
    assert abs(frac(1000, 3000) - 1 / 3) < 0.03
