"""Every strategy end-to-end on the real local Ray, interrupted and resumed with ``Tuner.restore``.

One run per strategy does it all, to keep Ray runs few: the experiment stops after a few
trials (:class:`synthetic.InterruptOnce`, as by Ctrl+C), ``Tuner.restore`` finishes it, and the
finished run must hold the whole budget, configurations with only their active parameters, and
a configuration near the known optimum of :func:`synthetic.objective`. PBT/PB2 must show clones
that continue from a donor's checkpoint — after the restore too — (PBT: with a mutated ``lr``);
the restored Hyperband run must end exactly as Hyperband's brackets say; Fabolas must start on
small data fractions and evaluate its recommendation on all of the data.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from ray import tune
from synthetic import SPACE, InterruptOnce, objective, space, trainable

from raytune_opt import trial_logs
from raytune_opt.search import SearchSpace, make_tune_config

# strategy → (num_samples, max_t, stop after n trials, extra options, checkpointing, tolerance on f)
CASES = {
    "grid": (1, 1, 6, {"points": 3}, False, 0.1),
    "random": (12, 2, 5, {}, False, 0.25),
    "sobol": (12, 2, 5, {}, False, 0.25),
    "halton": (12, 2, 5, {}, False, 0.25),
    "bo": (12, 1, 6, {}, False, 0.1),
    "tpe": (12, 2, 5, {}, False, 0.25),
    # interrupted while the first trials of its bracket wait at their first milestone
    "hyperband": (9, 9, 6, {}, True, 0.25),
    "asha": (12, 9, 5, {}, False, 0.25),
    "bohb": (12, 9, 5, {}, True, 0.25),
    "fabolas": (12, 1, 6, {"cost_attr": "cost", "n_initial": 6}, False, 0.25),
    # the bottom half is exploited (asynchronous: a trial is cloned when it is in the bottom quantile at
    # its perturbation step; with the default quarter of 4 trials a run sometimes cloned none). The
    # synchronous mode across a restore has its own tests: test_search_pbt_synch_restore.py
    "pbt": (4, 8, 3, {"perturbation_interval": 2, "quantile_fraction": 0.5}, True, 0.3),
    "pb2": (4, 8, 3, {"perturbation_interval": 2, "quantile_fraction": 0.5}, True, 0.3),
}
#: searcher-driven strategies also get diverging trials (lr > 0.3 reports NaN)
DIVERGING = {"random", "sobol", "bo", "tpe", "fabolas"}
#: PBT and PB2 mutate unconditional leaves only: they run on the space with ``opt`` fixed
POPULATION = {"pbt", "pb2"}
FLAT = {"opt": "a", "lr": SPACE["lr"], "mom": {"uniform": [0.0, 1.0]}}


def run_interrupted_then_restored(strategy: str, tmp_path) -> tuple[tune.ResultGrid, tune.ResultGrid, int]:
    num_samples, max_t, stop_after, options, checkpoint, _ = CASES[strategy]
    cfg = make_tune_config(
        strategy,
        space() if strategy not in POPULATION else SearchSpace(FLAT),
        metric="loss",
        mode="min",
        num_samples=num_samples,
        max_t=max_t,
        seed=0,
        trainable=trainable,
        **options,
    )
    param_space = {"max_t": max_t, "checkpoint": checkpoint}
    if strategy in DIVERGING:
        param_space["diverge_lr"] = 0.3
    interrupt = InterruptOnce(stop_after or 10**9, str(tmp_path / "interrupted"))
    tuner = tune.Tuner(
        trainable,
        tune_config=cfg,
        param_space=param_space,
        run_config=tune.RunConfig(
            name=strategy,
            storage_path=str(tmp_path),
            # trial_logs: Ray's own loggers drop reports of trials that pause and restart (PBT, Hyperband)
            callbacks=[interrupt, *trial_logs.loggers()],
            verbose=0,
        ),
    )
    first = tuner.fit()
    if stop_after is None:
        return None, first, cfg.num_samples
    restored = tune.Tuner.restore(str(tmp_path / strategy), trainable, resume_unfinished=True).fit()
    return first, restored, cfg.num_samples


def finished(result: tune.Result, max_t: int) -> bool:
    """Trained to the end: ``max_t`` iterations (on all of the data for Fabolas)."""
    m = result.metrics or {}
    return m.get("training_iteration") == max_t and m.get("cost", 1.0) == 1.0


@pytest.mark.parametrize("strategy", list(CASES))
def test_strategy_runs_resumes_and_finds_the_optimum(strategy, ray_local, tmp_path):
    first, grid, total = run_interrupted_then_restored(strategy, tmp_path)
    _, max_t, _, _, _, tol = CASES[strategy]
    sp = space() if strategy not in POPULATION else SearchSpace(FLAT)

    # the first run was interrupted; the restored one holds every trial, none failed
    # (Fabolas says FINISHED at its last slot when its incumbent was already evaluated at s = 1)
    assert len(grid) in ((total - 1, total) if strategy == "fabolas" else (total,)) and grid.num_errors == 0
    first_configs = {r.path.split("/")[-1]: r.config for r in first or [] if r.config}
    if first is not None:
        assert sum(finished(r, max_t) or (r.metrics or {}).get("done", False) for r in first) < total
    assert first_configs or first is None
    for r in grid:
        name = r.path.split("/")[-1]
        if name in first_configs and strategy not in ("pbt", "pb2"):  # PBT mutates configs
            assert r.config == first_configs[name]  # resumed, not re-sampled

    # only the active parameters of the conditional space, within their domains
    for r in grid:
        searched = {k: v for k, v in r.config.items() if k in sp.params}
        sp.validate(searched)

    # near the known optimum (0) among the configurations trained to the end (diverged ones excluded)
    done = [r for r in grid if finished(r, max_t) and math.isfinite(r.metrics["loss"])]
    assert done, "no trial was trained to the end"
    best = min(objective(r.config) for r in done)
    assert best <= tol, f"{strategy}: best f = {best:.3f} > {tol}"
    if strategy in POPULATION:
        assert_exploited(first, grid, space=sp if strategy == "pbt" else None)
    if strategy == "hyperband":
        assert_hyperband_schedule(grid, max_t)
    if strategy == "fabolas":
        by_index = sorted(grid, key=trial_index)
        fractions = [r.config["data_fraction"] for r in by_index]
        assert max(fractions[:6]) <= 0.125 and np.median(fractions) <= 0.125  # mostly small s
        # the incumbent is evaluated on all of the data: by the last trial unless it already was
        assert fractions[-1] == 1.0 or len(grid) == total - 1
        assert 1.0 in fractions


def trial_index(result: tune.Result) -> int:
    """The creation index of a trial (its directory is ``trainable_<id>_<index>_...``)."""
    return int(result.path.rstrip("/").split("/")[-1].split("_")[2])


def own_history(grid: tune.ResultGrid | None) -> dict[str, pd.DataFrame]:
    """Each trial's reported rows by its own id. (Not ``Result.metrics["trial_id"]``: a trial
    restored from a donor's checkpoint gets the donor's last result as its own until it reports
    again — Ray's ``Trial.on_restore`` — so a clone made at the donor's last step keeps it.)"""
    out = {}
    for r in grid or []:
        df = r.metrics_dataframe
        if df is not None and len(df):
            out[df["trial_id"].iloc[0]] = df
    return out


def assert_exploited(first: tune.ResultGrid, grid: tune.ResultGrid, space: SearchSpace | None) -> None:
    """Some trial reported from another trial's checkpoint (``donor``), continuing at the donor's
    step — also after the restore — and, with ``space`` (PBT), with a learning rate different from
    the one the donor trained with up to that checkpoint (saved in it), unless the donor's sat on a
    bound (the clipped perturbation keeps it)."""
    before = {tid: len(df) for tid, df in own_history(first).items()}
    history = own_history(grid)
    clones, after_restore = [], 0
    for tid, df in history.items():
        for k, row in df[df["donor"] != tid].iterrows():
            assert row["donor"] in history  # a trial of this experiment
            clones.append((row["training_iteration"], row["start"], row["lr_used"], row["donor_lr"]))
            after_restore += k >= before.get(tid, 0)
    assert clones, "no trial was cloned from another trial's checkpoint"
    assert after_restore, "no trial was cloned after Tuner.restore"
    for iteration, start, lr, donor_lr in clones:
        assert iteration > start > 0  # continued from the donor's step, not from scratch
        if space is not None:
            lo, hi = space.params["lr"].domain.low, space.params["lr"].domain.high
            assert lr != donor_lr or donor_lr in (lo, hi)  # with a mutated learning rate


def assert_hyperband_schedule(grid: tune.ResultGrid, max_t: int) -> None:
    """Hyperband with max_t = 9, η = 3 in the paper's order opens with its s = 2 bracket: all 9
    trials from 1 iteration, the best 3 on to 3, the best one on to 9 — after the interruption and
    restore exactly as without them."""
    assert max_t == 9
    runs = sorted(grid, key=lambda r: objective(r.config))
    reached = [int(r.metrics_dataframe["training_iteration"].max()) for r in runs]
    assert reached == [9, 3, 3] + [1] * 6


def test_seeded_pbt_mutates_the_same_way_twice(ray_local, tmp_path):
    """Synchronous PBT (all trials wait at each perturbation step, so the order of the exploit
    steps depends on the scores only) with one seed: the same donors and mutations in both runs."""

    def exploits(name: str) -> list:
        cfg = make_tune_config(
            "pbt",
            SearchSpace(FLAT),
            metric="loss",
            mode="min",
            num_samples=4,
            max_t=4,
            seed=7,
            perturbation_interval=1,
            synch=True,
            trainable=trainable,
            reuse_actors=True,  # 16 pauses and resumes: fresh actors took ~4 min on 2 loaded cores
        )
        tune.Tuner(
            trainable,
            tune_config=cfg,
            param_space={"max_t": 4, "checkpoint": True},
            run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
        ).fit()
        # one line per exploit: [trial, donor, their iterations, donor's config, new config]; the
        # iterations are Ray's trial.last_result, which lags for the trial whose report ends the step
        lines = (tmp_path / name / "pbt_global.txt").read_text().splitlines()
        return [(e[0], e[1], e[4], e[5]) for e in map(json.loads, lines)]

    first = exploits("a")
    assert len(first) >= 2 and first == exploits("b")
