"""benchmarks/hpo_strategies.py in its quick forms: every strategy on the simulated trial loop, and
the real-Ray engine on a subset — both must print the tables and save the plot, and agree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "hpo_strategies.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("hpo_strategies", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hpo_strategies"] = module  # the benchmark ships itself to Ray workers by value
    spec.loader.exec_module(module)
    return module


def check_traces(out: dict, budget: float) -> None:
    for (problem, strategy), traces in out["results"].items():
        (tr,) = traces
        assert tr, f"{strategy} on {problem}: no incumbent"
        costs = [c for c, _ in tr]
        assert costs == sorted(costs) and costs[-1] <= budget + 1.0  # in order, stopped at the budget
        assert all(r >= -1e-9 for _, r in tr)  # regret against the known optimum


def test_quick_benchmark_runs_every_strategy_on_the_simulated_loop(bench, tmp_path, capsys):
    out = bench.main(["--quick", "--seeds", "1", "--budget", "1", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    for name in bench.STRATEGIES:
        assert f"| {name} |" in text
    assert "## The papers' claims beside the measurements" in text and "headline:" in text
    assert "## mnist1d-mlp" in text  # the committed table of real learning curves
    assert (tmp_path / "hpo_strategies.png").stat().st_size > 1000
    assert (tmp_path / "hpo_strategies.md").read_text().startswith("Produced by `python benchmarks/")
    check_traces(out, 1.0)
    for (problem, strategy), (run,) in out["runs"].items():
        assert not run.stalled, f"{strategy} on {problem} stalled"
        assert run.trial_seconds >= run.events[-1][0] - 1e-9  # trial-seconds cover the reported cost
        assert run.wall <= run.trial_seconds + 1e-9  # two workers: wall ≤ trial-seconds
    # multi-fidelity strategies ran trials at several fidelities; full-fidelity ones at 1 only
    fids = {s: {e[1] for e in out["runs"][("hartmann", s)][0].events} for s in ("random", "hyperband")}
    assert fids["random"] == {1.0} and len(fids["hyperband"]) > 2


def test_ray_engine_agrees_with_the_simulated_loop(bench, ray_local, tmp_path, capsys):
    """Random search evaluates the same seeded configurations under both engines (Ray may finish
    one trial more before its budget stop lands: the simulated run gets a larger budget)."""
    args = ["--seeds", "1", "--strategies", "random,asha", "--problems", "counting-ones"]
    args += ["--out", str(tmp_path)]
    real = bench.main([*args, "--budget", "2", "--engine", "ray"])
    assert "| asha |" in capsys.readouterr().out
    check_traces(real, 2.0)
    sim = bench.main([*args, "--budget", "4"])
    ray_losses, sim_losses = (
        [e[2] for e in out["runs"][("counting-ones", "random")][0].events] for out in (real, sim)
    )
    assert len(ray_losses) >= 2 and set(ray_losses) <= set(sim_losses)


def test_mnist1d_table_is_built_from_real_runs_and_looked_up_nearest(bench, tmp_path, capsys):
    """A tiny table trained for real (2 lr × 1 weight decay × 2 batch sizes, 3 epochs): curves per
    epoch, nearest-neighbour lookup on the log scale, and the benchmark runs on it."""
    path = tmp_path / "table.json"
    grid = {"lr": [1e-3, 1e-2], "weight_decay": [1e-2], "batch_size": [256, 512]}
    bench.build_mnist1d_table(path, grid, epochs=3, jobs=1)
    table = bench.Mnist1dTable(path)
    assert table.curves.shape == (2, 1, 2, 3) and ((table.curves > 0) & (table.curves < 1)).all()
    space = table.space()  # the grid values are the centres of equal log-cells
    assert space["lr"]["loguniform"] == pytest.approx([10**-3.5, 10**-1.5])
    assert space["batch_size"] == {"choice": [256, 512]}
    # 4e-3 is nearer 1e-2 than 1e-3 on the log scale; 300 is nearer 256; fidelity 1/81 → epoch 1
    off_grid = {"lr": 4e-3, "weight_decay": 0.5, "batch_size": 300}
    assert table.nearest(off_grid) == (1, 0, 0)
    assert table.value(off_grid, 1 / 81) == table.curves[1, 0, 0, 0]
    assert table.true_value({"lr": 2e-3, "weight_decay": 1e-2, "batch_size": 512}) == table.curves[0, 0, 1, 2]
    assert table.optimum == table.curves[..., -1].min()
    args = ["--seeds", "1", "--budget", "1", "--problems", "mnist1d-mlp", "--strategies", "random,hyperband"]
    out = bench.main([*args, "--mnist1d-table", str(path), "--out", str(tmp_path)])
    assert "## mnist1d-mlp" in capsys.readouterr().out
    check_traces(out, 1.0)
    bench.use_table(None)  # back to the committed table for the other tests
