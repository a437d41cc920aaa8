"""benchmarks/hpo_strategies.py --quick runs (on a subset of strategies, to stay cheap)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "hpo_strategies.py"


def test_quick_benchmark_prints_the_table_and_saves_the_plot(ray_local, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("hpo_strategies", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["hpo_strategies"] = bench  # the benchmark ships itself to Ray workers by value
    spec.loader.exec_module(bench)
    out = bench.main(
        [
            "--quick",
            "--seeds",
            "1",
            "--budget",
            "2",
            "--strategies",
            "random,asha",
            "--problems",
            "counting-ones",
            "--out",
            str(tmp_path),
        ]
    )
    text = capsys.readouterr().out
    assert "| random |" in text and "| asha |" in text and "headline:" in text
    assert (tmp_path / "hpo_strategies.png").stat().st_size > 1000
    for traces in out["results"].values():
        (tr,) = traces
        costs = [c for c, _ in tr]
        assert costs == sorted(costs) and costs[-1] >= 2 - 1e-9  # the budget was spent, in order
        assert all(r >= -1e-9 for _, r in tr)  # regret against the known optimum
