"""benchmarks/optim_step.py --quick runs end to end (so the benchmark never rots); no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_optim_step_benchmark_quick(tmp_path):
    out = tmp_path / "optim_step.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "optim_step.py"), "--quick", "--save", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    for row in ("ours lion", "ours adamw", "torch AdamW fused", "lion-pytorch", "pytorch_optimizer Lion"):
        assert f"| {row} |" in text
    assert text.count("| ours ") == 16  # 8 optimizers × 2 cases
    assert proc.stdout.strip().splitlines()[-1].startswith("headline")
