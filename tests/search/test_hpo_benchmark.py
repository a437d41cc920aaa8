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
