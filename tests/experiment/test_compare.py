"""``search.compare: optimizers`` and ``raytune-opt evaluate`` end to end on the suite's Ray, their
statistics against SciPy, the report's edge flags, and bad input refused before anything runs."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from raytune_opt import Experiment
from raytune_opt.cli import main
from raytune_opt.errors import ConfigError
from raytune_opt.experiment import evaluate
from raytune_opt.report.edges import edge_params, widen
from raytune_opt.report.stats import pairwise_welch, seed_summary
from raytune_opt.tasks import TaskSpec, get_task, register_task

HAS_OPTUNA = importlib.util.find_spec("optuna") is not None

TINY = {
    "name": "cmp",
    "task": "digits-mlp",
    "train": {"epochs": 2, "batch_size": 64, "checkpoint_every": 0},
    "search": {
        "strategy": "random",
        "optimizers": ["adamw", "momentum"],
        "num_samples": 2,
        "compare": "optimizers",
        "compare_seeds": 2,
    },
}


def _experiment(tmp: Path, **search) -> Experiment:
    raw = json.loads(json.dumps(TINY))
    raw["search"].update(search)
    raw["run"] = {"storage_path": str(tmp)}
    return Experiment.from_dict(raw)


@pytest.fixture(scope="module")
def comparison(ray_local, tmp_path_factory):
    """One tiny real comparison: digits-mlp, adamw vs momentum, 2 samples each, 2 epochs, 2 seeds."""
    tmp = tmp_path_factory.mktemp("compare")
    result = _experiment(tmp).run(progress=False, optuna_journal=HAS_OPTUNA)
    return result


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_comparison_files_and_statistics(comparison):
    folder = comparison.path
    for f in ("experiment.json", "comparison.json", "summary.json", "report.md", "tuning_curves.png"):
        assert (folder / f).stat().st_size > 0, f
    for opt in ("adamw", "momentum"):
        sub = folder / opt
        for f in ("experiment.json", "summary.json", "trials.csv", "report.md", "test.json"):
            assert (sub / f).stat().st_size > 0, (opt, f)
        sub_summary = json.loads((sub / "summary.json").read_text())
        # the same budget for each: its own search of num_samples trials, of that optimizer only
        assert sub_summary["trials"]["total"] == 2 and sub_summary["optimizers"] == [opt]
        assert "test" in sub_summary and "edge_params" in sub_summary

    s = json.loads((folder / "summary.json").read_text())
    assert s == comparison.summary
    assert s["compare"] == "optimizers" and s["test_metric"] == "test_accuracy" and s["mode"] == "max"
    ranking = s["ranking"]
    assert [r["rank"] for r in ranking] == [1, 2]
    assert {r["optimizer"] for r in ranking} == {"adamw", "momentum"}
    means = [r["test"]["mean"] for r in ranking]
    assert means == sorted(means, reverse=True)  # best mean test accuracy first
    for r in ranking:
        t = r["test"]
        v = np.array(t["values"])
        assert t["n"] == len(v) == 2 and ((v >= 0) & (v <= 1)).all()
        assert t["mean"] == pytest.approx(v.mean())
        assert t["std"] == pytest.approx(v.std(ddof=1))
        lo, hi = stats.t.interval(0.95, df=len(v) - 1, loc=v.mean(), scale=stats.sem(v))
        assert t["ci"] == pytest.approx([lo, hi])
        assert r["trials"] == 2 and 0 < r["best_val"] <= 1
        # each test value is a whole number of the 359 test digits
        assert np.allclose(v * 359, np.round(v * 359))
    (pair,) = s["pairs"]
    a, b = (next(r["test"]["values"] for r in ranking if r["optimizer"] == n) for n in (pair["a"], pair["b"]))
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert pair["p"] == pytest.approx(ref.pvalue) and pair["t"] == pytest.approx(ref.statistic)
    assert pair["p_holm"] == pytest.approx(ref.pvalue)  # one pair: Holm leaves it as it is
    assert pair["significant"] == (ref.pvalue < 0.05)
    md = (folder / "report.md").read_text()
    assert "Descending through a crowded valley" in md and "Welch" in md and "tuning_curves.png" in md
    for r in ranking:
        assert f"| {r['optimizer']}" in md


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna is not installed")
def test_the_api_options_reach_every_optimizers_search(comparison):
    # Experiment.run(optuna_journal=True) on a comparison: one journal in each optimizer's folder
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    for opt in ("adamw", "momentum"):
        storage = JournalStorage(JournalFileBackend(str(comparison.path / opt / "optuna.journal")))
        (name,) = optuna.get_all_study_names(storage=storage)
        study = optuna.load_study(study_name=name, storage=storage)
        assert len(study.trials) == 2
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        assert all(t.params["optimizer"] == opt for t in study.trials)


def test_seed_zero_retrain_reproduces_the_trial(comparison):
    """Retraining the best configuration with its own train seed (0) gives the trial's final val."""
    for opt in ("adamw", "momentum"):
        sub = comparison.path / opt
        test = json.loads((sub / "test.json").read_text())
        best = json.loads((sub / "summary.json").read_text())
        assert test["seeds"] == [0, 1] and test["source"] == "retrained" and test["split"] == "test"
        assert test["epochs"] == 2 and test["trial_id"] == best["best_trial_id"]
        # best_metric is the trial's best over its 2 epochs, the last one at most that good
        assert test["val"]["values"][0] <= best["best_metric"] + 1e-12


