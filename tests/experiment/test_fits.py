"""``run.trials_per_fit``: a long search runs as several ``Tuner.fit`` s, one searcher carried through
them — the same suggestions as one fit, every trial in the report and the grid, a resume that
continues the newest fit and then the fits to come; strategies with a scheduler's state stay one fit."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from gated_tasks import write_gated_tasks
from test_cli_run import _finished_trials, _saved_terminated, cli, experiment_files, gated_driver, wait_until
from test_resume_grow import SPACE, config, searcher_state, trial_configs

from raytune_opt.errors import ConfigError
from raytune_opt.experiment import Experiment, fits, resume_experiment, run_experiment
from raytune_opt.progress import LiveStatus
from raytune_opt.search import STRATEGIES
from raytune_opt.storage import ExperimentFolder


def split_config(tmp_path: Path, num_samples: int, per_fit: int) -> dict:
    raw = config(tmp_path, num_samples=num_samples)
    raw["run"]["trials_per_fit"] = per_fit
    return raw


def fit_sizes(folder: Path) -> list[int]:
    """The trials of each ``experiment_state-*.json``, oldest first."""
    return [len(json.loads(p.read_text())["trial_data"]) for p in sorted(folder.glob(fits.STATE_PATTERN))]


def suggestions(tmp_path: Path, n: int) -> list[dict]:
    """The first ``n`` suggestions of the seeded searcher of a one-fit plan, in order."""
    searcher = Experiment.from_dict(config(tmp_path / "fresh", num_samples=n)).plan().tune_config().search_alg
    return [{k: c[k] for k in SPACE} for c in (searcher.suggest(f"t{i}") for i in range(n))]


def observed(folder: Path) -> list[dict]:
    """The searched values of the searcher's observations, in the order it observed them."""
    return [{k: obs[1][k] for k in SPACE} for obs in searcher_state(folder)["observations"]]


def test_a_search_runs_as_fits_with_one_searcher_and_grows_across_them(ray_local, tmp_path, capsys):
    """5 trials at 2 a fit: fits of 2, 2 and 1 trials, the first five suggestions of the seeded
    searcher (one at a time: observed in the order suggested), all five in the report and in
    ``result.grid``; then ``resume --num-samples 7`` continues (the newest fit is complete: one more
    fit of 2) with the same searcher's next two suggestions."""
    result = run_experiment(Experiment.from_dict(split_config(tmp_path, 5, 2)))
    folder = result.path
    assert fit_sizes(folder) == [2, 2, 1] and not result.interrupted
    expected = suggestions(tmp_path, 7)
    assert observed(folder) == expected[:5]
    assert trial_configs(folder) == sorted(expected[:5], key=lambda c: c["lr"])
    assert result.summary["trials"]["total"] == 5 and result.summary["trials"]["finished"] == 5
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert list(trials["status"]) == ["finished"] * 5
    assert len(result.grid) == 5 and not result.grid.errors  # read from the folder when asked for
    assert {r.metrics["trial_id"] for r in result.grid} == set(trials["trial_id"])
    best = result.grid.get_best_result(metric="val_accuracy", mode="max", scope="all")
    assert best.metrics_dataframe["val_accuracy"].max() == trials["best_val_accuracy"].max()
    out = capsys.readouterr().out
    assert "5 trials: 0 running, 5 finished, 0 failed, 0 diverged" in out  # the live line over fits
    assert f"best val_accuracy = {trials['best_val_accuracy'].max():.4g}" in out
    assert json.loads((folder / "experiment.json").read_text())["finished_at"] is not None

    grown = resume_experiment(folder, num_samples=7, progress=False)
    assert not grown.interrupted and len(grown.grid) == 7
    assert observed(folder) == expected  # one history: the searcher went on from the fifth
    assert trial_configs(folder) == sorted(expected, key=lambda c: c["lr"])
    assert pd.read_csv(folder / "trials.csv")["status"].eq("finished").sum() == 7


