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


def _load():
    spec = importlib.util.spec_from_file_location("overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scaling_mode_table_ratios_and_section(monkeypatch, tmp_path, capsys) -> None:
    """--sizes: the table and ratios from the measured rows (the sides faked: no Ray, no wall-clock
    assertion), and the section written on top of --out."""
    module = _load()
    ran: list[tuple[str, int]] = []
    monkeypatch.setattr(module, "run_raw", lambda n, storage: ran.append(("raw", n)) or 0.5)
    monkeypatch.setattr(module, "run_ours", lambda n, storage: ran.append(("ours", n)) or (0.25, 0.0))
    # a measured row runs the experiment alone (no folder here: no report to sample)
    experiment = lambda n, storage: ran.append(("ours", n)) or (0.25, None)  # noqa: E731
    monkeypatch.setattr(module, "run_ours_experiment", experiment)
    out = tmp_path / "overhead.md"
    rows = module.scaling([5, 10], out)
    assert ran == [("raw", 2), ("ours", 2), ("raw", 5), ("ours", 5), ("ours", 10), ("raw", 10)]
    assert rows["raw"][10]["trials_per_s"] == 20 and rows["ours"][10]["trials_per_s"] == 40
    for side in ("raw", "ours"):
        for n in (5, 10):
            r = rows[side][n]
            assert 0 < r["rss_end_mb"] <= r["rss_peak_mb"] and r["maxrss_mb"] > 0
    printed = capsys.readouterr().out
    assert "| 10 | raytune-opt | 0.2 | 40.0 | " in printed
    assert "ours/raw trials/s by size (target >= 0.9): 5: 2.00, 10: 2.00" in printed
    assert "driver RSS(10)/RSS(5) (target <= 1.2): raw peak " in printed
    text = out.read_text()
    assert text.startswith("# overhead") and "scaling, no-op trials x 3 reports at sizes 5, 10" in text


def test_one_child_row_and_fresh_scaling(ray_local, monkeypatch, capsys) -> None:
    """``--one SIDE:N`` (what each fresh process of ``--sizes ... --fresh`` runs) measures one real row
    and prints it on the line the parent parses; ``--fresh`` takes every row from such a child."""
    module = _load()
    row = module.main(["--one", "raw:2"])
    assert module.parse_one(capsys.readouterr().out) == row and row["trials_per_s"] > 0
    asked: list[tuple[str, int]] = []
    monkeypatch.setattr(module, "measure_fresh", lambda side, n: asked.append((side, n)) or row)
    monkeypatch.setattr(module, "measure", lambda *a: (_ for _ in ()).throw(AssertionError("in-process")))
    module.scaling([3, 4], None, fresh=True)
    assert sorted(asked) == [("ours", 3), ("ours", 4), ("raw", 3), ("raw", 4)]
    assert "(target >= 0.9): 3: 1.00, 4: 1.00" in capsys.readouterr().out


def test_rss_sampler_sees_an_allocation_inside_the_block() -> None:
    module = _load()
    with module.RssSampler(interval=0.01) as rss:
        block = bytearray(64 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
        module.time.sleep(0.05)
        del block
    assert rss.peak >= rss.end > 0
