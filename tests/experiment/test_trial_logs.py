"""raytune_opt.trial_logs: a trial that restarts within a run keeps every report in result.json and
progress.csv — where Ray 2.60's own loggers copy the (older) stored file over the local one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from raytune_opt import trial_logs


def _noop(config: dict) -> None:
    pass


def _trial(tmp_path: Path) -> Trial:
    """A real Tune trial staged locally, stored under tmp_path/store, with one checkpoint (so Ray's
    loggers restore its files from storage when it starts)."""
    tune.register_trainable("raytune_opt_noop", _noop)
    storage = StorageContext(storage_path=str(tmp_path / "store"), experiment_dir_name="exp")
    trial = Trial("raytune_opt_noop", config={"lr": 0.1}, trial_id="6e149211", storage=storage)
    trial.init_local_path()
    Path(trial.storage.trial_fs_path).mkdir(parents=True, exist_ok=True)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    trial.on_checkpoint(_TrainingResult(checkpoint=tune.Checkpoint.from_directory(str(ckpt)), metrics={}))
    return trial


def _report(epoch: int) -> dict:
    return {"epoch": epoch, "loss": 1.0 / epoch, "training_iteration": epoch, "trial_id": "6e149211"}


def _epochs(trial: Trial, name: str) -> list[int]:
    path = Path(trial.local_path, name)
    if name == "result.json":
        return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]


@pytest.mark.parametrize(
    ("ours", "ray", "name"),
    [
        (trial_logs.JsonLogger, JsonLoggerCallback, "result.json"),
        (trial_logs.CSVLogger, CSVLoggerCallback, "progress.csv"),
    ],
)
def test_a_restarted_trial_keeps_the_reports_not_yet_uploaded(
    ray_local, tmp_path: Path, ours, ray, name
) -> None:
    for cls, kept in ((ours, [1, 2, 3, 4, 5]), (ray, [1, 2, 5])):
        trial = _trial(tmp_path / cls.__name__)
        logger = cls()
        for epoch in (1, 2):
            logger.log_trial_result(epoch, trial, _report(epoch))
        # the driver uploads the staged files (Tune does this at its experiment checkpoints)
        stored = Path(trial.storage.trial_fs_path, name)
        stored.write_bytes(Path(trial.local_path, name).read_bytes())
        for epoch in (3, 4):  # reported, not uploaded yet
            logger.log_trial_result(epoch, trial, _report(epoch))
        logger.log_trial_end(trial)  # PBT pauses the trial ...
        logger.log_trial_start(trial)  # ... and starts it again from its checkpoint
        logger.log_trial_result(5, trial, _report(5))
        logger.log_trial_end(trial)
        assert _epochs(trial, name) == kept, cls.__name__


def test_a_trial_first_started_in_this_run_takes_its_stored_file(ray_local, tmp_path: Path) -> None:
    """After Tuner.restore (a new driver run stages into a fresh folder) the stored reports come first."""
    trial = _trial(tmp_path)
    stored = Path(trial.storage.trial_fs_path, "result.json")
    stored.write_text("".join(json.dumps(_report(e)) + "\n" for e in (1, 2)))
    logger = trial_logs.JsonLogger()
    logger.log_trial_start(trial)
    logger.log_trial_result(3, trial, _report(3))
    logger.log_trial_end(trial)
    assert _epochs(trial, "result.json") == [1, 2, 3]


def test_a_continued_progress_csv_keeps_its_columns(ray_local, tmp_path: Path) -> None:
    trial = _trial(tmp_path)
    logger = trial_logs.CSVLogger()
    logger.log_trial_result(1, trial, _report(1))
    logger.log_trial_end(trial)
    logger.log_trial_start(trial)
    later = dict(reversed(list(_report(2).items())))  # the same keys in another order, and a new one
    logger.log_trial_result(2, trial, {**later, "lr": 0.5})
    logger.log_trial_end(trial)
    with open(Path(trial.local_path, "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["loss"]) for r in rows] == [("1", "1.0"), ("2", "0.5")]
    assert "lr" not in rows[0]


def test_loggers_add_tensorboard_only_when_asked() -> None:
    kinds = [type(c).__name__ for c in trial_logs.loggers()]
    assert kinds == ["JsonLogger", "CSVLogger", "OwnPlaceholder"]
    assert [type(c).__name__ for c in trial_logs.loggers(tensorboard=True)][-1] == "TBXLoggerCallback"


def _reusable() -> type:
    """A class trainable whose actor Tune may reuse (``reset_config`` says yes); made here, so that
    Ray ships it by value (workers cannot import the test module)."""

    class Reusable(tune.Trainable):
        def setup(self, config: dict) -> None:
            pass

        def step(self) -> dict:
            return {"loss": 1.0}

        def reset_config(self, new_config: dict) -> bool:
            return True

    return Reusable


def test_a_trial_that_never_reported_on_a_reused_actor_keeps_its_own_config(ray_local) -> None:
    """Tune hands a pending trial a cached actor as ``_maybe_reuse_cached_actor`` does: the trial's
    placeholder result is asked of the actor (``Trial.set_ray_actor``) before the actor's ``reset`` to
    the trial's config, so it is the previous trial's (its id, its config). A run interrupted before
    the trial's first report ended with that: ``Result.config`` named the previous trial's config.
    :class:`OwnPlaceholder` at the run's end gives the trial its own id and config. Paced by the
    actor's task order (placeholder, then reset), not by time."""
    cls = _reusable()
    tune.register_trainable("raytune_opt_reusable", cls)
    actor = ray_local.remote(num_cpus=0)(cls).remote(config={"mom": 0.5})  # the previous trial's actor
    try:
        trial = Trial("raytune_opt_reusable", config={"mom": 0.0}, trial_id="00002", stub=True)
        trial.set_ray_actor(actor)
        assert ray_local.get(actor.reset.remote({"mom": 0.0}))
        stale = dict(trial.last_result)
        assert stale["config"] == {"mom": 0.5} and stale["trial_id"] != "00002"  # Ray's, as it is
        trial_logs.OwnPlaceholder().on_experiment_end(trials=[trial])
        assert trial.last_result["config"] == {"mom": 0.0} and trial.last_result["trial_id"] == "00002"
        assert trial.last_result["pid"] == stale["pid"]  # the rest of Ray's placeholder kept
        result = tune.Result(metrics=trial.last_result, checkpoint=None, error=None, path="")
        assert result.config == {"mom": 0.0}
    finally:
        ray_local.kill(actor)


def test_a_trial_that_reported_keeps_its_last_result(ray_local) -> None:
    tune.register_trainable("raytune_opt_reusable", _reusable())
    trial = Trial("raytune_opt_reusable", config={"mom": 0.0}, trial_id="00003", stub=True)
    trial.update_last_result({"loss": 0.5, "config": {"mom": 0.0}, "trial_id": "00003"})
    trial_logs.OwnPlaceholder().on_experiment_end(trials=[trial])
    assert trial.last_result == {"loss": 0.5, "config": {"mom": 0.0}, "trial_id": "00003"}
