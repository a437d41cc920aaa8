"""The report of a real Ray Tune experiment: 4 digits-mlp trials (adam and sgd), one that crashes
and one that reports NaN, all in one experiment directory; checked against Ray's ResultGrid."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import pytest
import torch
from ray import tune

from raytune_opt import report
from raytune_opt.errors import ConfigError
from raytune_opt.train import TuneSession, train_loop, trainable

METRIC, MODE = "val_accuracy", "max"


@pytest.fixture(scope="module")
def experiment(ray_local, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, float]:
    """One Tune experiment: 4 real training trials (raytune_opt's loop, as ``train.trainable`` runs
    it, 2 per optimizer), one that crashes after an excellent report and one that reports NaN."""

    def trial(config: dict) -> None:  # defined here: pickled by value for the workers
        if config["case"] == "odd" and config["optimizer"] == "adam":
            tune.report({"val_accuracy": 0.99, "diverged": False})
            raise RuntimeError("the task crashed on purpose")
        if config["case"] == "odd":
            tune.report({"val_accuracy": float("nan"), "val_loss": float("nan")})
            return
        train_loop({k: v for k, v in config.items() if k != "case"}, TuneSession())

    space = {
        "task": "digits-mlp",
        "task_args": {"hidden": 16},
        "optimizer": tune.grid_search(["adam", "sgd"]),
        "lr": tune.loguniform(1e-4, 1e-1),
        "epochs": 2,
        "batch_size": 128,
        "seed": 0,
    }
    trainable(space)  # validates the space, as the runner does
    storage = tmp_path_factory.mktemp("report")
    started = time.time()
    grid = tune.Tuner(
        trial,
        param_space={**space, "case": tune.grid_search(["train", "train", "odd"])},  # 6 trials
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), name="exp", verbose=0),
    ).fit()
    exp_dir = storage / "exp"
    info = {
        "name": "exp",
        "strategy": "random",
        "metric": METRIC,
        "mode": MODE,
        "optimizers": ["adam", "sgd"],
        "optimizer_searched": True,
        "num_samples": 4,
        "max_t": 2,
        "started_at": started,
        "finished_at": None,  # as if still running: statuses must come from Tune's own state
        "wall_s": None,
        "experiment": {"name": "exp"},
    }
    (exp_dir / "experiment.json").write_text(json.dumps(info))
    return exp_dir, list(grid), started


def _expected_status(result) -> str:
    if result.error is not None:
        return "failed"
    df = result.metrics_dataframe
    flagged = "diverged" in df and df["diverged"].fillna(False).astype(bool).any()
    if flagged or not math.isfinite(df[METRIC].iloc[-1]):
        return "diverged"
    return "finished"


def test_write_produces_every_file_agreeing_with_ray(experiment, tmp_path: Path) -> None:
    exp_dir, grid, started = experiment
    paths = report.write(exp_dir, out=tmp_path / "out")
    figures = {"best_so_far.png", "learning_curves.png", "hyperparameters.png", "optimizers.png"}
    figures |= {"history.png", "importances.png", "parallel_coordinates.png", "slices.png", "contours.png"}
    assert set(paths) == figures | {"summary.json", "trials.csv", "report.md", "report.html"}
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in paths.values())

    # trials.csv: one row per trial, the status Ray's ResultGrid implies
    with open(paths["trials.csv"], newline="") as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    assert len(rows) == len(grid) == 6
    by_id = {r.metrics["trial_id"]: r for r in grid}
    expected = {tid: _expected_status(r) for tid, r in by_id.items()}
    assert {tid: rows[tid]["status"] for tid in by_id} == expected
    assert sorted(r["status"] for r in rows.values()) == ["diverged", "failed"] + ["finished"] * 4
    for tid, r in by_id.items():
        assert int(rows[tid]["iterations"]) == r.metrics["training_iteration"]
        assert rows[tid]["config/optimizer"] == r.config["optimizer"]
    assert "the task crashed on purpose" in next(r["error"] for r in rows.values() if r["status"] == "failed")

    # summary.json: the best of the trials that neither failed nor diverged (the crashed trial's 0.99 not
    # counted), counts, and the compute used
    summary = json.loads(paths["summary.json"].read_text())
    healthy = [r for r in grid if _expected_status(r) == "finished"]
    best = max(healthy, key=lambda r: r.metrics_dataframe[METRIC].max())
    assert summary["best_metric"] == pytest.approx(best.metrics_dataframe[METRIC].max(), rel=1e-12)
    assert summary["best_trial_id"] == best.metrics["trial_id"]
    assert summary["best_config"] == best.config
    assert summary["trials"] == {
        "total": 6,
        "finished": 4,
        "stopped": 0,
        "failed": 1,
        "diverged": 1,
        "unfinished": 0,
    }
    assert (summary["strategy"], summary["metric"], summary["mode"]) == ("random", METRIC, MODE)
    assert summary["trial_seconds"] == pytest.approx(sum(r.metrics["time_total_s"] for r in grid), rel=1e-9)
    assert summary["wall_s"] == pytest.approx(max(r.metrics["timestamp"] for r in grid) - started, abs=1e-6)

    # the figures are real images; report.md links them and names the best trial
    import matplotlib.image as mpimg

    for key in figures:
        img = mpimg.imread(paths[key])
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500, key
        assert img[..., :3].std() > 0.01, key  # not blank
    md = paths["report.md"].read_text()
    for name in figures:
        assert f"({name})" in md
    assert best.metrics["trial_id"] in md and "| adam" in md and "| sgd" in md


def test_results_hold_every_report_and_rank_like_ray(experiment) -> None:
    exp_dir, grid, _ = experiment
    results = report.load(exp_dir)
    by_id = {r.metrics["trial_id"]: r for r in grid}
    counts = results.history.groupby("trial_id").size().to_dict()
    assert counts == {tid: len(r.metrics_dataframe) for tid, r in by_id.items()}
    for tid, r in by_id.items():
        ours = results.history.loc[results.history["trial_id"] == tid, METRIC].to_numpy()
        torch.testing.assert_close(
            torch.tensor(ours), torch.tensor(r.metrics_dataframe[METRIC].to_numpy()), equal_nan=True
        )
    healthy = [r for r in grid if _expected_status(r) == "finished"]
    ray_best = max(healthy, key=lambda r: r.metrics_dataframe[METRIC].max())
    assert results.best["trial_id"] == ray_best.metrics["trial_id"]
    assert results.best["value"] == results.best[METRIC] == ray_best.metrics_dataframe[METRIC].max()

    # running best ends at the best, compute ends at the trial-seconds; both never go backwards
    curve = results.best_so_far()
    assert len(curve) == len(results.history)
    assert curve["best"].iloc[-1] == results.best["value"]
    assert curve["best"].dropna().is_monotonic_increasing and curve["trial_seconds"].is_monotonic_increasing
    assert curve["trial_seconds"].iloc[-1] == pytest.approx(results.trial_seconds, rel=1e-12)

    # the printed table: best first, 3 data lines
    lines = report.table(results, top=3).splitlines()
    assert len(lines) == 2 + 3 and ray_best.metrics["trial_id"] in lines[2]
    assert "lr=" in lines[2] and "epochs=" not in lines[2]  # the trial's searched values, not fixed ones


def test_metric_and_mode_can_be_given_and_are_checked(experiment) -> None:
    exp_dir, grid, _ = experiment
    by_loss = report.load(exp_dir, metric="val_loss", mode="min")
    healthy = [r for r in grid if _expected_status(r) == "finished"]
    assert by_loss.best["value"] == min(r.metrics_dataframe["val_loss"].min() for r in healthy)
    with pytest.raises(ConfigError, match="val_acuracy.*did you mean 'val_accuracy'"):
        report.load(exp_dir, metric="val_acuracy")
    with pytest.raises(ConfigError, match="mode = 'maximum'"):
        report.load(exp_dir, mode="maximum")