def test_evaluate_one_seed_loads_the_checkpoint_and_keeps_the_folder(comparison, tmp_path, capsys):
    """``raytune-opt evaluate DIR --seeds 1`` on a finished (copied) experiment: the best trial's last
    checkpoint on the test split, equal to retraining seed 0; the trials and Tune's files untouched."""
    sub = tmp_path / "adamw"
    shutil.copytree(comparison.path / "adamw", sub)
    retrained = json.loads((sub / "test.json").read_text())
    (sub / "test.json").unlink()
    before = _snapshot(sub)
    assert main(["evaluate", str(sub), "--seeds", "1"]) == 0
    test = json.loads((sub / "test.json").read_text())
    assert test["source"] == "checkpoint" and test["n"] == 1 and test["ci"] is None
    assert test["values"][0] == pytest.approx(retrained["values"][0], abs=1.5 / 359)
    after = _snapshot(sub)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {
        "summary.json",
        "report.md",
        "report.html",
        "trials.csv",
        *(k for k in before if k.endswith(".png")),
    }
    assert json.loads((sub / "summary.json").read_text())["test"]["values"] == test["values"]
    assert "## Test" in (sub / "report.md").read_text()


# ---------------------------------------------------------------------------------- bad input


def test_compare_with_one_optimizer_or_one_seed_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"search\.optimizers.*at least two"):
        _experiment(tmp_path, optimizers=["adamw"])
    with pytest.raises(ConfigError, match="compare_seeds"):
        _experiment(tmp_path, compare_seeds=1)
    with pytest.raises(ConfigError, match="optimizers"):
        _experiment(tmp_path, optimizers=None, space={"lr": {"loguniform": [1e-4, 1e-1]}})
    assert not list(tmp_path.iterdir())


@pytest.fixture
def no_test_task():
    """``digits-no-test``: digits-mlp without its test split, registered for this test only (a
    registered task travels to every later trial's worker, which could not import this module)."""
    from raytune_opt.tasks import registry

    def digits_no_test() -> TaskSpec:
        spec = get_task("digits-mlp").build()
        spec.test = None
        return spec

    register_task("digits-no-test", digits_no_test, overwrite=True)
    yield "digits-no-test"
    registry._TASKS.pop("digits-no-test", None)


