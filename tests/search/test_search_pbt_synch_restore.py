"""Synchronous PBT (``synch=True``) interrupted while the population waits at a sync time, then resumed
with ``Tuner.restore``, runs to the end in step (raytune_opt.search.schedulers, "Synchronous PBT/PB2
after a restore").

The run is interrupted (SIGINT, as by Ctrl+C) once the upper half of the population — the trials with
the best learning rates, the donors of the first sync — waits paused at the first sync time while
another trial is behind it. Ray re-queues every unfinished trial as ``PENDING`` and starts them; with
Ray 2.60's own scheduler the sync then met the donors pending or just started: asked to save, a fresh
actor failed (``ERROR``) and every other trial stayed ``PAUSED`` forever; or the donors had no
checkpoint and nothing was cloned; or they trained past the sync time before the others reached it. A
time budget ends a run that hangs, so a regression fails (trials short of their last iteration)
rather than blocks the suite.

A second run makes two trials report each sync time at once (a file barrier), so that the sync meets
the first one still pausing (saving its checkpoint): Ray 2.60 ends a lower-quantile trial caught so at
its next save, short of its last iteration (ray-project/ray#57906). A third one has a trial fail:
Ray 2.60 keeps it among the live trials the sync waits for, and the others waited forever.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from ray import cloudpickle, tune

from raytune_opt import trial_logs
from raytune_opt.search import SearchSpace, capabilities, make_tune_config

# Ray workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

POPULATION, MAX_T, INTERVAL = 4, 5, 2  # syncs at 2 and 4, then one step to the end
#: ends a run if the population deadlocks, so that a regression fails rather than blocks the suite: a
#: few seconds suffice on an idle machine; the margin is for a slow, loaded one (no assert on time)
TIME_BUDGET_S = 600


@capabilities(checkpoints=True)
def climb(config: dict) -> None:
    """Reports ``loss = (log10 lr + 2)² / 4 + 0.5 / t`` for ``t = 1 .. max_t`` with a checkpoint each
    step holding ``t``, the learning rate it was trained with and whether it was written after the
    restore (``config["marker"]`` exists). Each report names the checkpoint it resumed from:
    ``start`` (its step), ``ckpt_lr`` and ``ckpt_after``. With ``config["lockstep"]`` (a folder) two
    trials report each step together, the worse one first (:func:`wait_for_the_other`); the trial
    whose ``lr`` is ``config["fail_lr"]`` raises at its first step."""
    start, ckpt_lr, ckpt_after = 0, config["lr"], False
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "state.json")) as fh:
            saved = json.load(fh)
        start, ckpt_lr, ckpt_after = saved["t"], saved["lr"], saved["after"]
    if config["lr"] == config.get("fail_lr"):
        raise RuntimeError("this trial fails")
    after = os.path.exists(config["marker"])
    for t in range(start + 1, config["max_t"] + 1):
        loss = (math.log10(config["lr"]) + 2) ** 2 / 4 + 0.5 / t
        if config.get("lockstep"):
            wait_for_the_other(Path(config["lockstep"]), t, loss)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as fh:
                json.dump({"t": t, "lr": config["lr"], "after": after}, fh)
            metrics = {"loss": loss, "lr_used": config["lr"], "start": start}
            metrics.update(ckpt_lr=ckpt_lr, ckpt_after=ckpt_after)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def wait_for_the_other(folder: Path, step: int, loss: float, timeout_s: float = 60.0) -> None:
    """A barrier of two trials at ``step``; then the one with the lower (better) ``loss`` waits 2 ms
    more, so the worse one usually reports first and is still pausing (saving) when the better one's
    report comes. The assertions hold in either order: a slow machine may make the test miss the race
    it aims at, never fail for it. (The timeout only keeps a broken run from blocking.)"""
    (folder / f"{step}_{loss!r}_{uuid.uuid4().hex}").touch()
    deadline = time.monotonic() + timeout_s
    while len(arrived := list(folder.glob(f"{step}_*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    if loss < max(float(f.name.split("_")[1]) for f in arrived):
        time.sleep(0.002)


class Conductor(tune.Callback):
    """Logs each report the driver gets, in order, as ``[trial id, iteration]`` JSON lines (both runs),
    and interrupts (SIGINT: Tune saves its state and returns) once every trial with a learning rate in
    ``donors`` has saved its checkpoint at ``sync_time`` (it is paused there). The marker file, holding
    the number of trials then behind ``sync_time``, keeps the restored run (a fresh copy) going."""

    def __init__(self, log: str, marker: str, sync_time: int, donors: list[float]) -> None:
        self.log, self.marker, self.sync_time, self.donors = log, marker, sync_time, donors
        self.waiting: set[str] = set()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        with open(self.log, "a") as fh:
            fh.write(json.dumps([trial.trial_id, result["training_iteration"]]) + "\n")

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        if os.path.exists(self.marker):
            return
        if trial.config["lr"] in self.donors and trial.last_result["training_iteration"] >= self.sync_time:
            self.waiting.add(trial.trial_id)
        if len(self.waiting) == len(self.donors):
            behind = [
                t for t in trials if (t.last_result or {}).get("training_iteration", 0) < self.sync_time
            ]
            with open(self.marker, "w") as fh:
                json.dump({"behind": len(behind)}, fh)
            os.kill(os.getpid(), signal.SIGINT)


def rows(grid: tune.ResultGrid) -> pd.DataFrame:
    """Every report of every trial (the trial_logs loggers keep those of paused and restarted trials)."""
    frames = [r.metrics_dataframe for r in grid if r.metrics_dataframe is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_synch_pbt_resumes_after_restore_and_finishes(ray_local, tmp_path):
    marker, log = str(tmp_path / "restored"), str(tmp_path / "reports.jsonl")
    # seed 0: trials 0 and 1 (started first) have the best learning rates: they wait at the sync
    cfg = synch_pbt_config(POPULATION, MAX_T, seed=0)
    lrs = sorted((p["lr"] for p in cfg.search_alg.presets), key=lambda lr: abs(math.log10(lr) + 2))
    tuner = tune.Tuner(
        climb,
        tune_config=cfg,
        param_space={"max_t": MAX_T, "marker": marker},
        run_config=tune.RunConfig(
            name="synch",
            storage_path=str(tmp_path),
            callbacks=[Conductor(log, marker, INTERVAL, lrs[: POPULATION // 2]), *trial_logs.loggers()],
            verbose=0,
        ),
    )
    first = tuner.fit()
    assert os.path.exists(marker), "the first run was not interrupted"
    with open(marker) as fh:
        assert json.load(fh)["behind"] >= 1, "interrupted after the first sync: nothing left to test"
    assert all((r.metrics or {}).get("training_iteration", 0) < MAX_T for r in first)

    grid = tune.Tuner.restore(str(tmp_path / "synch"), climb, resume_unfinished=True).fit()

    reached = sorted((r.metrics or {}).get("training_iteration", 0) for r in grid)
    assert len(grid) == POPULATION and grid.num_errors == 0, [r.error for r in grid]
    assert grid.num_terminated == POPULATION
    # every trial trained to its last iteration (a deadlock ends by the time budget, short of it)
    assert reached == [MAX_T] * POPULATION, f"iterations reached {reached} (time budget {TIME_BUDGET_S} s)"
    assert all(r.metrics["done"] for r in grid)

    # in step across the restore: a report past a sync time T comes after every trial reported T
    with open(log) as fh:
        reports = [json.loads(line) for line in fh]
    best: dict[str, int] = {}
    for k, (trial_id, t) in enumerate(reports):
        sync = (t - 1) // INTERVAL * INTERVAL
        behind = {tid for tid in {r[0] for r in reports} if best.get(tid, 0) < sync}
        assert not behind, f"report {k} ({trial_id} at {t}) came before {sorted(behind)} reached {sync}"
        best[trial_id] = max(best.get(trial_id, 0), t)

    # at each sync after the restore (the last one ends the run) the lower half is cloned: reports that
    # continue at the sync time from a checkpoint trained with another learning rate (the donor's);
    # from the second one on, checkpoints written after the restore
    df = rows(grid)
    df = df[df["lr_used"] != df["ckpt_lr"]]
    for sync in range(INTERVAL, MAX_T, INTERVAL):
        assert (df["start"] == sync).any(), f"no trial was cloned at the sync time {sync}"
    assert df[df["start"] > INTERVAL]["ckpt_after"].astype(bool).all()


def test_synch_pbt_keeps_a_trial_caught_pausing_at_the_sync(ray_local, tmp_path):
    """Two trials reach every sync time at once: the first to report is still pausing when the second
    one's report perturbs both. Each trains to its last iteration and the lower one is cloned at every
    sync (once paused). A step between syncs: a trial's report there saves a checkpoint, which is where
    Ray 2.60 carried out the ``STOP`` it had cached for a trial caught pausing."""
    max_t = 7
    (tmp_path / "lockstep").mkdir()
    grid = run_synch_pbt(tmp_path, "lockstep", 2, max_t, seed=1, lockstep=str(tmp_path / "lockstep"))

    assert grid.num_errors == 0 and grid.num_terminated == 2
    reached = sorted((r.metrics or {}).get("training_iteration", 0) for r in grid)
    assert reached == [max_t, max_t], f"iterations reached {reached}"
    df = rows(grid)
    clones = df[df["lr_used"] != df["ckpt_lr"]]
    assert sorted(set(clones["start"])) == list(range(INTERVAL, max_t, INTERVAL)), "a sync without a clone"


def test_synch_pbt_goes_on_without_a_failed_trial(ray_local, tmp_path):
    """One of three trials fails at its first step; the other two sync, clone and finish."""
    max_t = 3
    grid = run_synch_pbt(tmp_path, "failing", 3, max_t, seed=2, fail_first=True)

    assert grid.num_errors == 1 and grid.num_terminated == 2
    reached = sorted((r.metrics or {}).get("training_iteration", 0) for r in grid if r.error is None)
    assert reached == [max_t, max_t], f"iterations reached {reached} (time budget {TIME_BUDGET_S} s)"
    df = rows(grid)
    assert ((df["lr_used"] != df["ckpt_lr"]) & (df["start"] == INTERVAL)).any(), "no clone at the sync"


def synch_pbt_config(num_samples: int, max_t: int, seed: int) -> tune.TuneConfig:
    """Synchronous PBT over ``lr`` for :func:`climb`: two donors and two clones per sync of a population
    of 4, actors reused (each sync pauses every trial: fresh actors would take minutes on 2 cores), and
    a time budget per ``fit()`` that ends a deadlocked run."""
    return make_tune_config(
        "pbt",
        SearchSpace({"lr": {"loguniform": [1e-4, 1.0]}}),
        metric="loss",
        mode="min",
        num_samples=num_samples,
        max_t=max_t,
        seed=seed,
        perturbation_interval=INTERVAL,
        quantile_fraction=0.5,
        synch=True,
        trainable=climb,
        reuse_actors=True,
        time_budget_s=TIME_BUDGET_S,
    )


def run_synch_pbt(
    tmp_path: Path, name: str, num_samples: int, max_t: int, seed: int, fail_first: bool = False, **kw: Any
) -> tune.ResultGrid:
    """A synchronous PBT run of :func:`climb` (no restore); ``fail_first``: the first preset's trial
    raises at its first step; ``kw``: more of climb's config."""
    cfg = synch_pbt_config(num_samples, max_t, seed)
    if fail_first:
        kw["fail_lr"] = cfg.search_alg.presets[0]["lr"]
    # half a CPU a trial: two trials run at once even when one of the suite's 2 CPUs is still held
    # by an earlier test (seen in full runs), which the lockstep barrier needs
    return tune.Tuner(
        tune.with_resources(climb, {"cpu": 0.5}),
        tune_config=cfg,
        param_space={"max_t": max_t, "marker": str(tmp_path / "never"), **kw},
        run_config=tune.RunConfig(
            name=name, storage_path=str(tmp_path), callbacks=trial_logs.loggers(), verbose=0
        ),
    ).fit()
