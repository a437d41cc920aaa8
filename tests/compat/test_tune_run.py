"""The Ray Tune internals the experiment runner uses (``raytune_opt._compat.tune_run``) exist in the
installed Ray and behave as the shims assume: this fails loudly when one moves."""

from __future__ import annotations

import os

from ray import tune
from ray.tune.experiment import Trial

from raytune_opt._compat import tune_run


def test_trial_has_the_actor_handle_the_watchdog_kills():
    trial = Trial("noop", config={}, stub=True)
    assert hasattr(trial, "temporary_state") and hasattr(trial.temporary_state, "ray_actor")
    assert trial.temporary_state.ray_actor is None
    assert tune_run.kill_trial_actor(trial) is False  # no actor: nothing to stop


def test_result_grid_carries_its_trials_with_status(ray_local, tmp_path):
    def noop(config):
        tune.report({"x": config["x"]})

    grid = tune.Tuner(
        noop,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="compat", verbose=0),
    ).fit()
    trials = tune_run.result_grid_trials(grid)
    assert len(trials) == 2 and {t.status for t in trials} == {"TERMINATED"}


def test_tune_switches_are_set_while_fitting_and_restored():
    os.environ.pop("TUNE_GLOBAL_CHECKPOINT_S", None)
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "0"
    with tune_run.tune_quiet_run():
        assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == str(tune_run.STATE_PERIOD_S)
    assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "0"
    assert "TUNE_GLOBAL_CHECKPOINT_S" not in os.environ
    os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    # the names Tune reads them under
    import inspect

    import ray.tune.execution.tune_controller as controller

    assert "TUNE_GLOBAL_CHECKPOINT_S" in inspect.getsource(controller)
