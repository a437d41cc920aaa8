"""benchmarks/overhead.py runs end to end (--quick, on the session's Ray) and prints its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"


def test_quick_overhead_benchmark_prints_the_table(ray_local, capsys) -> None:
    spec = importlib.util.spec_from_file_location("overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    numbers = module.main(["--quick"])
    assert numbers["raw_s"] > 0 and numbers["ours_s"] > 0 and numbers["trials_per_s"] > 0
    assert (
        numbers["raw_checkpoint_s"] > 0 and numbers["ratio_checkpoint"] > 0 and numbers["raw_defaults_s"] > 0
    )
    out = capsys.readouterr().out
    assert "| raytune-opt run | " in out and "| raw ray.tune.Tuner (JSON + CSV, as raytune-opt) | " in out
    assert "| raw ray.tune.Tuner (JSON + CSV) + final checkpoint | " in out and "Tune defaults" in out
    assert out.strip().splitlines()[-1].startswith("headline: raytune-opt/raw = ")
