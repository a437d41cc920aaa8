"""examples/own_data on a small data set: the signal files written, then tuned the three ways it shows
(YAML + ``imports:``, the Python API, the user's own training function) on the suite's local Ray."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raytune_opt.cli import main
from raytune_opt.train.session import LocalSession

HERE = Path(__file__).resolve().parents[2] / "examples" / "own_data"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"own_data_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """600 / 150 / 150 signal files, one .npy each, with their labels.csv."""
    return str(_example("write_data").write_signals(tmp_path_factory.mktemp("signals"), 600, 150, 150))


def test_the_data_is_files_on_disk_read_one_per_item(root: str) -> None:
    signals = _example("signals")
    ds = signals.SignalFolder(root, "train")
    assert len(ds) == 600 == len(list(Path(root, "train").glob("*.npy")))
    assert tuple(ds[0][0].shape) == (1, 128) and np.bincount(ds.targets.numpy()).tolist() == [200, 200, 200]


def _finished(folder: Path, trials: int) -> pd.DataFrame:
    df = pd.read_csv(folder / "trials.csv")
    assert len(df) == trials and set(df["status"]) == {"finished"}, df[["status", "error"]]
    return df


def test_yaml_with_imports(ray_local, root: str, tmp_path: Path) -> None:
    # writing the data did not import signals.py as a plain module: its task, registered from there,
    # would replace the one `imports:` loads by value, and the workers cannot import that module
    assert "signals" not in sys.modules
    rc = main(
        [
            "run",
            str(HERE / "signals.yaml"),
            "--set",
            f"task.args.root={root}",
            "--set",
            "search.num_samples=2",
            "--set",
            "train.epochs=2",
            "--set",
            "search.max_t=2",
            "--storage",
            str(tmp_path),
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "own-signals" / "summary.json").read_text())
    assert summary["trials"]["finished"] == 2 and 0 <= summary["best_metric"] <= 1
    _finished(tmp_path / "own-signals", 2)


def test_python_api(ray_local, root: str, tmp_path: Path) -> None:
    exp = _example("python_api").experiment(root, samples=2, epochs=2, storage=str(tmp_path))
    result = exp.run(progress=False, report=False)
    # ASHA (grace period 1) may stop the worse trial after its first epoch
    assert len(result.grid) == 2 and all(
        r.error is None and r.metrics["epoch"] in (1, 2) for r in result.grid
    )


def test_own_training_function(ray_local, root: str, tmp_path: Path) -> None:
    own = _example("own_training_function")
    local = LocalSession()
    own.train_fn({"optimizer": "adamw", "lr": 1e-2, "epochs": 2, "root": root, "loader_workers": 0}, local)
    assert [r["epoch"] for r in local.results] == [1, 2]
    assert local.results[-1]["val_accuracy"] > 0.6  # chance: 1/3
    results = own.tune_own_function("asha", num_samples=2, epochs=2, root=root, storage=str(tmp_path))
    assert all(r.error is None for r in results)
    assert all(math.isfinite(r.metrics["val_loss"]) and r.metrics["epoch"] in (1, 2) for r in results)
