"""benchmarks/train_throughput.py runs end to end (--quick, on the session's Ray) and prints its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


def test_quick_benchmark_prints_the_table(
    ray_local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--quick", "--skip-ddp", "--storage", str(tmp_path)])
    assert [r[0] for r in rows] == ["in-process, 1 worker", "Tune trial, 1 worker"]
    assert all(p > 0 and o > 0 for _, p, o in rows)
    out = capsys.readouterr().out
    assert "| setting | plain loop (samples/s) | raytune_opt loop (samples/s) | ratio |" in out
    assert out.strip().splitlines()[-1].startswith("headline:")
