"""On the real local Ray: DDP under TorchTrainer inside Tune, PBT cloning with mutated lr, divergence."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining

from raytune_opt import trial_logs
from raytune_opt.train import run_local, trainable
from raytune_opt.train.checkpoint import load_state

DIGITS = {"task": "digits-mlp", "task_args": {"hidden": 16}, "weight_decay": 0.0}


def _tuner(space: dict, tmp_path: Path, **tune_config) -> tune.ResultGrid:
    return tune.Tuner(
        trainable(space),
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", **tune_config),
        # Ray's own loggers lose a paused PBT trial's last reports (see raytune_opt.trial_logs)
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), name="exp", verbose=0, callbacks=trial_logs.loggers()
        ),
    ).fit()


def test_two_worker_ddp_reproduces_one_worker(ray_local, tmp_path: Path) -> None:
    """2 workers × 32 samples (gloo DDP, TorchTrainer in a Tune trial) == 1 worker × 64, to 1e-5.

    1150 training samples split evenly, so every global batch is the same set of samples; only
    the order of float additions differs (all-reduce of the two half-batch mean gradients).
    """
    # half a CPU a worker: the trial fits the suite's 2-CPU Ray even when an earlier test's lease is
    # still held (seen in full runs: one CPU taken, unidentified, and a 2-CPU request waited forever)
    space = {
        **DIGITS,
        "optimizer": "momentum",
        "lr": 0.05,
        "batch_size": 64,
        "epochs": 2,
        "num_workers": 2,
        "resources_per_worker": {"CPU": 0.5},
    }
    results = _tuner(space, tmp_path, reuse_actors=False)
    result = results[0]
    assert result.error is None
    df = result.metrics_dataframe
    assert df["epoch"].tolist() == [1, 2] and df["samples_seen"].tolist() == [1150, 2 * 1150]
    assert result.checkpoint is not None  # Tune holds the trial's checkpoint: PBT can clone it
    ddp = load_state(result.checkpoint)
    single = run_local({**space, "num_workers": 1}, storage=str(tmp_path / "single"))
    ref = load_state(single.checkpoints[-1])
    assert len(ddp["rng"]) == 2 and ddp["epoch"] == 2
    for k, v in ref["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-5)
    assert df["train_loss"].tolist() == pytest.approx([r["train_loss"] for r in single.results], rel=1e-5)
    assert df["val_accuracy"].iloc[-1] == pytest.approx(single.results[-1]["val_accuracy"], abs=2 / 359)


def test_pbt_clones_with_the_mutated_lr_and_survives_a_diverged_trial(ray_local, tmp_path: Path) -> None:
    """Three trials, one diverging (lr 1e30): the experiment finishes; the weak trial clones the
    strong one's checkpoint and then trains with its own, mutated lr (Ray issue #36660)."""
    space = {
        **DIGITS,
        "optimizer": "sgd",
        "lr": tune.grid_search([1e30, 0.5, 1e-4]),
        "batch_size": 64,
        "epochs": 4,
    }
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=2,
        hyperparam_mutations={"lr": tune.loguniform(1e-3, 0.2)},
        resample_probability=1.0,
        quantile_fraction=0.5,
        synch=True,
    )
    # reuse_actors=False: synchronous PBT with cached actors stalled once on the 2-CPU test cluster
    results = _tuner(space, tmp_path, scheduler=pbt, reuse_actors=False)
    assert all(r.error is None for r in results)
    frames = [r.metrics_dataframe for r in results]
    diverged = [df for df in frames if df["diverged"].any()]
    assert len(diverged) == 1 and len(diverged[0]) == 1
    assert diverged[0]["val_accuracy"].iloc[-1] == 0.0 and math.isinf(diverged[0]["val_loss"].iloc[-1])
    cloned = 0
    for df in frames:
        # the lr the loop used is the trial's current config lr in every epoch, before and after cloning
        assert df["lr"].tolist() == pytest.approx(df["config/lr"].tolist(), rel=1e-12)
        if df["config/lr"].nunique() > 1:
            cloned += 1
            assert df["epoch"].tolist() == [1, 2, 3, 4]  # continued from the donor's epoch 2
            assert df["config/lr"].iloc[2] != df["config/lr"].iloc[0]
    assert cloned == 1
    finished = [df for df in frames if not df["diverged"].any()]
    assert all(df["epoch"].iloc[-1] == 4 for df in finished)


def test_a_trial_carries_only_its_own_tasks(ray_local, tmp_path: Path) -> None:
    """A registered task whose code the workers cannot import (a module only this process has) does not
    break the trials of other tasks: a trainable ships only the tasks its trials use."""
    import sys
    import types

    from raytune_opt.tasks import get_task, register_task, user_tasks
    from raytune_opt.train.config import task_names

    module = types.ModuleType("only_in_the_driver")
    exec("def task():\n    return None\n", module.__dict__)
    sys.modules["only_in_the_driver"] = module
    register_task("test-only-in-the-driver", module.task, overwrite=True)
    try:
        space = {**DIGITS, "optimizer": "adam", "lr": 1e-2, "epochs": 1}
        assert "test-only-in-the-driver" not in user_tasks(task_names(space))
        assert "test-only-in-the-driver" in user_tasks()
        result = _tuner(space, tmp_path)[0]
        assert result.error is None and result.metrics["epoch"] == 1
    finally:
        del sys.modules["only_in_the_driver"]
        get_task("digits-mlp")  # the registry is still usable


def test_two_worker_fsdp_trial_reproduces_one_worker(ray_local, tmp_path: Path) -> None:
    """strategy fsdp under TorchTrainer (gloo, half a CPU a worker): FSDP2-sharded parameters step
    like one unsharded worker, and Tune holds the full-state checkpoint (what PBT clones)."""
    space = {
        **DIGITS,
        "optimizer": "adamw",
        "lr": 3e-3,
        "batch_size": 64,
        "epochs": 2,
        "num_workers": 2,
        "resources_per_worker": {"CPU": 0.5},
        "strategy": "fsdp",
    }
    result = _tuner(space, tmp_path, reuse_actors=False)[0]
    assert result.error is None
    df = result.metrics_dataframe
    assert df["samples_seen"].tolist() == [1150, 2 * 1150]
    assert df["optimizer_state_bytes_per_param"].tolist() == [8.0, 8.0]  # AdamW: two float32 buffers
    single = run_local({**space, "num_workers": 1, "strategy": "ddp"}, storage=str(tmp_path / "single"))
    assert df["train_loss"].tolist() == pytest.approx([r["train_loss"] for r in single.results], rel=1e-5)
    sharded, ref = load_state(result.checkpoint), load_state(single.checkpoints[-1])
    for k, v in ref["model"].items():
        torch.testing.assert_close(sharded["model"][k], v, rtol=1e-4, atol=1e-5)
    for i, state in ref["optimizer"]["state"].items():
        torch.testing.assert_close(sharded["optimizer"]["state"][i]["exp_avg_sq"], state["exp_avg_sq"])
