"""PBT and PB2 reuse trial actors (``reuse_actors=True``, their default): an exploited trial continues
from its donor's checkpoint in a process that already ran another trial.

Ray 2.60 reuses a function trainable's actor through ``FunctionTrainable.reset_config`` (the training
thread of the paused trial is ended, a fresh session made for the new trial, with its own trial id),
then restores the trial's latest checkpoint — which PBT's exploit has set to the donor's — into that
session: ``ray.tune.get_checkpoint()`` in the next run of the function is the donor's. Both
trainables use it: the built-in one (:func:`raytune_opt.train.trainable`) and a user's own training
function written with :class:`raytune_opt.train.user.Trial`.

Each run here is sequential (``max_concurrent=1``: one trial at a time, two trials, 6 epochs,
perturbation every 2): a trial pauses at each perturbation so that the other one runs; the better one
(run first, see ``SEED``) has a donor checkpoint at epoch 4, and the worse one, reaching epoch 4,
clones it with a mutated lr. The test replays the clone without Ray from the donor's epoch-4
checkpoint (``run_local`` / a ``LocalSession``): the clone's epochs 5–6 (epoch counter, losses) and
final weights must be exactly those of that replay; and every start — two trials, each resumed twice
— ran in one process (Ray's ``pid`` in each result): the first trial's actor, reused.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from ray import cloudpickle, tune

from raytune_opt import trial_logs
from raytune_opt.capabilities import capabilities
from raytune_opt.search import SearchSpace, make_tune_config
from raytune_opt.train import LocalSession, run_local, trainable
from raytune_opt.train.checkpoint import load_state
from raytune_opt.train.user import Trial

# Ray workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BUILT_IN = {
    "task": "digits-mlp",
    "task_args": {"hidden": 8},
    "optimizer": "sgd",
    "weight_decay": 0.0,
    "batch_size": 128,
    "epochs": 6,
}
SPACE = {"lr": {"loguniform": [1e-2, 0.3]}}
#: the seed whose population (lr 0.247, then 0.057) runs the better trial first: the second clones it
SEED = 4


@capabilities(checkpoints=True)
def user_fn(config: dict, session: Any = None) -> None:
    """A user's own loop: a 3 → 1 linear model on fixed data, SGD from the trial's config."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(64, generator=g)
    trial = Trial(config, session)
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 1)
    opt = trial.optimizer(model)
    trial.restore(model, opt)
    for _ in trial.epochs():
        for i in torch.randperm(64).split(16):  # the RNG state travels with the checkpoint
            opt.zero_grad()
            loss = ((model(x[i]).squeeze(-1) - y[i]) ** 2).mean()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = ((model(x).squeeze(-1) - y) ** 2).mean().item()
        trial.report({"val_loss": val}, model, opt)


def _fit(fn: Any, strategy: str, metric: str, mode: str, param_space: dict, tmp_path: Path) -> Any:
    cfg = make_tune_config(
        strategy,
        SearchSpace(SPACE),
        metric=metric,
        mode=mode,
        num_samples=2,
        max_t=6,
        seed=SEED,
        max_concurrent=1,
        trainable=fn,
        perturbation_interval=2,
        quantile_fraction=0.5,
    )
    assert cfg.reuse_actors  # the default of pbt and pb2
    grid = tune.Tuner(
        fn,
        param_space=param_space,
        tune_config=cfg,
        run_config=tune.RunConfig(
            name=strategy, storage_path=str(tmp_path), verbose=0, callbacks=trial_logs.loggers()
        ),
    ).fit()
    assert grid.num_errors == 0
    return list(grid)


def _clone_and_donor(results: list) -> tuple[Any, Any, int]:
    """The trial whose lr changed (the clone), the other one (its donor), the epoch it cloned at."""
    changed = [r for r in results if r.metrics_dataframe["config/lr"].nunique() > 1]
    assert len(changed) == 1, [r.metrics_dataframe["config/lr"].tolist() for r in results]
    clone = changed[0]
    donor = next(r for r in results if r is not clone)
    lrs = clone.metrics_dataframe["config/lr"].tolist()
    at = next(i for i in range(len(lrs)) if lrs[i] != lrs[0])
    return clone, donor, at


def _donor_checkpoint(donor: Any, epoch: int) -> Any:
    return next(c for c, m in donor.best_checkpoints if m["epoch"] == epoch)


def _assert_reused(results: list) -> None:
    """Every start ran in one process: the actor of the first trial, reused (sequential run)."""
    pids = {int(p) for r in results for p in r.metrics_dataframe["pid"]}
    assert len(pids) == 1, pids


@pytest.mark.parametrize("strategy", ["pbt", "pb2"])
def test_built_in_trainable_clone_continues_from_the_donor_in_a_reused_actor(strategy, ray_local, tmp_path):
    fn = trainable(BUILT_IN)
    results = _fit(fn, strategy, "val_loss", "min", BUILT_IN, tmp_path)
    clone, donor, at = _clone_and_donor(results)
    df = clone.metrics_dataframe
    assert df["epoch"].tolist() == [1, 2, 3, 4, 5, 6] and at == 4
    new_config = {**BUILT_IN, "lr": float(df["config/lr"].iloc[-1])}
    replay = run_local(new_config, checkpoint=_donor_checkpoint(donor, at), storage=str(tmp_path / "r"))
    assert [r["epoch"] for r in replay.results] == [5, 6]
    assert df["train_loss"].tolist()[at:] == [r["train_loss"] for r in replay.results]
    assert df["val_loss"].tolist()[at:] == [r["val_loss"] for r in replay.results]
    ours = load_state(clone.checkpoint)["model"]
    for k, v in load_state(replay.checkpoints[-1])["model"].items():
        assert torch.equal(ours[k], v), k
    _assert_reused(results)


@pytest.mark.parametrize("strategy", ["pbt", "pb2"])
def test_user_function_clone_continues_from_the_donor_in_a_reused_actor(strategy, ray_local, tmp_path):
    results = _fit(user_fn, strategy, "val_loss", "min", {"optimizer": "sgd", "epochs": 6}, tmp_path)
    clone, donor, at = _clone_and_donor(results)
    df = clone.metrics_dataframe
    assert df["epoch"].tolist() == [1, 2, 3, 4, 5, 6] and at == 4
    session = LocalSession(checkpoint=_donor_checkpoint(donor, at), storage=str(tmp_path / "r"))
    user_fn({"optimizer": "sgd", "epochs": 6, "lr": float(df["config/lr"].iloc[-1])}, session)
    assert [r["epoch"] for r in session.results] == [5, 6]
    assert df["val_loss"].tolist()[at:] == [r["val_loss"] for r in session.results]
    ours = load_state(clone.checkpoint)["model"]
    for k, v in load_state(session.checkpoints[-1])["model"].items():
        assert torch.equal(ours[k], v), k
    _assert_reused(results)
