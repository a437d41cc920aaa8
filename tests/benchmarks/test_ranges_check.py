"""benchmarks/ranges_check.py runs end to end (--quick, on the session's Ray): every searched numeric
range of each optimizer gets a row, its best value's position in [0, 1] and the report's edge flag."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ranges_check.py"


def test_quick_ranges_check(ray_local, tmp_path, capsys, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("ranges_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    rows = module.main(["--quick", "--storage", str(tmp_path)])
    names = {(r["optimizer"], r["name"]) for r in rows}
    assert names == {
        ("adamw", "adamw.lr"),
        ("adamw", "adamw.weight_decay"),
        ("momentum", "momentum.lr"),
        ("momentum", "momentum.momentum"),
        ("momentum", "momentum.weight_decay"),
    }
    for r in rows:
        assert r["low"] <= r["value"] <= r["high"] and 0 <= r["position"] <= 1
        u = math.log(r["value"] / r["low"]) / math.log(r["high"] / r["low"]) if r["log"] else None
        if u is not None:
            assert r["position"] == pytest.approx(u)
        assert len(r["top"]) == 3 and r["top"][0] == pytest.approx(r["position"])  # the best is first
        assert (r["edge"] is not None) == (r["position"] <= 0.05 or r["position"] >= 0.95)
        if r["widened"]:  # searched again over the widened range: its best val is reported
            assert 0 <= r["widened_best_val"] <= 1
    out = capsys.readouterr().out
    assert "| task | optimizer | parameter |" in out
    assert out.rstrip().splitlines()[-1].endswith("found a better best val in the widened range")
