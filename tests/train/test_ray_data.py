"""Tasks that give ``ray.data.Dataset`` s (Parquet files the test writes), on the suite's local Ray:
one worker reads the Dataset itself, two DDP workers read TorchTrainer's shards; samples; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ray import tune

from raytune_opt import Experiment, trial_logs
from raytune_opt.errors import ConfigError
from raytune_opt.experiment.plugins import import_plugins
from raytune_opt.tasks.digits import load_digits
from raytune_opt.train import run_local, trainable
from raytune_opt.train.ray_data import sample

# the task reads the Parquet folders; registered through an imports file, so Ray workers get it by value
PLUGIN = '''
import ray
from torch import nn
from raytune_opt.tasks import TaskSpec, register_task


@register_task("test-ray-data-digits", overwrite=True)
def digits_parquet(root: str = "", label: str = "y") -> TaskSpec:
    """scikit-learn digits read from Parquet files as Ray Datasets (label: the label column's name)."""
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    return TaskSpec(
        train=ray.data.read_parquet(f"{root}/train"),
        val=ray.data.read_parquet(f"{root}/val"),
        model=model,
        loss=nn.functional.cross_entropy,
        num_classes=10,
        columns=("x", label),
    )
'''


def _write(folder: Path, x: np.ndarray, y: np.ndarray, files: int) -> None:
    folder.mkdir(parents=True)
    for i, idx in enumerate(np.array_split(np.arange(len(y)), files)):
        pq.write_table(pa.table({"x": list(x[idx]), "y": y[idx]}), folder / f"part{i}.parquet")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Digits as Parquet: train (1150 rows) in 3 files and in 1, val (288) in 2; the task registered."""
    base = tmp_path_factory.mktemp("parquet")
    x, y, xv, yv, _, _ = load_digits()
    _write(base / "train", x.numpy(), y.numpy(), files=3)
    _write(base / "one" / "train", x.numpy(), y.numpy(), files=1)
    _write(base / "val", xv.numpy(), yv.numpy(), files=2)
    (base / "plugin.py").write_text(PLUGIN)
    import_plugins(["plugin.py"], base=base)
    return str(base)


BASE = {"task": "test-ray-data-digits", "optimizer": "adam", "lr": 1e-2, "batch_size": 64, "epochs": 2}


def _rows(ds) -> set[bytes]:
    return {bytes(np.asarray(r["x"], dtype=np.float32)) for r in ds.take_all()}


def test_samples_are_seeded_nested_and_independent_of_the_files(ray_local, root: str) -> None:
    """The same rows from 3 files or 1 (Ray's random_sample differs between executions of a Parquet
    read); a quarter inside the half; another seed another sample; the size f·n within 4 σ."""
    import ray

    three, one = ray.data.read_parquet(f"{root}/train"), ray.data.read_parquet(f"{root}/one/train")
    half = _rows(sample(three, 0.5, 3, ("x", "y")))
    assert half == _rows(sample(one, 0.5, 3, ("x", "y")))
    assert _rows(sample(one, 0.25, 3, ("x", "y"))) < half
    assert _rows(sample(three, 0.5, 4, ("x", "y"))) != half
    assert abs(len(half) - 575) < 4 * (1150 * 0.25) ** 0.5
    assert sample(three, 1.0, 3, ("x", "y")) is three


def test_one_worker_reads_the_dataset_reproducibly(ray_local, root: str) -> None:
    """Every row once an epoch; a rerun reads the same batches (same losses); a cosine schedule
    counted its steps (the lr reaches 0 at the last one); a half sample trains on its own rows."""
    cfg = {**BASE, "task_args": {"root": root}, "schedule": "cosine"}
    a, b = run_local(cfg), run_local(cfg)
    assert [r["samples_seen"] for r in a.results] == [1150, 2300]
    assert [r["train_loss"] for r in a.results] == [r["train_loss"] for r in b.results]
    assert a.results[-1]["lr"] == pytest.approx(0.0, abs=1e-12) and a.results[0]["lr"] > 1e-3
    assert a.results[-1]["val_accuracy"] > 0.8
    import ray

    n = sample(ray.data.read_parquet(f"{root}/train"), 0.5, 0, ("x", "y")).count()
    half = run_local({**cfg, "data_fraction": 0.5, "epochs": 1})
    assert half.results[0]["samples_seen"] == n


def test_two_ddp_workers_read_their_shards_of_the_trainer_dataset(
    ray_local, root: str, tmp_path: Path
) -> None:
    """TorchTrainer(datasets=...) in a Tune trial: the two workers together read the data_fraction
    sample once an epoch (equal shards: an odd row dropped), not each the whole."""
    import ray

    space = {
        **BASE,
        "task_args": {"root": root},
        "data_fraction": 0.5,
        "num_workers": 2,
        "resources_per_worker": {"CPU": 0.5},
    }
    n = sample(ray.data.read_parquet(f"{root}/train"), 0.5, 0, ("x", "y")).count()
    result = tune.Tuner(
        trainable(space),
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", reuse_actors=False),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), name="exp", verbose=0, callbacks=trial_logs.loggers()
        ),
    ).fit()[0]
    assert result.error is None
    df = result.metrics_dataframe
    assert df["samples_seen"].tolist() == [n - n % 2, 2 * (n - n % 2)]
    assert df["val_accuracy"].iloc[-1] > 0.5 and result.checkpoint is not None


def test_bad_columns_and_full_batches_are_config_errors_before_any_trial(ray_local, root: str) -> None:
    base = {
        "name": "x",
        "task": {"name": "test-ray-data-digits", "args": {"root": root}},
        "train": {"epochs": 1},
        "search": {"strategy": "random", "optimizers": ["adamw"], "num_samples": 2},
    }
    assert "test-ray-data-digits" in str(Experiment.from_dict(base).plan())
    wrong = {**base, "task": {"name": "test-ray-data-digits", "args": {"root": root, "label": "label"}}}
    with pytest.raises(
        ConfigError,
        match=r"task 'test-ray-data-digits': TaskSpec.columns = \('x', 'label'\) is not allowed: "
        r"expected columns of the train ray.data.Dataset: \['x', 'y'\]",
    ):
        Experiment.from_dict(wrong).plan()
    with pytest.raises(ConfigError, match=r"task 'test-ray-data-digits': batch_size = 'full' is not allowed"):
        Experiment.from_dict({**base, "train": {"epochs": 1, "batch_size": "full"}}).plan()
