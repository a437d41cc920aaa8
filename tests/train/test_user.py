"""A user's own training function: raytune_opt.train.user.Trial locally, and the example under Ray Tune."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from raytune_opt.capabilities import declared
from raytune_opt.errors import ConfigError
from raytune_opt.train.checkpoint import load_state
from raytune_opt.train.session import LocalSession
from raytune_opt.train.user import Trial

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_training_function.py"


def _example():
    spec = importlib.util.spec_from_file_location("own_training_function", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ex = _example()


def _run(config: dict, session: LocalSession) -> LocalSession:
    """The example's train_fn on a LocalSession (what it does inside a Tune trial)."""
    ex.train_fn(config, session)
    return session


def test_optimizer_from_the_config_with_optimizer_aware_keys() -> None:
    trial = Trial(
        {"optimizer": "lion", "lion.lr": 3e-4, "adamw.lr": 1e-2, "weight_decay": 0.5}, LocalSession()
    )
    assert trial.hparams == {"lr": 3e-4, "weight_decay": 0.5} and trial.optimizer_name == "lion"
    opt = trial.optimizer(nn.Linear(3, 2))
    assert type(opt).__name__ == "Lion"
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]  # the bias is not decayed
    assert [g["lr"] for g in opt.param_groups] == [3e-4, 3e-4]
    with pytest.raises(ConfigError, match="lr"):
        Trial({"optimizer": "lion", "lion.lr": 1e-3, "lr": 1e-2}, LocalSession())
    with pytest.raises(ConfigError, match="epochs = 0 is not allowed"):
        Trial({"epochs": 0}, LocalSession())


def test_resume_from_a_checkpoint_is_bit_exact(tmp_path: Path) -> None:
    """2 epochs, then 2 more from the checkpoint == 4 straight: weights, optimizer, schedule, RNG (the
    example's DataLoader shuffles with torch's global RNG: epochs 3 and 4 see the same batches only
    if the checkpoint restored it)."""
    cfg = {"optimizer": "adamw", "lr": 1e-2, "epochs": 4}
    straight = _run(cfg, LocalSession(storage=str(tmp_path / "a")))
    first = _run(cfg, LocalSession(storage=str(tmp_path / "b"), stop_after=2))
    rest = _run(cfg, LocalSession(checkpoint=first.checkpoints[-1], storage=str(tmp_path / "c")))
    assert [r["epoch"] for r in rest.results] == [3, 4]
    assert [r["val_loss"] for r in first.results + rest.results] == [r["val_loss"] for r in straight.results]
    a, b = load_state(straight.checkpoints[-1]), load_state(rest.checkpoints[-1])
    for k, v in a["model"].items():
        assert torch.equal(b["model"][k], v)


def test_a_pbt_clone_keeps_the_state_and_takes_its_own_lr(tmp_path: Path) -> None:
    """Cloned at epoch 2 with another lr: the moments and the schedule position come from the donor,
    the lr is the clone's base times the schedule's factor (the example's 0.9 ** epoch)."""
    donor = _run(
        {"optimizer": "adamw", "lr": 1e-2, "epochs": 4},
        LocalSession(storage=str(tmp_path / "d"), stop_after=2),
    )
    clone = _run(
        {"optimizer": "adamw", "lr": 4e-3, "epochs": 4},
        LocalSession(checkpoint=donor.checkpoints[-1], storage=str(tmp_path / "c")),
    )
    assert [r["epoch"] for r in clone.results] == [3, 4]
    assert [r["lr"] for r in clone.results] == pytest.approx([4e-3 * 0.9**3, 4e-3 * 0.9**4], rel=1e-12)
    state = load_state(clone.checkpoints[-1])
    assert state["hparams"]["lr"] == 4e-3
    assert [g["initial_lr"] for g in state["optimizer"]["param_groups"]] == [4e-3, 4e-3]
    # 2000 samples in batches of 64: 32 steps an epoch, the donor's 2 epochs and the clone's 2
    assert int(next(iter(state["optimizer"]["state"].values()))["step"]) == 4 * 32


def test_subset_is_the_data_fraction_stratified_and_nested() -> None:
    data = ex.Blobs(400, seed=0)
    half = Trial({"data_fraction": 0.5}, LocalSession()).subset(data)
    quarter = Trial({"data_fraction": 0.25}, LocalSession()).subset(data)
    assert len(half) == 200 and len(quarter) == 100
    assert torch.bincount(data.targets[half.indices]).tolist() == [50, 50, 50, 50]
    assert set(quarter.indices) <= set(half.indices)
    assert Trial({}, LocalSession()).subset(data) is data


def test_the_example_declares_what_pbt_and_fabolas_need() -> None:
    """The strategies read the declaration (not the source): the example passes, an undeclared copy not."""
    from raytune_opt.search import SearchSpace, make_tune_config

    assert declared(ex.train_fn) == {"checkpoints": True, "data_fraction": True}
    space = SearchSpace({"adamw.lr": {"loguniform": [1e-3, 0.3]}})
    for strategy in ("pbt", "pb2", "fabolas"):
        make_tune_config(
            strategy, space, metric="val_loss", mode="min", num_samples=2, max_t=4, trainable=ex.train_fn
        )

    def undeclared(config: dict) -> None:
        ex.train_fn(config)

    for strategy, match in (
        ("pbt", "does not declare checkpoints"),
        ("fabolas", "does not declare data_fraction"),
    ):
        with pytest.raises(ConfigError, match=match):
            make_tune_config(
                strategy, space, metric="val_loss", mode="min", num_samples=2, max_t=4, trainable=undeclared
            )


@pytest.mark.parametrize("strategy", ["asha", "pbt"])
def test_the_example_tunes_with_ray(ray_local, tmp_path: Path, strategy: str) -> None:
    options = {"perturbation_interval": 2, "synch": True} if strategy == "pbt" else {}
    results = ex.tune_own_function(strategy, num_samples=2, epochs=4, storage=str(tmp_path), **options)
    assert all(r.error is None for r in results)
    frames = [r.metrics_dataframe for r in results]
    assert all(math.isfinite(df["val_loss"].iloc[-1]) for df in frames)
    for df in frames:
        # the lr the function used is the trial's adamw.lr times its schedule, before and after a clone
        expected = df["config/adamw.lr"] * 0.9 ** df["epoch"]
        assert df["lr"].tolist() == pytest.approx(expected.tolist(), rel=1e-9)
        assert df["epoch"].tolist() == list(range(1, len(df) + 1))
    if strategy == "pbt":
        assert all(len(df) == 4 for df in frames)  # every trial ran its 4 epochs
        cloned = [df for df in frames if df["config/adamw.lr"].nunique() > 1]
        assert len(cloned) == 1  # the worse of the two cloned the better at epoch 2, with a new lr
        assert results.get_best_result().checkpoint is not None
