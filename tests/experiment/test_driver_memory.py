"""DriverMemory: finished trials lose Tune's metric windows (and keep everything a result needs), the
allocator is trimmed every ``every`` finished trials, in a real Tune run."""

from __future__ import annotations

import json

from raytune_opt._compat import ray_tune
from raytune_opt.experiment.driver_memory import DriverMemory, malloc_trim


def test_finished_trials_are_compacted_and_the_allocator_trimmed(ray_local, tmp_path):
    from ray import tune

    def three_reports(config):
        for i in range(3):
            tune.report({"loss": config["x"] * (3 - i)})

    memory = DriverMemory(every=2)
    grid = tune.Tuner(
        three_reports,
        param_space={"x": tune.grid_search([1.0, 2.0, 3.0, 4.0])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="m", callbacks=[memory], verbose=0),
    ).fit()
    assert memory.finished == 4 and memory.trims == (2 if malloc_trim() else 0)
    trials = ray_tune.result_grid_trials(grid)
    for trial in trials:
        meta = trial.run_metadata
        assert dict(meta.metric_n_steps) == {}  # the windows are gone ...
        analysis = meta.metric_analysis["loss"]  # ... the statistics stay
        x = trial.config["x"]
        assert analysis["min"] == x and analysis["max"] == 3 * x and analysis["last-5-avg"] == 2 * x
        json.loads(meta.get_json_state())  # the experiment state still serialises
        meta.update_metric("loss", 0.5, step=4)  # a report after all starts a fresh window
        assert meta.metric_analysis["loss"]["last-5-avg"] == 0.5
    assert grid.get_best_result().config == {"x": 1.0}
    assert sorted(r.metrics["loss"] for r in grid) == [1.0, 2.0, 3.0, 4.0]
