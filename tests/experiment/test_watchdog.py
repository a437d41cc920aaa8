"""A trial that hangs is failed with the reason and the experiment goes on (``run.trial_timeout_s``,
``run.stall_factor``): the rule on a clock the test drives, and a real hanging trial on the suite's Ray."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from raytune_opt.experiment import Experiment, run_experiment
from raytune_opt.experiment.watchdog import REASONS_FILE, TrialWatchdog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trial(tid: str, status: str = "RUNNING") -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, status=status, temporary_state=SimpleNamespace(ray_actor=None))


def test_timeout_counts_from_the_start_and_a_restart_resets_it(tmp_path: Path) -> None:
    clock = Clock()
    dog = TrialWatchdog(tmp_path, timeout_s=10, clock=clock)
    a, pending = _trial("a"), _trial("p", "PENDING")
    dog.on_trial_start(0, [a], a)
    clock.now = 9.5
    dog.on_step_begin(1, [a, pending])
    assert dog.reasons == {}
    clock.now = 10.5
    dog.on_step_begin(2, [a, pending])
    assert set(dog.reasons) == {"a"} and "trial_timeout_s = 10" in dog.reasons["a"]
    assert json.loads((tmp_path / REASONS_FILE).read_text()) == dog.reasons
    dog.on_trial_restore(3, [a], a)  # retried per max_failures: a new attempt, a new clock
    assert dog.reason("a", clock.now + 9) is None and dog.reason("a", clock.now + 11) is not None
    assert dog.reason("p", 1e9) is None  # never started (waiting for resources): not counted


def test_stall_is_measured_against_the_median_interval() -> None:
    clock = Clock()
    dog = TrialWatchdog(None, stall_factor=5, clock=clock)
    a, b = _trial("a"), _trial("b")
    dog.on_trial_start(0, [a, b], a)
    dog.on_trial_start(0, [a, b], b)
    for t in (1.0, 2.0, 3.0):
        clock.now = t
        dog.on_trial_result(0, [a, b], a, {})
    assert dog.reason("b", 3.0 + 0.5) is None  # quiet 3.5 s < 5 x 1 s
    assert "stalled" in dog.reason("b", 5.5)  # quiet 5.5 s
    assert dog.reason("a", 7.0) is None and dog.reason("a", 8.5) is not None


HANGING = '''
import threading
import torch
from raytune_opt.tasks import get_task, register_task


class Hang(torch.nn.Module):
    """A model whose forward never returns (a deadlocked loader or collective, say)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        threading.Event().wait()


@register_task("digits-hang")
def digits_hang():
    """digits-mlp whose model hangs on its first batch."""
    spec = get_task("digits-mlp").fn()
    return type(spec)(**{**spec.__dict__, "model": Hang(spec.model)})
'''


def test_a_hanging_trial_fails_with_its_reason_and_the_run_ends(ray_local, tmp_path: Path) -> None:
    (tmp_path / "hang.py").write_text(HANGING)
    exp = Experiment.from_dict(
        {
            "name": "hang",
            "imports": [str(tmp_path / "hang.py")],
            "task": "digits-hang",
            "train": {"epochs": 2},
            "run": {"storage_path": str(tmp_path / "results"), "max_failures": 0, "trial_timeout_s": 3},
        }
    )
    result = run_experiment(exp, progress=False)
    assert not result.interrupted
    trials = pd.read_csv(result.path / "trials.csv", dtype={"trial_id": str})
    assert list(trials["status"]) == ["failed"]
    assert "timed out" in trials["error"][0] and "trial_timeout_s = 3" in trials["error"][0]
    assert result.summary["trials"]["failed"] == 1


PACED = '''
import time
import torch
from raytune_opt.tasks import get_task, register_task


class Paced(torch.nn.Module):
    """digits-mlp's model, each forward at least ``pace_s`` long: an epoch can never be quick."""

    def __init__(self, inner, pace_s):
        super().__init__()
        self.inner, self.pace_s = inner, pace_s

    def forward(self, x):
        time.sleep(self.pace_s)
        return self.inner(x)


@register_task("digits-paced-budget")
def digits_paced(pace_s: float = 0.05):
    spec = get_task("digits-mlp").fn()
    return type(spec)(**{**spec.__dict__, "model": Paced(spec.model, pace_s)})
'''


def test_budget_stop_names_only_trials_the_budget_cut_short() -> None:
    from raytune_opt.experiment.watchdog import BudgetStop

    clock = Clock()
    cut = BudgetStop(None, budget_s=10, clock=clock)
    done, running = _trial("done", "TERMINATED"), _trial("running")
    cut.on_step_begin(0, [done, running])
    clock.now = 5
    cut.on_experiment_end([done, running])
    assert cut.stopped == []  # ended before the budget: nothing was cut
    clock.now = 10.5
    running.status = "TERMINATED"
    cut.on_experiment_end([done, running])
    assert cut.stopped == ["running"]


def test_trials_cut_by_the_time_budget_are_stopped_not_finished(ray_local, tmp_path: Path) -> None:
    (tmp_path / "paced.py").write_text(PACED)
    exp = Experiment.from_dict(
        {
            "name": "budget",
            "imports": [str(tmp_path / "paced.py")],
            "task": "digits-paced-budget",
            # >= 23 batches x 0.05 s a batch x 40 epochs = 46 s of sleep alone: never within the budget
            "train": {"epochs": 40, "batch_size": 64, "checkpoint_every": 0},
            "optimizer": {"name": "adam"},
            "search": {"strategy": "grid", "space": {"lr": {"grid": [1e-3, 1e-2]}}, "time_budget_s": 4},
            "run": {"storage_path": str(tmp_path / "results")},
        }
    )
    result = run_experiment(exp, progress=False)
    trials = pd.read_csv(result.path / "trials.csv", dtype={"trial_id": str})
    assert set(trials["status"]) == {"stopped"} and (trials["iterations"] < 40).all()
    assert result.summary["trials"]["stopped"] == len(trials) and result.summary["trials"]["finished"] == 0
    assert "stopped by the time budget" in (result.path / "report.md").read_text()
