"""Tasks that give ``torch.utils.data.Dataset`` s: the same steps as tensors, sharding, subsets, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from gloo_helpers import GlooSession, spawn_gloo
from torch import Tensor, nn
from torch.utils.data import Dataset, IterableDataset

from raytune_opt.errors import ConfigError
from raytune_opt.tasks import TaskSpec, register_task
from raytune_opt.tasks.digits import load_digits
from raytune_opt.train import run_local, validate
from raytune_opt.train.checkpoint import load_state
from raytune_opt.train.data import check_loader_options, subset_indices
from raytune_opt.train.loop import train_loop
from raytune_opt.train.session import LocalSession


class Pairs(Dataset):
    """A map-style Dataset over (x, y) rows, read one item at a time (what a user's Dataset does)."""

    def __init__(self, x: Tensor, y: Tensor, with_targets: bool = True, fail_at: int | None = None) -> None:
        self.x, self.y, self.fail_at = x, y, fail_at
        if with_targets:
            self.targets = y.tolist()  # torchvision's attribute, as a list

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        if i == self.fail_at:
            raise ValueError(f"corrupt sample {i}")
        return self.x[i], int(self.y[i])


class Listy(Pairs):
    """Items that are not (x, y) pairs."""

    def __getitem__(self, i: int) -> list[float]:
        return [1.0, 2.0, 3.0]


class Stream(IterableDataset):
    """An IterableDataset without a length."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y.tolist(), strict=True))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


@register_task("test-data-digits", overwrite=True)
def digits_as(kind: str = "tensors", fail_at: int = -1, targets: bool = True, bad: str = "") -> TaskSpec:
    """Digits as tensors, as a map-style Dataset or as a stream (fail_at: that sample raises)."""
    x, y, xv, yv, _, _ = load_digits()
    ce = nn.functional.cross_entropy
    if kind == "tensors":
        train, val = (x, y), (xv, yv)
    elif kind == "dataset":
        train = Pairs(x, y, with_targets=targets, fail_at=None if fail_at < 0 else fail_at)
        val = Pairs(xv, yv)
    else:
        train, val = Stream(x, y), Pairs(xv, yv)
    if bad == "shape":
        val = Pairs(xv[:, :32], yv)
    elif bad == "type":
        train = Listy(x, y)
    return TaskSpec(train=train, val=val, model=_mlp(), loss=ce, num_classes=10)


BASE = {"task": "test-data-digits", "optimizer": "momentum", "lr": 0.05, "batch_size": 64, "epochs": 2}


def _final(session: LocalSession) -> dict[str, Tensor]:
    return load_state(session.checkpoints[-1])["model"]


def test_a_dataset_through_loader_workers_steps_like_the_tensors(tmp_path: Path) -> None:
    """The same samples as a Dataset (DataLoader, 2 loader workers) and as tensors, with a stratified
    data_fraction from the Dataset's `targets`: the same batches, so the same losses and weights."""
    cfg = {**BASE, "data_fraction": 0.5}
    ref = run_local({**cfg, "task_args": {"kind": "tensors"}}, storage=str(tmp_path / "t"))
    ds = run_local(
        {**cfg, "task_args": {"kind": "dataset"}, "data": {"num_workers": 2, "persistent_workers": True}},
        storage=str(tmp_path / "d"),
    )
    assert [r["samples_seen"] for r in ds.results] == [575, 1150]
    assert [r["train_loss"] for r in ds.results] == pytest.approx(
        [r["train_loss"] for r in ref.results], rel=1e-6
    )
    assert [r["val_accuracy"] for r in ds.results] == [r["val_accuracy"] for r in ref.results]
    for k, v in _final(ref).items():
        torch.testing.assert_close(_final(ds)[k], v, rtol=1e-6, atol=1e-7)


def test_drop_last_drops_the_partial_batch_for_both_kinds(tmp_path: Path) -> None:
    cfg = {**BASE, "epochs": 1, "data": {"drop_last": True}}
    t = run_local({**cfg, "task_args": {"kind": "tensors"}})
    d = run_local({**cfg, "task_args": {"kind": "dataset"}})
    assert t.results[0]["samples_seen"] == d.results[0]["samples_seen"] == (1150 // 64) * 64
    assert t.results[0]["train_loss"] == pytest.approx(d.results[0]["train_loss"], rel=1e-6)


class _DDPSession(GlooSession):
    """A rank of the gloo group whose model is wrapped in DDP."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return nn.parallel.DistributedDataParallel(model)


def _rank(rank: int, world_size: int, config: dict, storage: str) -> None:
    session = _DDPSession(rank, world_size, storage)
    train_loop(config, session)
    with open(os.path.join(storage, f"results_{rank}.json"), "w") as f:
        json.dump(session.results, f)


def test_two_gloo_ranks_on_a_dataset_step_like_one_worker(tmp_path: Path) -> None:
    """2 ranks × 32 (DDP on gloo, each reading its DistributedSampler shard of a Dataset through a
    DataLoader with 2 loader workers) == 1 worker × 64 on the same Dataset, up to summation order."""
    cfg = {**BASE, "task_args": {"kind": "dataset"}, "data": {"num_workers": 2}}
    single = run_local(cfg, storage=str(tmp_path / "one"))
    storage = tmp_path / "two"
    storage.mkdir()
    spawn_gloo(_rank, {**cfg, "num_workers": 2}, str(storage))
    two = json.loads((storage / "results_0.json").read_text())
    assert [r["samples_seen"] for r in two] == [1150, 2300]
    assert [r["train_loss"] for r in two] == pytest.approx(
        [r["train_loss"] for r in single.results], rel=1e-5
    )
    ddp = load_state(sorted(storage.glob("checkpoint_epoch_*"))[-1])
    assert len(ddp["rng"]) == 2
    for k, v in _final(single).items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-5)


def test_a_stream_without_a_length_trains_with_one_worker() -> None:
    s = run_local({**BASE, "epochs": 1, "task_args": {"kind": "stream"}})
    assert s.results[0]["samples_seen"] == 1150 and not s.results[0]["diverged"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"data_fraction": 0.5},
            r"task 'test-data-digits': data_fraction = 0.5 is not allowed: expected 1.0",
        ),
        ({"schedule": "cosine"}, r"schedule = 'cosine' is not allowed: expected 'constant'"),
        ({"batch_size": "full"}, r"batch_size = 'full' is not allowed"),
    ],
)
def test_a_stream_refuses_what_needs_its_length(change: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        run_local({**BASE, "task_args": {"kind": "stream"}, **change})


def test_items_of_the_wrong_shape_or_type_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"task 'test-data-digits': the shapes of a TaskSpec.val item"):
        run_local({**BASE, "task_args": {"kind": "dataset", "bad": "shape"}})
    with pytest.raises(
        ConfigError, match=r"TaskSpec.train\[0\] = 'list' is not allowed: expected an \(x, y\) pair"
    ):
        run_local({**BASE, "task_args": {"kind": "dataset", "bad": "type"}})


def test_a_loader_worker_that_crashes_fails_the_run_with_its_message() -> None:
    with pytest.raises(ValueError, match=r"corrupt sample 7"):
        run_local({**BASE, "task_args": {"kind": "dataset", "fail_at": 7}, "data": {"num_workers": 2}})


def test_subsets_of_a_dataset_are_stratified_seeded_and_nested() -> None:
    """Indices only (for a Subset): stratified by `targets` (or given labels), nested across
    fractions; without labels a plain seeded subset, or a ConfigError when stratify is required."""
    x, y = torch.zeros(100, 2), torch.arange(100) % 4
    half = subset_indices(Pairs(x, y), 0.5, seed=3)
    assert sorted(torch.bincount(y[half]).tolist()) == [12, 12, 13, 13]
    assert torch.equal(half, subset_indices(Pairs(x, y), 0.5, seed=3))
    assert set(subset_indices(Pairs(x, y), 0.25, seed=3).tolist()) <= set(half.tolist())
    unlabeled = Pairs(x, y, with_targets=False)
    plain = subset_indices(unlabeled, 0.5, seed=3)
    assert len(plain) == 50 and not torch.equal(plain, half)
    assert torch.equal(subset_indices(unlabeled, 0.5, seed=3, stratify=True, labels=y), half)
    with pytest.raises(ConfigError, match=r"task 't': train.data.stratify = True is not allowed"):
        subset_indices(unlabeled, 0.5, seed=3, stratify=True, where="task 't': ")
    with pytest.raises(ConfigError, match=r"data_fraction = 0.5 is not allowed: expected 1 for a Stream"):
        subset_indices(Stream(x, y), 0.5)


def test_loader_options_are_checked_before_any_trial() -> None:
    with pytest.raises(
        ConfigError, match=r"train.data.persistent_workers = True is not allowed.*num_workers = 0"
    ):
        validate({**BASE, "data": {"persistent_workers": True}})
    with pytest.raises(ConfigError, match=r"train.data.prefetch_factor = 4 is not allowed"):
        validate({**BASE, "data": {"prefetch_factor": 4}})
    with pytest.raises(ConfigError, match=r"data.num_workers = -1 is not allowed"):
        validate({**BASE, "data": {"num_workers": -1}})
    with pytest.raises(ConfigError, match=r"data.pin_memory"):
        validate({**BASE, "data": {"pin_memory": "yes"}})
    cfg = validate({**BASE, "data": {"num_workers": 2, "prefetch_factor": 4}})
    # a torch whose DataLoader lacks an option (its parameter names given explicitly)
    with pytest.raises(
        ConfigError, match=r"task 'x': train.data.prefetch_factor = 4 .*has no 'prefetch_factor'"
    ):
        check_loader_options(cfg.data, "x", accepted={"num_workers", "pin_memory", "drop_last"})


def test_an_experiment_checks_the_data_before_any_trial() -> None:
    """`train.data` is a section of the experiment's `train`; its plan checks the task's data."""
    from raytune_opt import Experiment

    base = {
        "name": "x",
        "task": {"name": "test-data-digits", "args": {"kind": "dataset"}},
        "train": {"epochs": 1, "data": {"num_workers": 2}},
        "search": {"strategy": "random", "optimizers": ["adamw"], "num_samples": 2},
    }
    assert "test-data-digits" in str(Experiment.from_dict(base).plan())
    stream = {"name": "test-data-digits", "args": {"kind": "stream"}}
    with pytest.raises(
        ConfigError, match=r"task: task 'test-data-digits': data_fraction = 0.5 is not allowed"
    ):
        Experiment.from_dict({**base, "task": stream, "train": {"data_fraction": 0.5}}).plan()
    with pytest.raises(
        ConfigError,
        match=r"train.data.num_wokers is not a known key \(did you mean 'num_workers'\?\); allowed: num_w",
    ):
        Experiment.from_dict({**base, "train": {"data": {"num_wokers": 2}}}).plan()
