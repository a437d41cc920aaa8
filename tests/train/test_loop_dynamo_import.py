"""The loop does not import ``torch._dynamo`` (2 s in every new trial process) and trains the same."""

from __future__ import annotations

import json
import subprocess
import sys

from raytune_opt._compat.torch import dynamo_disabled_functions as _dynamo_disabled
from raytune_opt.train import run_local
from raytune_opt.train.checkpoint import load_state

CONFIG = {
    "task": "digits-mlp",
    "task_args": {"hidden": 8},
    "batch_size": 256,
    "epochs": 2,
    "optimizer": "adamw",
    "lr": 3e-3,
    "checkpoint_every": 1,
}

# a fresh interpreter: a trial process's first loop (this test process may have imported torch._dynamo)
SCRIPT = f"""
import json, sys, tempfile
import torch
torch.set_num_threads(1)  # as this test process (tests/train/conftest.py)
from raytune_opt.train import run_local
from raytune_opt.train.checkpoint import load_state
from raytune_opt._compat.torch import dynamo_disabled_functions as _dynamo_disabled

with tempfile.TemporaryDirectory() as d:
    first = run_local({CONFIG!r}, storage=d)
    resumed = run_local({{**{CONFIG!r}, "epochs": 3}}, checkpoint=first.checkpoints[-1])
    weights = load_state(first.checkpoints[-1])["model"]
print(json.dumps({{
    "dynamo_imported": "torch._dynamo" in sys.modules,
    "wrapped": [f.__qualname__ for f in _dynamo_disabled()],
    "left_seeded": [f.__qualname__ for f in _dynamo_disabled() if hasattr(f, "__dynamo_disable")],
    "losses": [r["train_loss"] for r in first.results + resumed.results],
    "weights": {{k: v.flatten().tolist() for k, v in weights.items()}},
}}))
"""


def test_a_fresh_process_trains_resumes_and_checkpoints_without_importing_dynamo(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert not got["dynamo_imported"]
    assert "Optimizer.zero_grad" in got["wrapped"] and "Optimizer.add_param_group" in got["wrapped"]
    assert got["left_seeded"] == []  # the plain functions are cached for the loop's duration only

    # the same run in this process (torch._dynamo imported here, through the wrappers) gives the same numbers
    import torch._dynamo  # noqa: F401

    first = run_local(CONFIG, storage=str(tmp_path))
    resumed = run_local({**CONFIG, "epochs": 3}, checkpoint=first.checkpoints[-1])
    assert [r["train_loss"] for r in first.results + resumed.results] == got["losses"]
    weights = load_state(first.checkpoints[-1])["model"]
    assert {k: v.flatten().tolist() for k, v in weights.items()} == got["weights"]
    assert not any(hasattr(f, "__dynamo_disable") and f.__dynamo_disable is f for f in _dynamo_disabled())
