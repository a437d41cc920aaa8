"""Widening a comparison's ranges flagged at their edge (``raytune-opt widen``, ``search.compare_widen``)
on a real tiny comparison, the registry's hard bounds, and bad input refused with the folder kept.

The searches are ``grid`` searches with two points per numeric domain: every trial sits at an edge of
each range, so the best one is flagged whatever the data say. AdamW searches ``lr`` only (its best is
flagged and widened); Momentum searches ``momentum`` only at lr 1e-3, where 0.99 beats 0.9 on digits
in two epochs: flagged at 0.99, its hard bound 1 is no momentum, so it cannot be widened.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from raytune_opt import Experiment, optim
from raytune_opt.cli import main
from raytune_opt.errors import ConfigError
from raytune_opt.experiment.compare import widen_comparison
from raytune_opt.optim.registry import Range
from raytune_opt.report.edges import space_entry, widen, widen_cell

WIDEN = {
    "name": "cmpw",
    "task": "digits-mlp",
    "train": {"epochs": 2, "batch_size": 64, "checkpoint_every": 0},
    "search": {
        "strategy": "grid",
        "options": {"points": 2},
        "optimizers": ["adamw", "momentum"],
        "num_samples": 1,
        "space": {
            "adamw.betas": {"value": [0.9, 0.999]},
            "adamw.weight_decay": {"value": 0.01},
            "momentum.lr": {"value": 1e-3},
            "momentum.weight_decay": {"value": 0.0},
        },
        "compare": "optimizers",
        "compare_seeds": 2,
    },
}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _lr(result_json: Path) -> float:
    return float(json.loads(result_json.read_text().splitlines()[-1])["config"]["adamw.lr"])


@pytest.fixture(scope="module")
def compared(ray_local, tmp_path_factory):
    """The comparison before any widening, and a copy of it widened once by ``raytune-opt widen``."""
    tmp = tmp_path_factory.mktemp("widen")
    exp = Experiment.from_dict({**WIDEN, "run": {"storage_path": str(tmp / "runs")}})
    result = exp.run(progress=False)
    widened = tmp / "widened"
    shutil.copytree(result.path, widened)
    before = _snapshot(widened)
    return result.path, widened, before


@pytest.fixture(scope="module")
def widened_once(compared, tmp_path_factory):
    import contextlib
    import io

    _, widened, before = compared
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["widen", str(widened)])
    return widened, before, code, out.getvalue()


def test_the_comparison_flags_both_and_widens_nothing_by_default(compared):
    path, _, _ = compared
    info = _json(path / "comparison.json")
    assert info["widen_rounds"] == 0 and info["widened"] == []
    (lr,) = _json(path / "adamw" / "summary.json")["edge_params"]
    assert lr["name"] == "adamw.lr" and lr["value"] in (pytest.approx(1e-4), pytest.approx(1e-2))
    assert lr["widened"] == pytest.approx([1e-5, 1e-2] if lr["side"] == "low" else [1e-4, 1e-1])
    (mom,) = _json(path / "momentum" / "summary.json")["edge_params"]
    assert (
        mom["name"] == "momentum.momentum" and mom["value"] == pytest.approx(0.99) and mom["side"] == "high"
    )
    assert mom["widened"] is None and "[0, 1)" in mom["bounded"]
    assert "raytune-opt widen" in (path / "report.md").read_text()


def test_widen_searches_on_the_widened_range_and_retests(compared, widened_once):
    original = compared[0]
    folder, before, code, printed = widened_once
    assert code == 0
    after = _snapshot(folder)
    # momentum cannot be widened: said so, its folder untouched (nothing lost, nothing rerun)
    assert "momentum.momentum = 0.99 at the high edge of [0.9, 0.99] cannot be widened" in printed
    assert "[0, 1)" in printed
    mom = {k: v for k, v in before.items() if k.startswith("momentum/")}
    assert all(after[k] == v for k, v in mom.items()) and {
        k for k in after if k.startswith("momentum/")
    } == set(mom)
    # adamw: its earlier trials kept, two more (the grid's two points) over the widened range
    trials_before = [
        k for k in before if k.startswith("adamw/raytune_opt_trial_") and k.endswith("result.json")
    ]
    trials_after = [
        k for k in after if k.startswith("adamw/raytune_opt_trial_") and k.endswith("result.json")
    ]
    assert len(trials_before) == 2 and len(trials_after) == 4
    assert all(after[k] == before[k] for k in trials_before)
    info = _json(folder / "comparison.json")
    assert info["widen_rounds"] == 1
    (round1,) = info["widened"]
    assert (
        round1["round"] == 1
        and set(round1["widened"]) == {"adamw"}
        and set(round1["bounded"]) == {"momentum"}
    )
    (edge,) = round1["widened"]["adamw"]
    state = _json(folder / "adamw" / "experiment.json")
    assert state["widen_round"] == 1 and state["finished_at"] is not None
    assert state["experiment"]["search"]["space"]["adamw.lr"] == space_entry(edge)
    assert state["experiment"]["search"]["seed"] == 1  # search seed + round
    new = sorted(_lr(folder / k) for k in set(trials_after) - set(trials_before))
    assert new == pytest.approx(edge["widened"])  # the grid's two points: the widened range's ends
    # the retest follows the best trial over both rounds: retested when it changed, kept when not
    summary = _json(folder / "adamw" / "summary.json")
    test = _json(folder / "adamw" / "test.json")
    assert summary["trials"]["total"] == 4 and test["trial_id"] == summary["best_trial_id"]
    old_test = _json(original / "adamw" / "test.json")
    if test["trial_id"] == old_test["trial_id"]:
        assert after["adamw/test.json"] == before["adamw/test.json"]
    else:
        assert _json(folder / "adamw" / f"test-{old_test['trial_id']}.json") == old_test
        assert len(test["values"]) == 2
    # the comparison's report: the adamw row counts every round's trials; the widening is listed
    s = _json(folder / "summary.json")
    rows = {r["optimizer"]: r for r in s["ranking"]}
    assert rows["adamw"]["trials"] == 4 and rows["momentum"]["trials"] == 2
    assert s["widened"] == info["widened"]
    md = (folder / "report.md").read_text()
    assert "## Widened ranges" in md and "cannot be widened" in md


def test_resume_after_widening_reruns_only_the_missing_test(widened_once, tmp_path):
    from raytune_opt.experiment import resume_experiment

    folder, _, _, _ = widened_once
    copy = tmp_path / "cmpw"
    shutil.copytree(folder, copy)
    (copy / "adamw" / "test.json").unlink()
    before = _snapshot(copy)
    resume_experiment(copy, progress=False)
    after = _snapshot(copy)
    trials = [k for k in before if "raytune_opt_trial_" in k and k.endswith("result.json")]
    assert len(trials) == 6 and all(after[k] == before[k] for k in trials)
    assert after["momentum/test.json"] == before["momentum/test.json"]
    assert (
        _json(copy / "adamw" / "test.json")["trial_id"]
        == _json(copy / "adamw" / "summary.json")["best_trial_id"]
    )
    assert len(_json(copy / "comparison.json")["widened"]) == 1  # no second round: compare_widen is 1


def test_widen_refuses_what_it_cannot_do_and_keeps_the_folder(compared, tmp_path, capsys):
    path, _, _ = compared
    sub = tmp_path / "adamw"
    shutil.copytree(path / "adamw", sub)
    before = _snapshot(sub)
    assert main(["widen", str(sub)]) == 2  # one optimizer's search, not a comparison
    assert "a comparison's folder" in capsys.readouterr().err
    assert main(["widen", str(path), "--rounds", "0"]) == 2
    assert "rounds" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="rounds"):
        widen_comparison(path, rounds=True)
    assert _snapshot(sub) == before
    with pytest.raises(ConfigError, match="compare_widen"):
        Experiment.from_dict({**WIDEN, "search": {**WIDEN["search"], "compare_widen": -1}})


# ---------------------------------------------------------------------------------- pieces


def test_widen_clamps_to_the_registrys_hard_bounds():
    assert optim.spec("momentum").hparams["momentum"].bounds == (0.0, 1.0)
    assert optim.spec("adamw").hparams["lr"].bounds == (0.0, math.inf)
    # a uniform range one width further, clamped at the bound 0 of a decay rate
    decay = widen({"name": "rmsprop.beta", "low": 0.3, "high": 0.8, "log": False, "side": "low"})
    assert decay == {"widened": [0.0, 0.8], "bounded": None}
    # at its hard bound already: nothing to widen, and why
    at0 = widen({"name": "rmsprop.momentum", "low": 0.0, "high": 0.99, "log": False, "side": "low"})
    assert at0["widened"] is None and "hard bound" in at0["bounded"] and "[0, 1]" in at0["bounded"]
    at1 = widen({"name": "adagrad.decay", "low": 0.9, "high": 1.0, "log": False, "side": "high"})
    assert at1["widened"] is None and "high edge 1 is its hard bound" in at1["bounded"]
    # clamped to 1, which a momentum may not be: the constructor's check says so
    mom = widen({"name": "nesterov.momentum", "low": 0.9, "high": 0.99, "log": False, "side": "high"})
    assert mom["widened"] is None and "cannot go past 1" in mom["bounded"] and "[0, 1)" in mom["bounded"]
    # log: 10x; an integer one rounded outwards and clamped (L-BFGS keeps at least one pair)
    assert widen({"name": "lion.lr", "low": 1e-5, "high": 3e-3, "log": True, "side": "high"})["widened"] == [
        1e-5,
        pytest.approx(3e-2),
    ]
    hist = widen(
        {"name": "lbfgs.history_size", "low": 5, "high": 200, "log": True, "side": "low"}, integer=True
    )
    assert hist == {"widened": [1, 200], "bounded": None}
    edge = {"name": "lbfgs.history_size", "log": True, "integer": True, **hist}
    assert space_entry(edge) == {"int": [1, 200], "log": True}
    assert widen_cell(edge) == "`lbfgs.history_size: {int: [1, 200], log: true}`"


def test_ranges_stay_inside_their_bounds():
    with pytest.raises(TypeError, match="bounds"):
        Range("momentum", 0.9, 1.5, bounds=(0.0, 1.0))
