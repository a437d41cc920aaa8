"""``raytune-opt export`` / ``export_model``: a real run's best trial out, at its best epoch and as its
final model, each checked by evaluating the exported weights against the value the trial reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from raytune_opt import Experiment
from raytune_opt.cli import main
from raytune_opt.errors import ConfigError
from raytune_opt.experiment import export_model
from raytune_opt.tasks import get_task


@pytest.fixture(scope="module")
def run(ray_local, tmp_path_factory):
    storage = tmp_path_factory.mktemp("export")
    exp = Experiment.from_dict(
        {
            "name": "exp",
            "task": {"name": "digits-mlp", "args": {"hidden": 8}},
            "train": {"epochs": 4, "batch_size": 64, "checkpoint_every": 1},
            "search": {"strategy": "random", "optimizers": ["sgd"], "num_samples": 2, "seed": 3},
            "run": {"storage_path": str(storage)},
        }
    )
    return exp.run(progress=False, report=False)


def _val_accuracy(model: torch.nn.Module, task: str, task_args: dict) -> float:
    spec = get_task(task).build(**task_args)
    x, y = spec.val
    with torch.no_grad():
        return float(spec.metric.total(model(x).float(), y)) / len(y)


def test_best_epoch_and_final_model_are_told_apart(run) -> None:
    best = max(run.grid, key=lambda r: r.metrics_dataframe["val_accuracy"].max())
    curve = best.metrics_dataframe.set_index("training_iteration")["val_accuracy"]
    model, config = export_model(run.path)
    assert config["trial_id"] == best.metrics["trial_id"] and config["exported"] == "best"
    assert config["epoch"] == config["best"]["epoch"] == int(curve.idxmax())
    assert config["value"] == config["best"]["value"] == curve.max()
    assert config["last"] == {"epoch": 4, "value": curve.loc[4]}
    assert _val_accuracy(model, config["task"], config["task_args"]) == pytest.approx(curve.max(), abs=1e-9)
    last, lconfig = run.export_model(epoch="last")  # the result object gives it too
    assert lconfig["epoch"] == 4 and lconfig["exported"] == "last"
    assert _val_accuracy(last, lconfig["task"], lconfig["task_args"]) == pytest.approx(curve.loc[4], abs=1e-9)
    assert config["optimizer"] == "sgd" and set(config["hparams"]) >= {"lr"}


def test_cli_writes_a_weights_only_state_dict_and_a_rebuilding_config(run, tmp_path, capsys) -> None:
    other = next(r for r in run.grid if r.metrics["trial_id"] != export_model(run.path)[1]["trial_id"])
    tid = other.metrics["trial_id"]
    out = tmp_path / "model.pt"
    assert main(["export", str(run.path), "--trial", tid, "--epoch", "last", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"trial {tid}, epoch 4 (last)" in printed and "its best epoch" in printed
    state = torch.load(out, weights_only=True)
    config = json.loads(out.with_suffix(".json").read_text())
    model = get_task(config["task"]).build(**config["task_args"]).model
    model.load_state_dict(state)
    assert _val_accuracy(model.eval(), config["task"], config["task_args"]) == pytest.approx(
        other.metrics_dataframe["val_accuracy"].iloc[-1], abs=1e-9
    )
    assert main(["export", str(run.path)]) == 0  # default: <dir>/export/<trial>-best.pt
    assert len(list((run.path / "export").glob("*-best.pt"))) == 1


def test_bad_exports_are_one_line_and_lose_nothing(run, tmp_path, capsys) -> None:
    with pytest.raises(ConfigError, match="trial = 'nope' is not known"):
        export_model(run.path, trial="nope")
    with pytest.raises(ConfigError, match="epoch = 'first'"):
        export_model(run.path, epoch="first")
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    _, config = export_model(copy)
    folder = Path(config["checkpoint"].replace(str(run.path), str(copy))).parent
    best_ckpt = Path(config["checkpoint"].replace(str(run.path), str(copy)))
    if config["epoch"] != 4:
        shutil.rmtree(best_ckpt)
        with pytest.raises(ConfigError, match=r"best epoch \d has no checkpoint .*export --epoch last"):
            export_model(copy)
    for d in folder.glob("checkpoint_*"):
        shutil.rmtree(d)
    assert main(["export", str(copy), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no checkpoint" in err[0] and "checkpoint_every" in err[0]
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.json").exists()
