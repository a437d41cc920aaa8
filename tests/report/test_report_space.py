"""The report reads the search space stored in experiment.json (domains, log scales, conditions),
compares optimizers at equal fidelity, and adds the Optuna-style views and report.html."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from raytune_opt import report
from raytune_opt.report import analysis
from raytune_opt.report.params import searched_params

SPACE = {"batch_size": {"choice": [128, 512]}, "seed": 0}


def _info(optimizers: list[str], space: dict, max_t: int = 3, imports: list | None = None) -> dict:
    search = {"strategy": "bohb", "optimizers": optimizers, "space": space, "max_t": max_t}
    return {
        "name": "space",
        "strategy": "bohb",
        "metric": "val_accuracy",
        "mode": "max",
        "max_t": max_t,
        "started_at": 1000.0,
        "finished_at": 1100.0,
        "wall_s": 100.0,
        "experiment": {
            "name": "space",
            "imports": imports or [],
            "task": {"name": "digits-mlp"},
            "search": search,
        },
    }


def _trial(exp: Path, n: int, config: dict, values: list[float]) -> str:
    tid = f"abcde_{n:05d}"
    folder = exp / f"fn_{tid}_{n}_2026-01-01_00-00-00"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(config))
    with open(folder / "result.json", "w") as f:
        for i, v in enumerate(values, start=1):
            row = {"val_accuracy": v, "training_iteration": i, "time_total_s": float(i), "trial_id": tid,
                   "timestamp": 1000 + 10 * n + i, "config": config}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    return tid


def _experiment(tmp_path: Path) -> Path:
    """sgd (one trial: the best), adamw (lr over 2x only: a guess would draw it linear), and a lion
    trial BOHB stopped after 1 epoch with a value above every full trial's."""
    exp = tmp_path / "space"
    exp.mkdir()
    (exp / "experiment.json").write_text(json.dumps(_info(["sgd", "adamw", "lion"], SPACE)))
    base = {"task": "digits-mlp", "epochs": 3, "seed": 0}
    _trial(exp, 0, {**base, "optimizer": "sgd", "sgd.lr": 0.05, "sgd.weight_decay": 1e-4, "batch_size": 512},
           [0.5, 0.8, 0.9])  # fmt: skip
    for n, lr in ((1, 1e-3), (2, 2e-3)):
        cfg = {**base, "optimizer": "adamw", "adamw.lr": lr, "adamw.weight_decay": 0.01,
               "adamw.betas": [0.9, 0.999], "batch_size": 128}  # fmt: skip
        _trial(exp, n, cfg, [0.4, 0.6, 0.7 + n / 100])
    cfg = {**base, "optimizer": "lion", "lion.lr": 1e-4, "lion.weight_decay": 0.1, "lion.betas": [0.9, 0.99],
           "batch_size": 128}  # fmt: skip
    _trial(exp, 3, cfg, [0.95])
    return exp


