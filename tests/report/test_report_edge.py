"""Reports of hand-built experiment directories (Ray Tune's layout, no Ray): trials without reports,
all trials diverged, a single trial, the optimizer-aware space, raw Tune dirs and bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from raytune_opt import report
from raytune_opt.errors import ConfigError
from raytune_opt.report.params import is_log_range, own_params, searched_params

ALL_FILES = {
    "summary.json",
    "trials.csv",
    "best_so_far.png",
    "learning_curves.png",
    "hyperparameters.png",
    "history.png",
    "importances.png",
    "parallel_coordinates.png",
    "slices.png",
    "contours.png",
    "report.md",
    "report.html",
}


def _info(metric: str = "val_loss", mode: str = "min", finished: bool = True, **extra) -> dict:
    return {
        "name": "edge",
        "strategy": "asha",
        "metric": metric,
        "mode": mode,
        "started_at": 1000.0,
        "finished_at": 1100.0 if finished else None,
        "wall_s": 100.0 if finished else None,
        **extra,
    }


def _trial(
    exp: Path,
    n: int,
    config: dict,
    values: list[float],
    metric: str = "val_loss",
    error: str | None = None,
    diverged_at: int | None = None,
    t0: float = 1000.0,
    tid: str | None = None,
) -> str:
    """A trial folder as Tune writes it: params.json, one result.json line per value (epoch = 1 s)."""
    tid = tid or f"abcde_{n:05d}"
    folder = exp / f"fn_{tid}_{n}_x={n}_2026-01-01_00-00-00"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(config))
    with open(folder / "result.json", "w") as f:
        for i, v in enumerate(values, start=1):
            row = {
                metric: v,
                "diverged": diverged_at == i,
                "training_iteration": i,
                "time_total_s": float(i),
                "timestamp": int(t0 + i),
                "trial_id": tid,
                "node_ip": "10.0.0.1",
                "config": config,
            }
            f.write(json.dumps(row) + "\n")  # json writes NaN and Infinity, as Ray does
    if error is not None:
        (folder / "error.txt").write_text(f"Failure # 1\nTraceback ...\n{error}\n")
    return tid


def _write(exp: Path, info: dict | None) -> None:
    exp.mkdir(parents=True, exist_ok=True)
    if info is not None:
        (exp / "experiment.json").write_text(json.dumps(info))


def _check_images(paths: dict[str, Path]) -> None:
    for key, p in paths.items():
        if p.suffix == ".png":
            img = mpimg.imread(p)
            assert img.shape[0] > 200 and img.shape[1] > 200, key


def test_trials_that_never_reported_and_a_running_experiment(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _write(exp, _info(finished=False))
    for n in range(3):
        folder = exp / f"fn_abcde_{n:05d}_{n}_2026-01-01_00-00-00"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({"optimizer": "adamw", "lr": 10.0**-n}))
    results = report.load(exp)
    assert list(results.trials["status"]) == ["unfinished"] * 3
    assert list(results.trials["trial_id"]) == [f"abcde_{n:05d}" for n in range(3)]
    assert results.history.empty and results.best is None and results.wall_s is None
    paths = report.write(exp)
    assert set(paths) == ALL_FILES
    _check_images(paths)
    summary = json.loads(paths["summary.json"].read_text())
    assert summary["best_metric"] is None and summary["best_config"] is None
    assert summary["trials"] == {
        "total": 3,
        "finished": 0,
        "stopped": 0,
        "failed": 0,
        "diverged": 0,
        "unfinished": 3,
    }
    assert summary["trial_seconds"] == 0.0
    assert "No trial reported a finite val_loss" in paths["report.md"].read_text()


def test_a_folder_no_saved_tune_state_mentions_is_unfinished(tmp_path: Path) -> None:
    """A driver killed between two saves of Tune's state leaves a trial folder the state never lists:
    a resumed run samples a replacement, so that folder's trial is kept (its reports are on disk) but
    never counted as finished; Ray's 8-hex trial ids are read from folder names."""
    exp = tmp_path / "exp"
    _write(exp, _info())
    listed = _trial(exp, 0, {"optimizer": "sgd", "lr": 0.1}, [0.9, 0.5])
    orphan = _trial(exp, 1, {"optimizer": "sgd", "lr": 0.2}, [0.8, 0.4])
    folders = {p.name: p for p in exp.iterdir() if p.is_dir()}
    name = next(n for n in folders if listed in n)
    info = {"relative_logdir": name, "status": "TERMINATED", "trial_id": listed, "config": {}}
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": [[json.dumps(info), json.dumps({"start_time": 1000.0})]]})
    )
    bare = exp / "raytune_opt_trial_de284987_4_adam_lr=0.1_2026-01-01_00-00-00"
    bare.mkdir()
    (bare / "params.json").write_text(json.dumps({"optimizer": "adam", "lr": 0.1}))
    results = report.load(exp)
    status = dict(zip(results.trials["trial_id"], results.trials["status"], strict=True))
    assert status == {listed: "finished", orphan: "unfinished", "de284987": "unfinished"}
    assert set(results.history["trial_id"]) == {listed, orphan}