def test_task_without_test_split(comparison, tmp_path, no_test_task):
    raw = {**TINY, "task": "digits-no-test", "run": {"storage_path": str(tmp_path)}}
    with pytest.raises(ConfigError, match="test split"):
        Experiment.from_dict(raw)
    # evaluate: a finished experiment whose task has no test split is refused, the folder unchanged
    sub = tmp_path / "adamw"
    shutil.copytree(comparison.path / "adamw", sub)
    state = json.loads((sub / "experiment.json").read_text())
    state["experiment"]["task"] = {"name": "digits-no-test", "args": {}}
    (sub / "experiment.json").write_text(json.dumps(state))
    before = _snapshot(sub)
    with pytest.raises(ConfigError, match="test split"):
        evaluate(sub, seeds=2, progress=False)
    assert _snapshot(sub) == before


def test_evaluate_bad_seeds_before_anything(comparison, tmp_path, capsys):
    sub = tmp_path / "momentum"
    shutil.copytree(comparison.path / "momentum", sub)
    before = _snapshot(sub)
    with pytest.raises(ConfigError, match=r"seeds = 1.*at least 2 for a 95% confidence interval"):
        evaluate(sub, seeds=1, confidence=0.95, progress=False)
    for seeds in (0, -1, True, 2.5):
        with pytest.raises(ConfigError, match="seeds"):
            evaluate(sub, seeds=seeds, progress=False)
    with pytest.raises(ConfigError, match="confidence"):
        evaluate(sub, seeds=3, confidence=1.5, progress=False)
    assert main(["evaluate", str(sub), "--seeds", "1", "--confidence", "0.9"]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing-here")]) == 2
    assert _snapshot(sub) == before


# ---------------------------------------------------------------------------------- pieces


def test_seed_summary_is_scipys_t_interval():
    v = [0.81, 0.84, 0.79, 0.86, 0.83]
    s = seed_summary(v, 0.95)
    lo, hi = stats.t.interval(0.95, df=4, loc=np.mean(v), scale=stats.sem(v))
    assert s["ci"] == pytest.approx([lo, hi]) and s["std"] == pytest.approx(np.std(v, ddof=1))
    assert seed_summary([0.5, 0.5, 0.5], 0.9)["ci"] == [0.5, 0.5]
    assert seed_summary([0.7], None)["ci"] is None and seed_summary([0.7], None)["std"] is None
    with pytest.raises(ConfigError, match="at least 2"):
        seed_summary([0.7], 0.95)
    assert math.isnan(seed_summary([0.7, float("nan")], 0.95)["mean"])


def test_pairwise_welch_is_holm_corrected():
    rng = np.random.default_rng(0)
    groups = {"a": rng.normal(0.9, 0.01, 5), "b": rng.normal(0.8, 0.01, 5), "c": rng.normal(0.8, 0.01, 5)}
    rows = pairwise_welch(groups, 0.95)
    p = np.array([stats.ttest_ind(groups[r["a"]], groups[r["b"]], equal_var=False).pvalue for r in rows])
    # Holm: the i-th smallest p times (m - i), made monotone, capped at 1
    order = np.argsort(p)
    holm = np.minimum(1, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    expected = np.empty_like(p)
    expected[order] = holm
    assert [r["p_holm"] for r in rows] == pytest.approx(list(expected))
    assert [(r["a"], r["b"], r["significant"]) for r in rows] == [
        ("a", "b", True),
        ("a", "c", True),
        ("b", "c", bool(expected[2] < 0.05)),
    ]
    (const,) = pairwise_welch({"x": [1.0, 1.0], "y": [1.0, 1.0]})
    assert const["p"] is None and const["significant"] is None


def test_edge_params_flag_values_within_five_percent_of_the_log_range():
    info = {
        "experiment": {
            "search": {
                "optimizers": ["adamw"],
                "space": {"adamw.lr": {"loguniform": [1e-4, 1e-2]}, "grad_clip": {"uniform": [0.5, 1.5]}},
            }
        }
    }
    # log position of 8.5e-3 in [1e-4, 1e-2]: log(85) / log(100) = 0.965 -> high edge
    best = {"optimizer": "adamw", "adamw.lr": 8.5e-3, "adamw.weight_decay": 1e-2, "grad_clip": 0.52}
    flagged = {e["name"]: e for e in edge_params(info, best)}
    assert flagged["adamw.lr"]["side"] == "high"
    assert flagged["adamw.lr"]["position"] == pytest.approx(math.log(85) / math.log(100))
    assert flagged["grad_clip"]["side"] == "low" and flagged["grad_clip"]["position"] == pytest.approx(0.02)
    # widening: one decade past a log edge; a bound the optimizer or the loop refuses is said so
    assert (
        flagged["adamw.lr"]["widened"] == pytest.approx([1e-4, 1e-1])
        and flagged["adamw.lr"]["bounded"] is None
    )
    assert flagged["grad_clip"]["widened"] is None and "grad_clip = -0.5" in flagged["grad_clip"]["bounded"]
    momentum = widen({"name": "momentum.momentum", "low": 0.9, "high": 0.99, "log": False, "side": "high"})
    assert momentum["widened"] is None and "expected a number in [0, 1)" in momentum["bounded"]
    assert widen({"name": "momentum.momentum", "low": 0.9, "high": 0.95, "log": False, "side": "low"}) == {
        "widened": [pytest.approx(0.85), 0.95],
        "bounded": None,
    }
    assert "adamw.weight_decay" not in flagged  # mid-range in the registry's default range
    assert edge_params(info, {**best, "adamw.lr": 1e-3, "grad_clip": 1.0}) == []
    assert edge_params({}, best) == []  # a raw Tune folder: no stored ranges, nothing flagged


def test_evaluate_checkpoint_is_the_loops_own_evaluation(tmp_path, no_test_task):
    """The model of a run's last checkpoint, evaluated on val, gives exactly what the loop reported."""
    from raytune_opt.train import run_local
    from raytune_opt.train.evaluate import evaluate_checkpoint, retrain_and_evaluate

    cfg = {"task": "digits-mlp", "optimizer": "adamw", "lr": 3e-3, "epochs": 2, "checkpoint_every": 0}
    session = run_local(cfg, storage=str(tmp_path))
    out = evaluate_checkpoint(cfg, session.checkpoints[-1], "val")
    assert out["val_accuracy"] == session.results[-1]["val_accuracy"]
    assert out["val_loss"] == session.results[-1]["val_loss"]
    test = evaluate_checkpoint(cfg, session.checkpoints[-1], "test")
    assert set(test) == {"test_loss", "test_accuracy"} and 0 < test["test_accuracy"] <= 1
    with pytest.raises(ConfigError, match="split"):
        retrain_and_evaluate(cfg, "holdout")
    with pytest.raises(ConfigError, match="test split"):
        retrain_and_evaluate({**cfg, "task": "digits-no-test"}, "test")


def test_resume_runs_only_what_is_missing(comparison, tmp_path):
    """``resume`` on a (copied) comparison whose momentum evaluation is missing: both searches are
    finished and kept, adamw's test kept, only momentum's evaluation runs again."""
    from raytune_opt.experiment import resume_experiment

    folder = tmp_path / "cmp"
    shutil.copytree(comparison.path, folder)
    (folder / "momentum" / "test.json").unlink()
    before = _snapshot(folder)
    result = resume_experiment(folder, progress=False)
    after = _snapshot(folder)
    assert after["adamw/test.json"] == before["adamw/test.json"]
    trials = [k for k in before if "raytune_opt_trial_" in k and k.endswith("result.json")]
    assert len(trials) == 4 and all(after[k] == before[k] for k in trials)
    test = json.loads((folder / "momentum" / "test.json").read_text())
    assert test["seeds"] == [0, 1]
    assert [r["optimizer"] for r in result.summary["ranking"]] == [
        r["optimizer"] for r in comparison.summary["ranking"]
    ]
