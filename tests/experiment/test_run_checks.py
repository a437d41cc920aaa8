"""What a run checks after Ray is up and before any trial starts: the storage path and the resources."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ray.tune import Callback

from raytune_opt.errors import ConfigError
from raytune_opt.experiment import Experiment, run_experiment
from raytune_opt.storage import ExperimentFolder


def _exp(storage: Path, **resources) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "checks",
            "task": "digits-mlp",
            "train": {"epochs": 1},
            "resources": resources,
            "run": {"storage_path": str(storage)},
        }
    )


def test_storage_path_that_is_a_file_or_without_room_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(ConfigError, match=r"run\.storage_path = .*a directory \(.*a-file is a file\)"):
        run_experiment(_exp(file / "results"), progress=False)
    with pytest.raises(ConfigError, match="MiB free"):
        ExperimentFolder(tmp_path, "x").check_writable(min_free_bytes=1 << 62)
    ExperimentFolder(tmp_path / "new" / "deeper", "x").check_writable()  # created, writable
    assert (tmp_path / "new" / "deeper").is_dir()


def test_a_request_no_node_can_take_is_refused_before_it_waits(ray_local, tmp_path: Path) -> None:
    for resources, message in [
        ({"cpus_per_worker": 1e9}, "largest node has"),
        ({"use_gpu": True}, "use_gpu: false"),
    ]:
        with pytest.raises(ConfigError, match=message):
            run_experiment(_exp(tmp_path, **resources), progress=False)
    assert not any((tmp_path / "checks").glob("*")), "nothing written for a run that cannot start"


def test_resume_of_a_run_killed_before_tunes_first_save_starts_it_over(ray_local, tmp_path: Path) -> None:
    """The driver died right after experiment.json appeared: no tuner.pkl, no Tune state. ``resume``
    runs the experiment from the start (every trial), keeping what the dead run left aside."""
    from raytune_opt.experiment import resume_experiment
    from raytune_opt.experiment.run import _write_state

    exp = Experiment.from_dict(
        {
            "name": "early",
            "task": "digits-mlp",
            "train": {"epochs": 1},
            "search": {"strategy": "random", "optimizers": ["adam"], "num_samples": 2},
            "run": {"storage_path": str(tmp_path)},
        }
    )
    folder = ExperimentFolder(tmp_path, "early")
    _write_state(folder, exp, exp.plan(), "early")
    (tmp_path / "early" / "raytune_opt_trial_dead_00000").mkdir()
    result = resume_experiment(tmp_path / "early", progress=False)
    assert not result.interrupted and result.summary["trials"]["finished"] == 2
    assert [p.name for p in (tmp_path / "early").glob("unsaved-*/*")] == ["raytune_opt_trial_dead_00000"]


def test_surrogate_failures_are_counted_in_the_state_and_the_report(ray_local, tmp_path: Path, monkeypatch):
    """A GP-BO run whose model fit fails (botorch's own ModelFittingError, patched in: a real botorch
    failure cannot be provoked on purpose) still finishes, and says how often it fell back to random."""
    import json

    import botorch.fit
    from botorch.exceptions.errors import ModelFittingError

    def failing_fit(*args, **kwargs):
        raise ModelFittingError("All attempts to fit the model have failed.")

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", failing_fit)
    exp = Experiment.from_dict(
        {
            "name": "bo",
            "task": "digits-mlp",
            "train": {"epochs": 1},
            "optimizer": {"name": "sgd"},
            "search": {
                "strategy": "bo",
                "space": {"lr": {"loguniform": [1e-3, 1e-1]}},
                "num_samples": 4,
                "options": {"n_initial": 2},
            },
            "resources": {"max_concurrent_trials": 1},
            "run": {"storage_path": str(tmp_path)},
        }
    )
    result = run_experiment(exp, progress=False)
    state = json.loads((result.path / "experiment.json").read_text())
    assert len(state["surrogate_fallbacks"]) == 2 and "ModelFittingError" in state["surrogate_fallbacks"][0]
    assert result.summary["surrogate_fallbacks"] == 2 and result.summary["trials"]["finished"] == 4
    assert "surrogate model failed 2 time(s)" in (result.path / "report.md").read_text()


class _InterruptAtFirstReport(Callback):
    """A KeyboardInterrupt in the driver while trials run (a second Ctrl-C: Tune handles the first)."""

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        raise KeyboardInterrupt


def test_an_interrupt_tune_does_not_handle_gives_the_trials_cpus_back(ray_local, tmp_path: Path) -> None:
    """Tune cleans up its trials only after an Exception: a KeyboardInterrupt left their placement
    groups (and actors) holding the suite's CPUs until the driver exited. A trial reports each epoch
    only once the driver took the last report, so both trials are still running at the interrupt."""
    exp = Experiment.from_dict(
        {
            "name": "interrupted",
            "task": {"name": "digits-mlp", "args": {"hidden": 8}},
            "train": {"epochs": 1000, "checkpoint_every": 0, "checkpoint_at_end": False},
            "optimizer": {"name": "adam"},
            "search": {"strategy": "grid", "space": {"lr": {"grid": [1e-3, 1e-2]}}},
            "resources": {"cpus_per_worker": 0.5},
            "run": {"storage_path": str(tmp_path)},
        }
    )
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp, progress=False, callbacks=[_InterruptAtFirstReport()])
    total = ray_local.cluster_resources()["CPU"]
    deadline = time.monotonic() + 120  # only ends a broken run: released resources show within seconds
    while ray_local.available_resources().get("CPU", 0.0) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_local.available_resources().get("CPU", 0.0) == total
