"""Slice and contour plots per optimizer at equal fidelity, from the stored search space: the PNGs,
their axes' scales (log where the domain is log), and their place in report.html."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from raytune_opt import report
from raytune_opt.report import landscape


def _experiment(tmp_path: Path) -> Path:
    """adamw (5 full trials, 1 early-stopped with the best value) and momentum (4 full trials), 3 epochs."""
    exp = tmp_path / "land"
    exp.mkdir()
    search = {"strategy": "asha", "optimizers": ["adamw", "momentum"], "space": {}, "max_t": 3}
    experiment = {"name": "land", "imports": [], "task": {"name": "digits-mlp"}, "search": search}
    info = {"name": "land", "strategy": "asha", "metric": "val_accuracy", "mode": "max", "max_t": 3}
    info |= {"started_at": 1000.0, "finished_at": 1100.0, "wall_s": 100.0, "experiment": experiment}
    (exp / "experiment.json").write_text(json.dumps(info))
    rng = np.random.default_rng(0)

    def log(lo: float, hi: float) -> float:
        return float(10 ** rng.uniform(lo, hi))

    configs = [
        ("adamw", {"adamw.lr": log(-4, -2), "adamw.weight_decay": log(-3, -1), "adamw.betas": [0.9, 0.999]})
        for _ in range(6)
    ]
    configs += [
        (
            "momentum",
            {
                "momentum.lr": log(-3, 0),
                "momentum.momentum": float(rng.uniform(0.9, 0.99)),
                "momentum.weight_decay": log(-6, -2),
            },
        )  # fmt: skip
        for _ in range(4)
    ]
    for n, (name, hp) in enumerate(configs):
        tid = f"land0_{n:05d}"
        config = {"task": "digits-mlp", "epochs": 3, "seed": 0, "optimizer": name, **hp}
        epochs = 1 if n == 5 else 3  # trial 5: stopped after one epoch, with the best value of all
        folder = exp / f"fn_{tid}_{n}_2026-01-01_00-00-00"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps(config))
        with open(folder / "result.json", "w") as f:
            for i in range(1, epochs + 1):
                value = 0.99 if n == 5 else 0.5 + 0.04 * n + 0.01 * i
                row = {"val_accuracy": value, "training_iteration": i, "time_total_s": float(i),
                       "trial_id": tid, "timestamp": 1000 + 10 * n + i, "config": config}  # fmt: skip
                f.write(json.dumps(row) + "\n")
    return exp


def test_slices_are_per_optimizer_at_equal_fidelity_on_the_domains_scales(tmp_path: Path) -> None:
    results = report.load(_experiment(tmp_path))
    rows = {name: (trials, [p.name for p in params]) for name, trials, params in landscape.groups(results)}
    assert list(rows) == ["adamw", "momentum"]
    assert len(rows["adamw"][0]) == 5 and "land0_00005" not in set(
        rows["adamw"][0]["trial_id"]
    )  # not at max_t
    assert rows["adamw"][1] == ["adamw.lr", "adamw.betas", "adamw.weight_decay"]
    assert rows["momentum"][1] == ["momentum.lr", "momentum.momentum", "momentum.weight_decay"]
    fig = landscape.slice_figure(results)
    drawn = {ax.get_xlabel(): ax for ax in fig.axes if ax.axison}
    assert drawn["adamw.lr (log)"].get_xscale() == "log"
    assert drawn["momentum.momentum"].get_xscale() == "linear"
    lo, hi = drawn["adamw.lr (log)"].get_xlim()
    assert lo < 1e-4 and hi > 1e-2  # the domain [1e-4, 1e-2], not the trials' range
    assert [len(ax.collections[0].get_offsets()) for ax in drawn.values()][:1] == [5]


def test_contours_pair_each_optimizers_numeric_parameters(tmp_path: Path) -> None:
    results = report.load(_experiment(tmp_path))
    fig = landscape.contour_figure(results)
    drawn = {(ax.get_title(), ax.get_xlabel(), ax.get_ylabel()): ax for ax in fig.axes if ax.axison}
    assert set(drawn) == {
        ("adamw (n=5)", "adamw.lr (log)", "adamw.weight_decay (log)"),
        ("momentum (n=4)", "momentum.lr (log)", "momentum.momentum"),
        ("momentum (n=4)", "momentum.lr (log)", "momentum.weight_decay (log)"),
        ("momentum (n=4)", "momentum.momentum", "momentum.weight_decay (log)"),
    }
    ax = drawn[("adamw (n=5)", "adamw.lr (log)", "adamw.weight_decay (log)")]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert len(ax.collections) >= 2  # the interpolated surface and the trials
    ax = drawn[("momentum (n=4)", "momentum.lr (log)", "momentum.momentum")]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "linear")


def test_the_report_writes_the_pngs_and_the_html_views(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    paths = report.write(exp)
    for name in ("slices.png", "contours.png"):
        img = mpimg.imread(paths[name])
        assert img.shape[0] > 300 and img.shape[1] > 600 and img[..., :3].std() > 0.01, name
    md = paths["report.md"].read_text()
    assert "![slices](slices.png)" in md and "![contours](contours.png)" in md
    page = paths["report.html"].read_text()
    assert "Slice plots (per optimizer, trials that ran max_t = 3 epochs)" in page
    assert "Contour plots (per optimizer, trials that ran max_t = 3 epochs)" in page
    assert "adamw: adamw.lr vs adamw.weight_decay" in page
