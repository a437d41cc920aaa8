"""``resume --num-samples N`` / ``resume_experiment(num_samples=N)``: an experiment grows, the same
search going on with its history; below what already ran, or for a strategy whose budget is fixed,
one ``error:`` line before Ray starts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from raytune_opt.cli import main
from raytune_opt.experiment import Experiment, resume_experiment, run_experiment

SPACE = {"lr": {"loguniform": [1e-3, 1e-1]}, "weight_decay": {"uniform": [0.0, 0.1]}}


def config(tmp_path: Path, strategy: str = "random", num_samples: int = 2) -> dict:
    return {
        "name": "grow",
        "task": {"name": "digits-mlp", "args": {"hidden": 16}},
        "train": {"epochs": 1, "batch_size": 128, "checkpoint_every": 0, "checkpoint_at_end": False},
        "optimizer": {"name": "adam"},
        "search": {"strategy": strategy, "space": SPACE, "num_samples": num_samples, "seed": 3},
        "resources": {"max_concurrent_trials": 1},
        "run": {"storage_path": str(tmp_path)},
    }


def trial_configs(folder: Path) -> list[dict]:
    """The searched values of every trial folder's ``params.json``."""
    params = [json.loads(p.read_text()) for p in folder.glob("*/params.json")]
    return sorted(({k: p[k] for k in SPACE} for p in params), key=lambda c: c["lr"])


def searcher_state(folder: Path) -> dict:
    """The searcher's state Tune saved last (the greatest name: one file per session, the one
    ``Tuner.restore`` reads; plain data: ``torch.load(weights_only=True)`` reads it)."""
    return torch.load(max(folder.glob("searcher-state-*.pkl")), weights_only=True)


def test_an_experiment_grows_and_its_search_goes_on_with_its_history(ray_local, tmp_path, capsys):
    """Two trials, then ``resume_experiment(num_samples=3)`` (Python API), then ``raytune-opt resume
    --num-samples 4``: four trials in all, and they are the first four suggestions of the seeded
    searcher, i.e. what a run planned with 4 from the start suggests (not the first two again:
    the searcher's position and observations were restored, not restarted)."""
    exp = Experiment.from_dict(config(tmp_path))
    result = run_experiment(exp, progress=False)
    folder = result.path
    assert len(trial_configs(folder)) == 2 and searcher_state(folder)["n_suggested"] == 2

    grown = resume_experiment(folder, num_samples=3, progress=False)
    assert not grown.interrupted and len(trial_configs(folder)) == 3
    assert main(["resume", str(folder), "--num-samples", "4"]) == 0

    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    assert list(trials["status"]) == ["finished"] * 4
    state = searcher_state(folder)
    assert state["n_suggested"] == 4 and len(state["observations"]) == 4  # one history, all trials
    # the same search: what the seeded searcher of a 4-sample plan suggests, in that order
    fresh = Experiment.from_dict(config(tmp_path / "fresh", num_samples=4)).plan().tune_config().search_alg
    expected = [{k: c[k] for k in SPACE} for c in (fresh.suggest(f"t{i}") for i in range(4))]
    # one trial at a time: the searcher observed them in the order it suggested them
    assert [{k: obs[1][k] for k in SPACE} for obs in state["observations"]] == expected
    assert trial_configs(folder) == sorted(expected, key=lambda c: c["lr"])
    saved = json.loads((folder / "experiment.json").read_text())
    assert saved["num_samples"] == 4 and saved["experiment"]["search"]["num_samples"] == 4
    assert [(g["from"], g["to"]) for g in saved["grown"]] == [(2, 3), (3, 4)]
    assert saved["finished_at"] is not None

    # below what already ran: one error line, exit status 2, nothing started
    capsys.readouterr()
    assert main(["resume", str(folder), "--num-samples", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --num-samples = 3 is not allowed")
    assert "at least the 4 trials" in err
    assert len(trial_configs(folder)) == 4


@pytest.mark.parametrize("strategy", ["grid", "pbt", "fabolas"])
def test_a_fixed_budget_strategy_cannot_grow(tmp_path, capsys, strategy):
    """Checked from ``experiment.json`` alone, before Ray starts."""
    folder = tmp_path / "grow"
    folder.mkdir()
    raw = config(tmp_path, strategy)
    if strategy == "grid":
        raw["search"]["space"] = {"lr": {"grid": [1e-3, 1e-2]}}
        raw["search"]["num_samples"] = 1
    if strategy == "pbt":  # it clones checkpoints
        raw["train"].update(checkpoint_every=1, checkpoint_at_end=True)
    (folder / "experiment.json").write_text(json.dumps({"experiment": raw}))
    assert main(["resume", str(folder), "--num-samples", "9"]) == 2
    err = capsys.readouterr().err
    assert f"a strategy whose budget can grow; '{strategy}'" in err and err.count("\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.json"]
