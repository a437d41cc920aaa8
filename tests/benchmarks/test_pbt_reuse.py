"""benchmarks/pbt_reuse.py runs end to end (--quick, on the session's Ray) and prints its table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pbt_reuse.py"


def test_quick_pbt_reuse_benchmark_prints_both_sides(ray_local, capsys, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("pbt_reuse", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "pbt_reuse", module)  # its trainable is shipped by value
    spec.loader.exec_module(module)
    numbers = module.main(["--quick"])
    assert numbers["fresh_s"] > 0 and numbers["reuse_s"] > 0
    out = capsys.readouterr().out
    assert "| False | " in out and "| True | " in out
    assert out.strip().splitlines()[-1].startswith("headline: reuse/fresh wall time = ")
