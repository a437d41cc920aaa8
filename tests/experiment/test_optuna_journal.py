"""``run.optuna_journal`` / ``Experiment.run(optuna_journal=True)``: a real run writes an Optuna
JournalStorage that optuna opens with every trial, its params, distributions and values."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from raytune_opt import Experiment
from raytune_opt.errors import ConfigError

HAS_OPTUNA = importlib.util.find_spec("optuna") is not None


def _exp(tmp_path: Path, **run) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "journal",
            "task": {"name": "digits-mlp", "args": {"hidden": 8}},
            "train": {"epochs": 2, "batch_size": 256},
            "search": {"strategy": "random", "optimizers": ["adamw", "sgd"], "num_samples": 3},
            "run": {"storage_path": str(tmp_path / "results"), **run},
        }
    )


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna is not installed")
def test_a_run_writes_every_trial_into_an_optuna_journal(ray_local, tmp_path) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    result = _exp(tmp_path).run(progress=False, report=False, optuna_journal=True)
    path = result.path / "optuna.journal"
    study = optuna.load_study(study_name="journal", storage=JournalStorage(JournalFileBackend(str(path))))
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert len(trials) == len(result.grid) == 3
    space = result.grid[0].config  # any trial: the optimizer's choices are the space's
    assert space["optimizer"] in ("adamw", "sgd")
    for r in result.grid:
        t = trials[r.metrics["trial_id"]]
        name = r.config["optimizer"]
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.params["optimizer"] == name
        assert t.distributions["optimizer"] == CategoricalDistribution(["adamw", "sgd"])
        assert t.params[f"{name}.lr"] == r.config[f"{name}.lr"]
        lr = t.distributions[f"{name}.lr"]
        assert isinstance(lr, FloatDistribution) and lr.log  # the registry's log-uniform range
        assert not any(k.startswith("adamw." if name == "sgd" else "sgd.") for k in t.params)
        history = list(r.metrics_dataframe["val_accuracy"])
        assert [t.intermediate_values[s] for s in sorted(t.intermediate_values)] == pytest.approx(history)
        assert t.value == pytest.approx(max(history))
        assert t.user_attrs["last_value"] == pytest.approx(history[-1])


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna is not installed")
def test_the_yaml_key_turns_it_on(tmp_path) -> None:
    assert _exp(tmp_path, optuna_journal=True).run_.optuna_journal is True
    with pytest.raises(ConfigError, match="run.optuna_journal"):
        _exp(tmp_path, optuna_journal="often")


def test_without_optuna_the_journal_is_one_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # what Python does for a module it cannot import
    with pytest.raises(ConfigError, match=r"needs the 'optuna' package.*pip install optuna"):
        _exp(tmp_path, optuna_journal=True)
    with pytest.raises(ConfigError, match=r"optuna_journal: .*pip install optuna"):
        _exp(tmp_path).run(progress=False, report=False, optuna_journal=True)
    assert not (tmp_path / "results").exists()
