"""benchmarks/glm_solvers.py --quick runs end to end and every raytune_opt solver matches statsmodels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "glm_solvers.py"


def test_glm_solvers_benchmark_quick():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("headline (raytune_opt irls median time ratio): logistic ")
    ours = [line.split("|") for line in lines if "| raytune_opt" in line]
    assert len(ours) == 12  # 4 methods + "irls + bse" for logistic and Poisson, 2 for Huber
    for cells in ours:
        assert float(cells[4]) <= 1e-6, cells  # max |dcoef| against statsmodels


def test_glm_solvers_benchmark_skip_and_cpu_columns():
    """--skip leaves the named solvers out (never the reference); each row has its median CPU time and the
    CPU ratio; the headline gives the CPU ratios too."""
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "2", "--problems", "poisson"]
        + ["--skip", "lbfgs,newton", "--reference-once"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.splitlines() if line.startswith("| poisson")]
    names = [cells[2].strip() for cells in rows]
    assert names == [
        "statsmodels GLM irls",
        "raytune_opt irls",
        "raytune_opt irls + bse",
        "raytune_opt irls-lm",
    ]
    for cells in rows:
        assert float(cells[8]) > 0.0 and float(cells[9]) > 0.0  # median CPU s, CPU / raytune_opt irls
    assert "; CPU: " in out.stdout.strip().splitlines()[-1]