def test_an_interrupted_split_run_resumes_its_fit_then_the_fits_to_come(ray_local, tmp_path):
    """Ctrl-C in the second of three fits (2 trials a fit, 5 in all, one at a time): the first three
    trials finish, the fourth waits at the gate; ``resume`` finishes the second fit (the fourth
    trial) and runs the third (the fifth): five finished trials, every one of them in the report."""
    gate = tmp_path / "gate"
    gate.mkdir()
    raw = {
        "name": "split",
        "imports": [str(write_gated_tasks(tmp_path))],
        "task": {"name": "gated-digits", "args": {"gate": str(gate), "free": 3}},
        "train": {"epochs": 1, "batch_size": 64},
        "optimizer": {"name": "adam"},
        "search": {"strategy": "random", "space": SPACE, "num_samples": 5, "seed": 1},
        "resources": {"max_concurrent_trials": 1},
        "run": {"storage_path": str(tmp_path), "trials_per_fit": 2},
    }
    path, log, folder = experiment_files(tmp_path, raw)

    def third_done_fourth_waiting() -> set[str] | None:
        done = _finished_trials(folder, 1)
        ok = len(done) == 3 and len(list(gate.glob("waiting_*"))) == 1 and done <= _saved_terminated(folder)
        return done if ok else None

    with gated_driver(ray_local, path, gate, log) as driver:
        before = wait_until(
            "three trials finished, the fourth at the gate", third_done_fourth_waiting, 300, driver, log
        )
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=120) == 130, log.read_text()[-3000:]
    assert fit_sizes(folder)[0] == 2
    assert json.loads((folder / "experiment.json").read_text())["finished_at"] is None

    assert cli("resume", folder) == 0
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert (trials["status"] == "finished").sum() == 5 and before <= set(trials["trial_id"])
    assert json.loads((folder / "experiment.json").read_text())["finished_at"] is not None
    assert len(fits.trial_states(ExperimentFolder(str(tmp_path), "split"))) == 5


@pytest.mark.parametrize(
    ("strategy", "split"),
    [
        ("random", True),
        ("sobol", True),
        ("tpe", True),
        ("asha", False),
        ("hyperband", False),
        ("bohb", False),
        ("pbt", False),
        ("grid", False),
    ],
)
def test_only_a_searcher_under_fifo_is_split(tmp_path, strategy, split):
    """A scheduler's brackets, rungs or population live in one fit; grid's and PBT's budgets are
    fixed at the start."""
    raw = config(tmp_path, strategy, num_samples=4)
    if strategy == "grid":
        raw["search"]["space"] = {"lr": {"grid": [1e-3, 1e-2]}}
    if strategy == "pbt":
        raw["train"].update(epochs=2, checkpoint_every=1, checkpoint_at_end=True)
    tune_config = Experiment.from_dict(raw).plan().tune_config()
    assert fits.splittable(tune_config, STRATEGIES[strategy].fixed_budget) is split


def test_next_fit_sizes():
    assert [fits.next_fit(5, done, 2) for done in (0, 2, 4, 5, 6)] == [2, 2, 1, 0, 0]
    assert fits.next_fit(5, 1, None) == 4


def test_the_live_line_counts_the_earlier_fits():
    status = LiveStatus("loss", "min", total=5)
    trial = [SimpleNamespace(trial_id=f"t{i}", status="TERMINATED", config={}) for i in range(2)]
    status.diverged.add("t1")
    status.on_experiment_end(trials=trial)
    status.carry(["ERROR"])
    running = [SimpleNamespace(trial_id="t3", status="RUNNING", config={})]
    assert "5 trials: 1 running, 1 finished, 1 failed, 1 diverged, 1 to go" in status.line(running)


@pytest.mark.parametrize("value", [0, -1, 1.5, "x"])
def test_trials_per_fit_is_checked(tmp_path, value):
    raw = split_config(tmp_path, 2, 2)
    raw["run"]["trials_per_fit"] = value
    with pytest.raises(ConfigError, match="run.trials_per_fit"):
        Experiment.from_dict(raw)
