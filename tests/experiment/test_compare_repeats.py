"""``search.compare_repeats``: each optimizer's search run several times, the searches the
replicates of the comparison's intervals and tests, on the suite's Ray; checked against SciPy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from raytune_opt import Experiment
from raytune_opt.errors import ConfigError
from raytune_opt.experiment.compare import SEED_STRIDE, search_folders

TINY = {
    "name": "rep",
    "task": "digits-mlp",
    "train": {"epochs": 2, "batch_size": 64, "checkpoint_every": 0, "seed": 3},
    "search": {
        "strategy": "random",
        "optimizers": ["adamw", "momentum"],
        "num_samples": 2,
        "seed": 5,
        "compare": "optimizers",
        "compare_repeats": 2,
        "compare_seeds": 1,
    },
}


def _experiment(tmp: Path, **search) -> Experiment:
    raw = json.loads(json.dumps(TINY))
    raw["search"].update(search)
    raw["run"] = {"storage_path": str(tmp)}
    return Experiment.from_dict(raw)


@pytest.fixture(scope="module")
def repeated(ray_local, tmp_path_factory):
    """adamw vs momentum, 2 searches each of 2 trials, each best tested once (its checkpoint)."""
    return _experiment(tmp_path_factory.mktemp("repeats")).run(progress=False)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_each_search_has_its_own_seeds_and_folder(repeated):
    folder = repeated.path
    info = _json(folder / "comparison.json")
    assert info["repeats"] == 2
    assert info["searches"] == {o: search_folders(o, 2) for o in ("adamw", "momentum")}
    assert search_folders("adamw", 3) == ["adamw-search0", "adamw-search1", "adamw-search2"]
    assert search_folders("adamw", 1) == ["adamw"]
    for opt in ("adamw", "momentum"):
        assert not (folder / opt).exists()
        configs = []
        for j, rel in enumerate(info["searches"][opt]):
            sub = folder / rel
            desc = _json(sub / "experiment.json")["experiment"]
            # search j: search seed 5 + 11 j, train seed 3 + j; the same budget as the others
            assert desc["search"]["seed"] == 5 + SEED_STRIDE * j and desc["train"]["seed"] == 3 + j
            assert desc["search"]["optimizers"] == [opt] and desc["search"]["compare"] is None
            summary = _json(sub / "summary.json")
            assert summary["trials"]["total"] == 2
            test = _json(sub / "test.json")
            # one seed: the best trial's own final checkpoint, no interval of its own
            assert test["source"] == "checkpoint" and test["n"] == 1 and test["ci"] is None
            assert test["trial_id"] == summary["best_trial_id"]
            configs.append(summary["best_config"][f"{opt}.lr"])
        assert len(set(configs)) == 2  # other search seeds: other configurations


def test_the_intervals_and_tests_are_over_the_searches(repeated):
    folder = repeated.path
    s = _json(folder / "summary.json")
    assert s == repeated.summary and s["repeats"] == 2 and s["seeds"] == 1
    assert "repeated searches" in s["interval"] and "repeated searches" in s["test"]
    groups = {}
    for r in s["ranking"]:
        per_search = [_json(folder / rel / "test.json")["mean"] for rel in r["folder"]]
        assert [x["test"]["mean"] for x in r["searches"]] == per_search
        t, v = r["test"], np.array(per_search)
        assert t["n"] == 2 and t["values"] == pytest.approx(per_search) and t["seeds"] == 1
        lo, hi = stats.t.interval(0.95, df=1, loc=v.mean(), scale=stats.sem(v))
        if stats.sem(v) > 0:
            assert t["ci"] == pytest.approx([lo, hi])
        assert r["trials"] == 4
        best = [_json(folder / rel / "summary.json")["best_metric"] for rel in r["folder"]]
        assert r["best_val"] == pytest.approx(np.mean(best))
        groups[r["optimizer"]] = v
    means = [r["test"]["mean"] for r in s["ranking"]]
    assert means == sorted(means, reverse=True)
    (pair,) = s["pairs"]
    ref = stats.ttest_ind(groups[pair["a"]], groups[pair["b"]], equal_var=False)
    if np.isfinite(ref.pvalue):
        assert pair["p"] == pytest.approx(ref.pvalue)
    md = (folder / "report.md").read_text()
    assert "2 independent random searches" in md and "Bouthillier" in md
    assert "n=2 searches × 1 seeds" in md
    for rel in ("adamw-search1", "momentum-search0"):
        assert f"[{rel}]({rel}/report.md)" in md
    assert (folder / "tuning_curves.png").stat().st_size > 0


def test_resume_retests_only_the_missing_search(repeated, tmp_path):
    from raytune_opt.experiment import resume_experiment

    folder = tmp_path / "rep"
    shutil.copytree(repeated.path, folder)
    (folder / "momentum-search1" / "test.json").unlink()
    kept = (folder / "adamw-search1" / "test.json").read_text()
    result = resume_experiment(folder, progress=False)
    assert (folder / "adamw-search1" / "test.json").read_text() == kept
    assert _json(folder / "momentum-search1" / "test.json")["n"] == 1
    assert result.summary["ranking"] == repeated.summary["ranking"]


def test_one_seed_needs_repeated_searches(tmp_path):
    with pytest.raises(ConfigError, match=r"search\.compare_seeds.*compare_repeats of 2 or more"):
        _experiment(tmp_path, compare_repeats=1)
    with pytest.raises(ConfigError, match="compare_repeats"):
        _experiment(tmp_path, compare_repeats=0)
    assert not list(tmp_path.iterdir())


def test_the_plan_says_what_repeats_do(tmp_path):
    text = _experiment(tmp_path, compare_seeds=2).plan().description
    assert "that search 2 times per optimizer" in text and "<optimizer>-search<j>" in text
    assert "2 seed(s)" in text
