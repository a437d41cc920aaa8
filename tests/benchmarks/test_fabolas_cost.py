"""benchmarks/fabolas_cost.py in a tiny form: real Tuner runs of GP-BO and Fabolas, the side-by-side
table with the cost ratio, Fabolas' fraction histogram and its recommendation beside the best
configuration it evaluated at s = 1."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "fabolas_cost.py"


def test_fabolas_cost_benchmark_runs_real_tuner_runs_side_by_side(ray_local, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fabolas_cost", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["fabolas_cost"] = bench  # the benchmark ships itself to Ray workers by value
    spec.loader.exec_module(bench)
    out = bench.main(["--quick", "--budget", "2", "--fabolas-trials", "9", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "| seed | GP-BO final regret |" in text and "less cost** (target ≥ 5×" in text
    assert (tmp_path / "fabolas_cost.md").read_text().startswith("Produced by `python benchmarks/")
    bo, fab = out["runs"][("bo", 0)], out["runs"][("fabolas", 0)]
    assert bo["trials"] == 2 and bo["errors"] == fab["errors"] == 0
    assert {e[2] for e in bo["trace"]} == {1.0}  # GP-BO: every trial on all of the data
    for run in (bo, fab):
        costs = [e[0] for e in run["trace"]]
        assert costs == sorted(costs) and costs[-1] <= 2.0 + 1e-9  # within the budget
        assert all(e[1] >= -1e-6 for e in run["trace"])  # regret against the known optimum
    assert sum(fab["fractions"].values()) == fab["trials"] <= 9 and 1.0 in fab["fractions"]
    assert fab["recommendation"] <= fab["best_at_full"] + 1e-12
