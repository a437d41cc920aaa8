"""benchmarks/optimizers_tuned.py runs end to end (--quick, on the session's Ray) through the experiment
runner: tuning per optimizer, the seed re-runs, the GLM rows, the AdamW/Lion lr sweep, the table and the
plots."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "optimizers_tuned.py"


def test_quick_optimizers_tuned_benchmark(ray_local, tmp_path, capsys, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("optimizers_tuned", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    rec = module.main(["--quick", "--out", str(tmp_path / "out"), "--storage", str(tmp_path / "runs")])
    budget = rec["budget"]

    # same budget per optimizer: each tuning experiment ran its samples, each at most max_t epochs
    assert [t["optimizer"] for t in rec["tuned"]] == list(budget["optimizers"])
    for t in rec["tuned"]:
        assert t["trials"] == budget["samples"]
        assert 0 < t["epochs"] <= budget["samples"] * budget["epochs"]
        assert t["trial_seconds"] > 0
        assert "lr" in t["hparams"]
        assert 1e-5 <= t["hparams"]["lr"] <= 1e-2  # the shared AdamW/Lion range
    # every optimizer re-run with every fresh seed, at its tuned configuration
    pairs = sorted((r["optimizer"], r["seed"]) for r in rec["seeds"])
    assert pairs == sorted((o, s) for o in budget["optimizers"] for s in range(1, budget["seeds"] + 1))
    assert all(0.0 <= r["final"] <= 1.0 for r in rec["seeds"] if not math.isnan(r["final"]))
    assert all(r["epochs"] == budget["epochs"] for r in rec["seeds"] if r["status"] == "finished")
    tuned_lr = {t["optimizer"]: t["hparams"]["lr"] for t in rec["tuned"]}
    assert rec["lr_ratios"]["digits-mlp"] == tuned_lr["adamw"] / tuned_lr["lion"]

    # GLM rows: each solver ran the epoch budget; IRLS reaches the lowest loss within it
    glm = {r["optimizer"]: r for r in rec["glm"]}
    assert set(glm) == set(budget["glm_solvers"])
    assert all(r["epochs"] == budget["glm_epochs"] for r in glm.values())
    assert glm["irls"]["converged_epoch"] is not None
    assert glm["irls"]["train_loss"] <= glm["adam"]["train_loss"]

    # lr sweep: adamw and lion each at every grid lr × seed, full epochs; best lr and ratio from them
    sweep = rec["lr_sweep"]
    seeds = range(1, budget["sweep_seeds"] + 1)
    grid = [(o, lr, s) for o in ("adamw", "lion") for lr in budget["sweep_lrs"] for s in seeds]
    assert sorted((r["optimizer"], r["lr"], r["seed"]) for r in sweep) == sorted(grid)
    assert all(r["epochs"] == budget["epochs"] for r in sweep if r["status"] == "finished")
    best = rec["lr_sweep_best"]["digits-mlp"]
    for opt in ("adamw", "lion"):
        rows = [r for r in sweep if r["optimizer"] == opt]
        accs = {r["lr"]: 0.0 if math.isnan(r["final"]) else r["final"] for r in rows}
        assert best[opt]["lr"] in budget["sweep_lrs"]
        assert best[opt]["acc"] == max(accs.values())
    assert best["ratio"] == best["adamw"]["lr"] / best["lion"]["lr"]
    assert Path(rec["files"]["sweep_png"]).stat().st_size > 0

    md = Path(rec["files"]["md"]).read_text()
    assert "### lr sweep" in md and "| digits-mlp | " in md.split("### lr sweep")[1]
    assert "| digits-mlp | adamw |" in md and "| digits-mlp | lion |" in md
    assert "AdamW / Lion" in md and "| glm-logistic | irls |" in md
    assert Path(rec["files"]["png"]).stat().st_size > 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("headline: AdamW/Lion tuned lr = ")