@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "json-string"])
def test_trial_ids_that_look_like_numbers_stay_text(tmp_path: Path, encoded: bool) -> None:
    """Ray 2.60's 8-hex trial ids such as ``6e149211`` (inf as a float) and ``12345678`` stay text,
    from Tune's state (plain, or JSON-encoded strings) to trials.csv."""
    exp = tmp_path / "exp"
    _write(exp, _info())
    ids = ["12345678", "6e149211"]  # sorted
    data = []
    for n, tid in enumerate(ids):
        _trial(exp, n, {"optimizer": "sgd", "lr": 0.1 * (n + 1)}, [0.9, 0.5 - 0.1 * n], tid=tid)
        name = next(p.name for p in exp.iterdir() if p.is_dir() and tid in p.name)
        info = {"relative_logdir": name, "status": "TERMINATED", "trial_id": tid, "config": {}}
        if encoded:
            info = {k: json.dumps(v) for k, v in info.items()}
        data.append([json.dumps(info), json.dumps({"start_time": 1000.0})])
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": data}))
    results = report.load(exp)
    assert sorted(results.trials["trial_id"]) == ids and set(results.trials["status"]) == {"finished"}
    assert results.best["trial_id"] == "6e149211"  # val_loss 0.4
    paths = report.write(exp, out=tmp_path / "out")
    with open(paths["trials.csv"], newline="") as f:
        assert sorted(r["trial_id"] for r in csv.DictReader(f)) == ids


