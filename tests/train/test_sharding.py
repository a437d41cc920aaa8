"""``strategy: fsdp`` in the loop: 2 gloo ranks (spawned) with FSDP2-sharded parameters train like
one unsharded worker with the global batch; their checkpoints hold the full state, in the layout of
an unsharded run's, so they resume sharded (exactly) or not; evaluation runs in lockstep."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from gloo_helpers import GlooSession, spawn_gloo

from raytune_opt.train import run_local
from raytune_opt.train.checkpoint import load_state
from raytune_opt.train.session import LocalSession

CONFIG = {
    "task": "digits-mlp",
    "task_args": {"hidden": 16},
    "optimizer": "adamw",
    "lr": 3e-3,
    "weight_decay": 0.1,
    "batch_size": 64,
    "epochs": 2,
    "grad_clip": 0.5,
    "schedule": "warmup_cosine",
    "seed": 3,
}


def _lockstep_eval(rank: int, session: GlooSession) -> list[float]:
    """Rank 0 evaluates 3 batches, rank 1 one: the sharded model's forwards stay in lockstep."""
    from raytune_opt.tasks import get_task
    from raytune_opt.train.config import validate
    from raytune_opt.train.loop import _evaluate

    torch.manual_seed(0)
    spec = get_task("digits-mlp").build(hidden=16)
    model = session.shard_model(spec.model)
    x, y = spec.val

    class Uneven:
        def batches(self):
            return (
                [(x[:10], y[:10]), (x[10:20], y[10:20]), (x[20:25], y[20:25])]
                if rank == 0
                else [(x[25:30], y[25:30])]
            )

    return list(_evaluate(model, spec, Uneven(), validate(CONFIG), session))


def _rank(rank: int, world: int, storage: str) -> None:
    from raytune_opt.train.loop import train_loop

    config = {**CONFIG, "num_workers": world, "strategy": "fsdp"}
    straight = GlooSession(rank, world, os.path.join(storage, "straight"))
    train_loop(config, straight)
    first = os.path.join(storage, "straight", "checkpoint_epoch_000001")
    resumed = GlooSession(rank, world, os.path.join(storage, "resumed"), checkpoint=first)
    train_loop(config, resumed)
    evaluated = _lockstep_eval(rank, straight)
    if rank == 0:
        out = {"straight": straight.results, "resumed": resumed.results, "eval": evaluated}
        Path(storage, "results.json").write_text(json.dumps(out))


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    storage = tmp_path_factory.mktemp("fsdp")
    spawn_gloo(_rank, str(storage))
    return storage


def _close(a, b, **tol) -> None:
    """Two (nested) state dicts agree: tensors to ``tol``, everything else exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _close(a[k], b[k], **tol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y, **tol)
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, **tol)
    else:
        assert a == b


def test_two_sharded_ranks_train_like_one_unsharded_worker(fsdp_runs: Path, tmp_path: Path) -> None:
    results = json.loads((fsdp_runs / "results.json").read_text())
    single = run_local(CONFIG, storage=str(tmp_path))
    assert [r["samples_seen"] for r in results["straight"]] == [1150, 2300]
    assert [r["train_loss"] for r in results["straight"]] == pytest.approx(
        [r["train_loss"] for r in single.results], rel=1e-5
    )
    assert results["straight"][-1]["optimizer_state_bytes_per_param"] == 8.0  # AdamW, float32
    sharded = load_state(fsdp_runs / "straight" / "checkpoint_epoch_000002")
    ref = load_state(single.checkpoints[-1])
    assert len(sharded["rng"]) == 2
    _close(sharded["model"], ref["model"], rtol=1e-4, atol=1e-5)
    # the full optimizer state, numbered as an unsharded optimizer's state_dict(): same keys, values
    _close(sharded["optimizer"], ref["optimizer"], rtol=1e-4, atol=1e-5)


def test_a_sharded_resume_is_exact(fsdp_runs: Path) -> None:
    results = json.loads((fsdp_runs / "results.json").read_text())
    assert results["resumed"] == [
        {**r, "time_this_epoch_s": results["resumed"][0]["time_this_epoch_s"]}
        for r in results["straight"][1:]
    ]
    straight = load_state(fsdp_runs / "straight" / "checkpoint_epoch_000002")
    resumed = load_state(fsdp_runs / "resumed" / "checkpoint_epoch_000002")
    _close(resumed["model"], straight["model"], rtol=0, atol=0)
    _close(resumed["optimizer"]["state"], straight["optimizer"]["state"], rtol=0, atol=0)
    # the groups: the same hyperparameters (a loaded optimizer also records torch's `differentiable`)
    for a, b in zip(resumed["optimizer"]["param_groups"], straight["optimizer"]["param_groups"], strict=True):
        assert {k: tuple(v) if isinstance(v, list) else v for k, v in a.items() if k != "differentiable"} == {
            k: tuple(v) if isinstance(v, list) else v for k, v in b.items()
        }


def test_a_sharded_checkpoint_resumes_unsharded(fsdp_runs: Path) -> None:
    """The full state loads into one unsharded worker (plain load_state_dict): it trains on from it."""
    first = str(fsdp_runs / "straight" / "checkpoint_epoch_000001")
    local = run_local(CONFIG, checkpoint=first)
    straight = json.loads((fsdp_runs / "results.json").read_text())["straight"]
    assert [r["epoch"] for r in local.results] == [2]
    assert local.results[0]["train_loss"] == pytest.approx(straight[1]["train_loss"], rel=1e-5)


def test_evaluation_runs_in_lockstep_on_uneven_shares(fsdp_runs: Path) -> None:
    """Rank 0's 25 samples and rank 1's 5 (rank 1 runs two empty forwards): the mean over all 30."""
    from raytune_opt.tasks import get_task
    from raytune_opt.train.config import validate
    from raytune_opt.train.loop import _evaluate

    results = json.loads((fsdp_runs / "results.json").read_text())
    torch.manual_seed(0)
    spec = get_task("digits-mlp").build(hidden=16)
    x, y = spec.val

    class All:
        def batches(self):
            return [(x[:30], y[:30])]

    ref = _evaluate(spec.model, spec, All(), validate(CONFIG), LocalSession())
    assert results["eval"] == pytest.approx(list(ref), rel=1e-5)


def test_fsdp_without_a_process_group_trains_the_whole_model() -> None:
    """One process (run_local, a comparison's retraining): nothing to shard over, the model stays whole."""
    whole = run_local({**CONFIG, "epochs": 1, "strategy": "fsdp"})
    ddp = run_local({**CONFIG, "epochs": 1})
    assert whole.results[0]["train_loss"] == ddp.results[0]["train_loss"]
