"""Several objectives (``search.metric: [val_accuracy, time_total_s]``, ``mode: [max, min]``): the
checks before Ray starts, the searcher Ray's OptunaSearch gets, and a tiny real NSGA-II run whose
report writes the Pareto front (pareto.csv, pareto.png, the summary the CLI prints)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raytune_opt import Experiment
from raytune_opt.errors import ConfigError
from raytune_opt.report.pareto import pareto_mask

HAS_OPTUNA = importlib.util.find_spec("optuna") is not None
METRICS, MODES = ["val_accuracy", "time_total_s"], ["max", "min"]


def _raw(tmp_path: Path, train: dict | None = None, **search) -> dict:
    return {
        "name": "multi",
        "task": {"name": "digits-mlp", "args": {"hidden": 8}},
        "train": {"epochs": 1, "batch_size": 256, **(train or {})},
        "search": {
            "strategy": "optuna-nsga2",
            "optimizers": ["adamw"],
            "num_samples": 4,
            "metric": METRICS,
            "mode": MODES,
            **search,
        },
        "run": {"storage_path": str(tmp_path / "results")},
    }


@pytest.mark.parametrize(
    ("search", "match"),
    [
        ({"mode": "max"}, r"search\.mode: .*a list of 2 modes"),
        ({"mode": ["max"]}, r"search\.mode: .*a list of 2 modes"),
        ({"metric": "val_accuracy", "mode": ["max", "min"]}, r"search\.mode: .*with one metric"),
        ({"metric": ["val_accuracy", "val_accuracy"]}, r"search\.metric: .*distinct"),
        ({"metric": ["val_accuracy", "nope"]}, r"search\.metric\[1\]: .*'nope' is not known"),
        ({"strategy": "asha"}, r"search\.strategy: strategy = 'asha'.*stops trials early.*optuna-nsga2"),
        ({"strategy": "hyperband"}, r"search\.strategy: strategy = 'hyperband'.*stops trials early"),
        ({"strategy": "pbt"}, r"search\.strategy: strategy = 'pbt'.*clones the best trials"),
        ({"strategy": "bo"}, r"search\.strategy: strategy = 'bo'.*models one objective.*random"),
        ({"strategy": "optuna-gp"}, r"strategy = 'optuna-gp'.*models one objective"),
        ({"compare": "optimizers", "optimizers": ["adamw", "sgd"]}, r"search\.compare: .*one test metric"),
    ],
)
def test_bad_objectives_are_one_located_error(tmp_path, search, match) -> None:
    with pytest.raises(ConfigError, match=match):
        Experiment.from_dict(_raw(tmp_path, **search))
    assert not (tmp_path / "results").exists()


def test_the_optuna_journal_takes_one_objective(tmp_path) -> None:
    raw = _raw(tmp_path)
    raw["run"]["optuna_journal"] = True
    with pytest.raises(ConfigError, match=r"run\.optuna_journal: .*one direction"):
        Experiment.from_dict(raw)


@pytest.mark.parametrize(
    "strategy", ["random", "grid", *(["optuna-tpe", "optuna-nsga2"] if HAS_OPTUNA else [])]
)
def test_the_strategies_that_take_several_objectives(tmp_path, strategy) -> None:
    plan = Experiment.from_dict(_raw(tmp_path, strategy=strategy)).plan()
    assert plan.multi_objective and plan.metrics == tuple(METRICS) and plan.modes == tuple(MODES)
    assert (plan.metric, plan.mode) == ("val_accuracy", "max")  # Tune's own config: the first
    assert "val_accuracy (max) and time_total_s (min): their Pareto front" in str(plan)
    config = plan.tune_config()
    assert (config.metric, config.mode) == ("val_accuracy", "max")


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna is not installed")
def test_optuna_search_gets_every_objective(tmp_path) -> None:
    import optuna

    search = Experiment.from_dict(_raw(tmp_path)).plan().tune_config().search_alg
    search.set_search_properties("val_accuracy", "max", {})  # what Tune passes: the first only
    assert search._metric == METRICS and search._mode == MODES
    inner = search.inner
    assert inner._metric == METRICS and inner._mode == MODES
    assert inner._ot_study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    # a diverged report is penalized per objective before the study sees it
    clean = search._sanitize({"val_accuracy": 0.5, "time_total_s": 2.0})
    bad = search._sanitize({"val_accuracy": float("nan"), "time_total_s": float("inf")})
    assert clean == {"val_accuracy": 0.5, "time_total_s": 2.0}
    assert bad["val_accuracy"] < 0.5 and bad["time_total_s"] > 2.0
    assert np.isfinite([bad["val_accuracy"], bad["time_total_s"]]).all()


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna is not installed")
def test_a_tiny_nsga2_run_writes_its_pareto_front(ray_local, tmp_path, capsys) -> None:
    from raytune_opt.cli import main

    no_checkpoints = {"checkpoint_every": 0, "checkpoint_at_end": False}  # the cheapest trials
    exp = Experiment.from_dict(
        _raw(tmp_path, train=no_checkpoints, num_samples=5, options={"population_size": 2})
    )
    result = exp.run(progress=False, report=True)
    assert len(result.grid) == 5 and not result.grid.errors
    folder = result.path
    assert {"pareto.csv", "pareto.png"} <= set(result.files)
    assert (folder / "pareto.png").stat().st_size > 0
    trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
    front = pd.read_csv(folder / "pareto.csv", dtype={"trial_id": str})
    assert list(front.columns[:3]) == ["trial_id", *METRICS]
    ended = trials[trials["status"] == "finished"]
    assert len(ended) == 5
    # the front is exactly the non-dominated trials of trials.csv (final values), by brute force
    values = ended[METRICS].to_numpy(dtype=float)
    expected = set(ended["trial_id"][pareto_mask(values, MODES)])
    assert set(front["trial_id"]) == expected and len(front) >= 1
    for _, a in front.iterrows():
        for _, b in ended.iterrows():
            no_worse = b["val_accuracy"] >= a["val_accuracy"] and b["time_total_s"] <= a["time_total_s"]
            better = b["val_accuracy"] > a["val_accuracy"] or b["time_total_s"] < a["time_total_s"]
            assert not (no_worse and better), f"{b['trial_id']} dominates {a['trial_id']}"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["objectives"] == [
        {"metric": "val_accuracy", "mode": "max"},
        {"metric": "time_total_s", "mode": "min"},
    ]
    assert set(summary["pareto_trial_ids"]) == expected
    assert "## Pareto front" in (folder / "report.md").read_text()
    # report.html: the front first, interactive, its points exactly the front's trials
    from raytune_opt.report import load
    from raytune_opt.report.html import figures

    page = (folder / "report.html").read_text()
    title = f"Pareto front over val_accuracy × time_total_s: {len(front)} of 5 ended trials"
    assert f"<h2>{title}</h2>" in page and page.index(title) < page.index("Optimization history")
    views = figures(load(folder))
    assert next(iter(views)) == title
    rest_trace, front_trace, stairs = views[title].data
    points = zip(front_trace.text, front_trace.x, front_trace.y, strict=True)
    on_front = {t.split()[1]: (x, y) for t, x, y in points}
    assert set(on_front) == expected
    for _, r in front.iterrows():
        assert on_front[r["trial_id"]] == pytest.approx((r["val_accuracy"], r["time_total_s"]))
    assert len(rest_trace.x) == 5 - len(front) and len(stairs.x) == len(front)
    state = json.loads((folder / "experiment.json").read_text())
    assert state["metrics"] == METRICS and state["modes"] == MODES

    # the study Ray's OptunaSearch kept (our SpaceAdapter's saved state): both values of every trial
    from ray import cloudpickle

    (saved,) = folder.glob("searcher-state-*.pkl")
    study = cloudpickle.loads(saved.read_bytes())["inner"]._ot_study
    told = sorted(tuple(t.values) for t in study.trials)
    assert told == sorted(tuple(v) for v in ended[METRICS].to_numpy(dtype=float).tolist())

    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Pareto front over val_accuracy (max), time_total_s (min)" in out
    assert all(t in out for t in expected)