def test_params_come_from_the_stored_space(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    results = report.load(exp)
    assert results.space is not None
    params = {p.name: p for p in results.params}
    # every searched domain, however few trials drew it; the fixed seed and the optimizer key are not
    assert set(params) == {
        "batch_size", "sgd.lr", "sgd.weight_decay", "adamw.lr", "adamw.betas", "adamw.weight_decay",
        "lion.lr", "lion.betas", "lion.weight_decay",
    }  # fmt: skip
    # log-uniform from the space, although adamw's two lrs span only 2x (the old guess: linear)
    assert params["adamw.lr"].log and (params["adamw.lr"].low, params["adamw.lr"].high) == (1e-4, 1e-2)
    assert not {p.name: p for p in searched_params(results.trials)}["adamw.lr"].log
    assert params["sgd.lr"].when == ("optimizer", ("sgd",)) and params["sgd.lr"].optimizer == "sgd"
    assert not params["batch_size"].numeric and params["batch_size"].optimizer is None
    # the only sgd trial is listed with its lr: searched from the space, not from 2 distinct values
    first = next(line for line in report.table(results, top=4).splitlines() if "abcde_00000" in line)
    assert (
        "abcde_00000" in first and "sgd.lr" not in first and "lr=0.05" in first and "batch_size=512" in first
    )


def test_optimizers_are_compared_at_equal_fidelity(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    results = report.load(exp)
    assert results.max_t == 3
    assert sorted(results.full_fidelity()["trial_id"]) == ["abcde_00000", "abcde_00001", "abcde_00002"]
    stats = report.tables.optimizer_stats(results).set_index("optimizer")
    assert stats.loc["lion", "best"] == 0.95  # the best any lion trial reached, after 1 epoch
    assert stats.loc["lion", "at_max_t"] == 0 and math.isnan(stats.loc["lion", "median"])
    assert stats.loc["adamw", "at_max_t"] == 2 and stats.loc["adamw", "median"] == pytest.approx(0.715)
    paths = report.write(exp)
    md = paths["report.md"].read_text()
    assert "the 3 of 4 trials that ran max_t = 3 epochs" in md
    assert "trials at max_t=3" in md


def test_views_and_interactive_report(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    paths = report.write(exp)
    for name in ("history.png", "importances.png", "parallel_coordinates.png", "optimizers.png"):
        img = mpimg.imread(paths[name])
        assert img.shape[0] > 200 and img.shape[1] > 400 and img[..., :3].std() > 0.01, name
    page = paths["report.html"].read_text()
    assert "<script src=" not in page and len(page) > 1_000_000  # plotly.js inline: opens offline
    for title in ("Optimization history", "Parallel coordinates", "Slice plots", "Learning curves",
                  "Optimizers at equal fidelity"):  # fmt: skip
        assert title in page
    assert "abcde_00003" in page and "read from the experiment's search space" in page
    hist = analysis.history(report.load(exp))
    assert list(hist["trial_id"]) == [f"abcde_{n:05d}" for n in range(4)]  # start order
    assert list(hist["best"]) == [0.9, 0.9, 0.9, 0.95]


def test_unit_values_follow_the_domain_scale(tmp_path: Path) -> None:
    results = report.load(_experiment(tmp_path))
    params = {p.name: p for p in results.params}
    u = analysis.unit_values(results.trials, params["adamw.lr"])  # log10 over [1e-4, 1e-2]
    assert np.isnan(u[0]) and np.isnan(u[3])  # sgd and lion trials: inactive
    assert u[1] == pytest.approx(0.5) and u[2] == pytest.approx(0.5 + math.log10(2) / 2)


def test_importances_rank_the_parameter_that_drives_the_metric(tmp_path: Path) -> None:
    """40 sgd trials: val_accuracy depends on log10(lr) only; weight_decay and batch_size are noise."""
    exp = tmp_path / "imp"
    exp.mkdir()
    (exp / "experiment.json").write_text(json.dumps(_info(["sgd"], SPACE, max_t=1)))
    rng = np.random.default_rng(0)
    for n in range(40):
        lr = float(10 ** rng.uniform(-3, 0))
        cfg = {"optimizer": "sgd", "sgd.lr": lr, "sgd.weight_decay": float(10 ** rng.uniform(-6, -2)),
               "batch_size": int(rng.choice([128, 512]))}  # fmt: skip
        _trial(exp, n, cfg, [1.0 - (math.log10(lr) + 1.5) ** 2 / 3])
    imp = analysis.importances(report.load(exp))
    assert list(imp.index)[0] == "sgd.lr" and imp["sgd.lr"] > 0.8
    assert imp.sum() == pytest.approx(1.0)


def test_a_space_that_cannot_be_rebuilt_falls_back_to_guessing(tmp_path: Path, caplog) -> None:
    exp = tmp_path / "gone"
    exp.mkdir()
    info = _info(["sgd"], {}, imports=[str(tmp_path / "missing_plugin.py")])
    (exp / "experiment.json").write_text(json.dumps(info))
    for n, lr in enumerate((0.01, 0.02)):
        _trial(exp, n, {"optimizer": "sgd", "sgd.lr": lr}, [0.5 + lr])
    with caplog.at_level(logging.WARNING):
        results = report.load(exp)
    assert results.space is None and "guesses" in caplog.text and "missing_plugin.py" in caplog.text
    assert [p.name for p in results.params] == ["sgd.lr"] and not results.params[0].log