def test_every_trial_diverged_or_failed(tmp_path: Path) -> None:
    """NaN and inf values never win; with no healthy trial the best finite report of any trial is kept."""
    exp = tmp_path / "exp"
    _write(exp, _info())
    a = _trial(exp, 0, {"optimizer": "sgd", "lr": 1.0}, [0.9, 0.7, math.inf], diverged_at=3)
    b = _trial(exp, 1, {"optimizer": "sgd", "lr": 10.0}, [math.nan])
    c = _trial(exp, 2, {"optimizer": "sgd", "lr": 100.0}, [0.8], error="ValueError: boom")
    results = report.load(exp)
    status = dict(zip(results.trials["trial_id"], results.trials["status"], strict=True))
    assert status == {a: "diverged", b: "diverged", c: "failed"}
    assert results.best is not None and results.best["trial_id"] == a and results.best["value"] == 0.7
    assert results.trials.set_index("trial_id").loc[c, "error"] == "ValueError: boom"
    paths = report.write(exp, out=tmp_path / "out")
    _check_images(paths)
    with open(paths["trials.csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["val_loss"] for r in rows] == ["inf", "", "0.8"]  # last values as reported (NaN empty)
    summary = json.loads(paths["summary.json"].read_text())
    assert summary["trials"]["diverged"] == 2 and summary["trials"]["failed"] == 1
    assert summary["wall_s"] == 100.0 and summary["trial_seconds"] == 3.0 + 1.0 + 1.0
    assert "## Failed trials" in paths["report.md"].read_text()


def test_single_trial(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _write(exp, _info(metric="val_accuracy", mode="max"))
    tid = _trial(exp, 0, {"optimizer": "lion", "lion.lr": 1e-4}, [0.5, 0.75, 0.7], metric="val_accuracy")
    results = report.load(exp)
    assert results.best == {
        "trial_id": tid,
        "config": {"optimizer": "lion", "lion.lr": 1e-4},
        "metric": "val_accuracy",
        "value": 0.75,
        "val_accuracy": 0.75,
    }
    assert results.trials.loc[0, "best_val_accuracy"] == 0.75 and results.trials.loc[0, "val_accuracy"] == 0.7
    assert searched_params(results.trials) == []
    paths = report.write(exp)
    assert set(paths) == ALL_FILES  # one optimizer: no optimizers.png
    _check_images(paths)
    curve = results.best_so_far()
    assert list(curve["wall_s"]) == [1.0, 2.0, 3.0] and list(curve["best"]) == [0.5, 0.75, 0.75]


def test_best_so_far_carries_the_best_over_reports_that_do_not_count(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _write(exp, _info())
    _trial(exp, 0, {"lr": 0.1}, [0.5, 0.3], t0=1000.0)  # reports at 1001, 1002
    _trial(exp, 1, {"lr": 9.0}, [0.9, math.nan], t0=1002.0)  # 1003, then NaN at 1004: diverged
    _trial(exp, 2, {"lr": 0.2}, [0.1], t0=1004.0, error="RuntimeError: x")  # 1005: failed, not counted
    curve = report.load(exp).best_so_far()
    assert list(curve["wall_s"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert list(curve["best"]) == [0.5, 0.3, 0.3, 0.3, 0.3]
    assert list(curve["trial_seconds"]) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_optimizer_aware_space(tmp_path: Path) -> None:
    """``<opt>.<hp>`` keys belong to their optimizer's trials; a range over > 2 decades gets a log axis."""
    exp = tmp_path / "exp"
    _write(exp, _info())
    configs = [
        {"optimizer": "lion", "lion.lr": 1e-5, "lion.beta1": 0.9},
        {"optimizer": "lion", "lion.lr": 3e-3, "lion.beta1": 0.95},
        {"optimizer": "adamw", "adamw.lr": 1e-3, "adamw.weight_decay": 0.01},
        {"optimizer": "adamw", "adamw.lr": 2e-3, "adamw.weight_decay": 0.1},
        {"optimizer": "momentum", "momentum.lr": 0.1, "momentum.momentum": 0.9},
    ]
    for n, (cfg, v) in enumerate(zip(configs, [0.5, 0.3, 0.4, 0.2, 0.6], strict=True)):
        _trial(exp, n, cfg, [v + 0.1, v])
    results = report.load(exp)
    params = {p.name: p for p in searched_params(results.trials)}
    # momentum.* has one trial: nothing varies; adamw.lr spans 2x, lion.lr 300x
    assert set(params) == {"lion.lr", "lion.beta1", "adamw.lr", "adamw.weight_decay"}
    assert params["lion.lr"].log and params["lion.lr"].optimizer == "lion"
    assert not params["adamw.lr"].log and not params["lion.beta1"].log
    row = results.trials.iloc[0]  # a lion trial: its own values, prefix dropped
    assert own_params(row, list(params.values())) == {"beta1": 0.9, "lr": 1e-5}
    paths = report.write(exp)
    assert set(paths) == ALL_FILES | {"optimizers.png"}
    _check_images(paths)
    md = paths["report.md"].read_text()
    assert "| adamw " in md and "| momentum " in md and "lr=0.002, weight_decay=0.1" in md
    lines = report.table(exp).splitlines()  # a directory will do
    assert "abcde_00003" in lines[2]  # 0.2, the lowest val_loss
    assert [r["optimizer"] for _, r in report.tables.optimizer_stats(results).iterrows()] == [
        "adamw",
        "lion",
        "momentum",
    ]


def test_raw_tune_dir_and_bad_input(tmp_path: Path) -> None:
    exp = tmp_path / "raw"
    _write(exp, None)  # no experiment.json: metric and mode must be given
    tid = _trial(exp, 0, {"lr": 0.1}, [1.0, 0.5])
    with (exp / next(p.name for p in exp.iterdir()) / "result.json").open("a") as f:
        f.write('{"val_loss": 0.1, "trainin')  # a running trial's half-written line
    _trial(exp, 1, {"lr": 0.2}, [0.8], error="RuntimeError: crashed")
    with pytest.raises(ConfigError, match="metric and mode"):
        report.load(exp)
    with pytest.raises(ConfigError, match="mode"):
        report.load(exp, metric="val_loss")
    with pytest.raises(ConfigError, match="mode = 'avg'"):
        report.load(exp, metric="val_loss", mode="avg")
    with pytest.raises(ConfigError, match="'accuracy' is not known"):
        report.load(exp, metric="accuracy", mode="max")
    with pytest.raises(ConfigError, match="exp_dir"):
        report.load(tmp_path / "missing", metric="val_loss", mode="min")
    results = report.load(exp, metric="val_loss", mode="min")
    assert list(results.trials["status"]) == ["finished", "failed"]
    assert results.best["trial_id"] == tid and results.best["value"] == 0.5
    assert results.wall_s == 2.0 and results.summary()["strategy"] is None


def test_progress_csv_is_read_when_result_json_is_missing(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _write(exp, _info())
    _trial(exp, 0, {"lr": 0.1}, [1.0, 0.25, 0.5])
    folder = next(exp.glob("fn_*"))
    rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
    (folder / "result.json").unlink()
    for row in rows:
        row["trial_id"] = "61137e65"  # a Ray 2.60 id that float() would take for 6.1137e69
    with open(folder / "progress.csv", "w", newline="") as f:
        keys = [k for k in rows[0] if k != "config"]
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    results = report.load(exp)
    assert results.best["value"] == 0.25 and int(results.trials.loc[0, "iterations"]) == 3
    assert results.trials.loc[0, "config/lr"] == 0.1  # from params.json
    assert list(results.trials["trial_id"]) == ["61137e65"]
    assert set(results.history["trial_id"]) == {"61137e65"}


def test_log_range() -> None:
    assert is_log_range([1e-5, 1e-3, 2e-3])
    assert not is_log_range([1e-3, 1e-1])  # exactly two decades: linear
    assert not is_log_range([-1.0, 1000.0]) and not is_log_range([5.0]) and not is_log_range([math.nan, 1.0])


def test_epochs_run_again_after_a_resume_count_once(tmp_path: Path) -> None:
    """A trial resumed from a checkpoint older than its last report runs those epochs again: Tune
    appends them to result.json, and the report keeps each iteration once (the re-run's value)."""
    exp = tmp_path / "edge"
    _write(exp, _info())
    tid = _trial(exp, 0, {"optimizer": "adam", "lr": 0.1}, [0.9, 0.8, 0.7, 0.6])
    result = next(exp.glob("*/result.json"))
    rows = [json.loads(x) for x in result.read_text().splitlines()]
    rerun = [{**r, "val_loss": r["val_loss"] - 0.05} for r in rows[2:]]  # iterations 3, 4 again
    rerun.append({**rows[-1], "training_iteration": 5, "val_loss": 0.5})
    with open(result, "a") as f:
        for r in rerun:
            f.write(json.dumps(r) + "\n")
    results = report.load(exp)
    curve = results.history[results.history["trial_id"] == tid]
    assert list(curve["training_iteration"]) == [1, 2, 3, 4, 5]
    assert list(curve["val_loss"]) == pytest.approx([0.9, 0.8, 0.65, 0.55, 0.5])
    assert int(results.trials.set_index("trial_id").loc[tid, "iterations"]) == 5
