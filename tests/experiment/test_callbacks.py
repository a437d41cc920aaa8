"""``run.callbacks`` and ``Experiment.run(callbacks=...)``: Ray's own MLflow and W&B logger callbacks,
checked before Ray starts, and a real run logging into a local MLflow file store and W&B offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from raytune_opt import Experiment
from raytune_opt.errors import ConfigError
from raytune_opt.experiment.callbacks import check_callbacks


def _exp(tmp_path: Path, callbacks: list, **run) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "cb",
            "task": {"name": "digits-mlp", "args": {"hidden": 8}},
            "train": {"epochs": 2, "batch_size": 256},
            "search": {"strategy": "random", "optimizers": ["adamw"], "num_samples": 2},
            "run": {"storage_path": str(tmp_path / "results"), "callbacks": callbacks, **run},
        }
    )


@pytest.mark.parametrize(
    ("callbacks", "match"),
    [
        ([{"mlfow": {}}], r"run\.callbacks\[0\] name = 'mlfow' is not known \(did you mean 'mlflow'\?\)"),
        ([{"mlflow": {"tracking_url": "x"}}], r"'tracking_url' is not known \(did you mean 'tracking_uri'"),
        ([{"wandb": {"mode": "offline", "colour": 1}}], r"run\.callbacks\[0\]\.wandb option = 'colour'"),
        ([{"mlflow": {}, "wandb": {}}], r"one \{name: \{options\}\} pair"),
        ([{"mlflow": [1]}], r"a mapping of the callback's options"),
        ({"mlflow": {}}, r"run\.callbacks"),
    ],
)  # fmt: skip
def test_bad_callbacks_are_one_config_error_before_ray(tmp_path, callbacks, match) -> None:
    with pytest.raises(ConfigError, match=match):
        _exp(tmp_path, callbacks)


@pytest.mark.skipif(importlib.util.find_spec("comet_ml") is not None, reason="comet_ml is installed here")
def test_a_callback_whose_package_is_missing_names_it() -> None:
    with pytest.raises(ConfigError, match=r"needs the 'comet-ml' package.*pip install comet-ml"):
        check_callbacks([{"comet": {"online": False}}])


def test_an_api_callback_is_checked_too(tmp_path) -> None:
    exp = _exp(tmp_path, [])
    with pytest.raises(ConfigError, match="'wandbb' is not known"):
        exp.run(progress=False, report=False, callbacks=[{"wandbb": {}}])
    with pytest.raises(ConfigError, match="ray.tune.Callback"):
        exp.run(progress=False, report=False, callbacks=[print])
    assert not (tmp_path / "results").exists()  # refused before anything was written


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_a_run_logs_to_mlflow_file_store_and_wandb_offline(ray_local, tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.x keeps file stores behind a flag
    api = []
    if importlib.util.find_spec("wandb") is not None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.setenv("WANDB_SILENT", "true")
        api = [{"wandb": {"mode": "offline", "dir": str(tmp_path)}}]
    exp = _exp(tmp_path, [{"mlflow": {"tracking_uri": store}}])
    result = exp.run(progress=False, report=False, callbacks=api)
    assert len(result.grid) == 2 and not result.grid.errors

    client = MlflowClient(tracking_uri=store)
    mlexp = client.get_experiment_by_name("cb")  # experiment_name defaults to the experiment's name
    runs = client.search_runs([mlexp.experiment_id])
    assert len(runs) == 2
    by_lr = {float(r.data.params["adamw.lr"]): r for r in runs}
    for r in result.grid:
        run = by_lr[r.config["adamw.lr"]]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            list(r.metrics_dataframe["val_accuracy"])
        )
    if api:
        offline = list((tmp_path / "wandb").glob("offline-run-*"))
        assert len(offline) == 2 and all(any(d.glob("*.wandb")) for d in offline)
