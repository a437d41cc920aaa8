"""One plan, built once: checking, describing and running an experiment build its task, trainable and
searcher once; a run leaves the caller's experiment as it was; the train settings have one declaration."""

from __future__ import annotations

from pathlib import Path

import pytest

from raytune_opt.errors import ConfigError
from raytune_opt.experiment import Experiment, Plan

#: a task that counts its builds, registered through ``imports`` (so that it travels to Ray workers
#: by value, as a user's own task file does)
COUNTED = """
from raytune_opt.tasks import get_task, register_task

BUILDS = []


@register_task("test-plan-digits", overwrite=True)
def counted_digits(hidden: int = 16):
    BUILDS.append(hidden)
    return get_task("digits-mlp").build(hidden=hidden)
"""


@pytest.fixture
def counted(tmp_path: Path) -> tuple[str, list]:
    import sys

    file = tmp_path / "counted.py"
    file.write_text(COUNTED)
    Experiment.from_dict({"name": "x", "imports": [str(file)], "task": "test-plan-digits"})
    resolved = file.resolve()
    module = sys.modules[f"raytune_opt_imports_{resolved.stem}_{abs(hash(str(resolved))) % 10**8}"]
    module.BUILDS.clear()
    return str(file), module.BUILDS


def _exp(file: str, **search) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "plan",
            "imports": [file],
            "task": {"name": "test-plan-digits", "args": {"hidden": 8}},
            "train": {"epochs": 3},
            "search": {"strategy": "random", "optimizers": ["adam", "sgd"], "num_samples": 3, **search},
        }
    )


def test_check_plan_and_describe_build_the_task_and_searcher_once(monkeypatch, counted):
    import raytune_opt.experiment.plan as plan_module

    made = []
    real = plan_module._tune_config
    monkeypatch.setattr(plan_module, "_tune_config", lambda *a: made.append(a) or real(*a))
    file, BUILDS = counted
    exp = _exp(file)
    plan = exp.plan()
    assert isinstance(plan, Plan) and exp.check().plan() is plan
    assert str(plan).startswith("experiment 'plan' on task 'test-plan-digits'")
    assert (plan.metric, plan.mode, plan.trials, plan.max_t) == ("val_accuracy", "max", 3, 3)
    assert plan.optimizers == ("adam", "sgd") and plan.optimizer_searched
    assert "optimizer" in plan.searched and "optimizer" not in plan.fixed
    assert len(BUILDS) == 1 and len(made) == 1
    first = plan.tune_config()  # the one built with the plan ...
    second = plan.tune_config()  # ... then a fresh searcher for every further run
    assert first.search_alg is not second.search_alg and len(made) == 2
    assert len(BUILDS) == 1


def test_a_changed_description_gets_a_new_plan(counted):
    exp = _exp(counted[0])
    plan = exp.plan()
    exp.search.num_samples = 5
    assert exp.plan() is not plan and exp.plan().trials == 5


def test_plan_is_frozen(counted):
    plan = _exp(counted[0]).plan()
    with pytest.raises(AttributeError):
        plan.metric = "val_loss"  # type: ignore[misc]


def test_dry_run_text_says_searched_only_for_searched_keys(counted):
    plan = _exp(counted[0], space={"batch_size": {"choice": [32, 64]}}).plan()
    line = next(x for x in str(plan).splitlines() if x.strip().startswith("train:"))
    assert "batch searched" in line and "seed 0" in line and "constant schedule" in line


def test_train_settings_have_one_declaration():
    """The experiment's ``train`` section is the loop's own settings model; DEFAULTS come from it."""
    from raytune_opt.experiment.config import Experiment as Model
    from raytune_opt.train import DEFAULTS, TrainConfig, TrainSettings

    assert Model.model_fields["train"].annotation is TrainSettings
    assert set(TrainSettings.model_fields) <= set(DEFAULTS)
    assert set(TrainSettings.model_fields) <= set(TrainConfig.model_fields)
    assert {k: DEFAULTS[k] for k in TrainSettings.model_fields} == TrainSettings().model_dump()
    with pytest.raises(ConfigError, match=r"train\.step_gamma = 2 is not allowed: expected a number <= 1"):
        Experiment.from_dict({"name": "x", "task": "digits-mlp", "train": {"step_gamma": 2}})


def test_relative_imports_are_kept_absolute_for_resume(tmp_path: Path):
    (tmp_path / "my_task.py").write_text(
        "from raytune_opt.tasks import get_task, register_task\n"
        "@register_task('test-plan-relative')\n"
        "def t():\n    return get_task('digits-mlp').build()\n"
    )
    (tmp_path / "exp.yaml").write_text("name: rel\nimports: [my_task.py]\ntask: test-plan-relative\n")
    exp = Experiment.from_yaml(tmp_path / "exp.yaml")
    assert exp.imports == [str((tmp_path / "my_task.py").resolve())]
    assert Experiment.from_dict(exp.to_dict(), source="/elsewhere/experiment.json").imports == exp.imports


def test_the_described_experiment_in_the_config_docstring_validates():
    """The YAML example of ``raytune_opt.experiment.config`` is a valid experiment (its ``imports``
    aside: the example names a file of the reader's)."""
    import textwrap

    import raytune_opt.experiment.config as config
    from raytune_opt.experiment.source import load_yaml

    block = textwrap.dedent(config.__doc__.split("\n\n")[1])
    raw = load_yaml(block, "raytune_opt.experiment.config")
    assert raw.pop("imports") == ["my_tasks.py"]
    plan = Experiment.from_dict(raw).plan()
    assert plan.strategy == "bohb" and plan.optimizers == ("adamw", "lion") and plan.trials == 24


def test_dry_run_text_shows_fixed_space_entries_as_fixed(counted):
    plan = _exp(
        counted[0], space={"seed": 0, "schedule": "constant", "batch_size": {"choice": [32, 64]}}
    ).plan()
    text = str(plan)
    train = next(x for x in text.splitlines() if x.strip().startswith("train:"))
    assert "seed 0" in train and "constant schedule" in train and "batch searched" in train
    assert "space (fixed): seed=0, schedule='constant'" in text
    searched = text.split("space (searched):")[1].split("space (fixed)")[0]
    assert "batch_size" in searched and "seed" not in searched


@pytest.mark.parametrize(
    ("resources", "optimizers", "match"),
    [
        ({"strategy": "zero3"}, ["adamw"], r"resources.strategy.*'zero3'.*'ddp' or 'fsdp'"),
        (
            {"strategy": "fsdp", "num_workers": 2},
            ["adamw", "bfgs"],
            r"resources.strategy: resources.strategy = 'fsdp' is not allowed: expected 'ddp' with the "
            r"second-order optimizer 'bfgs'",
        ),
    ],
)
def test_a_strategy_the_optimizers_cannot_take_is_refused_before_any_trial(resources, optimizers, match):
    raw = {
        "name": "fsdp",
        "task": "digits-mlp",
        "resources": resources,
        "search": {"strategy": "random", "optimizers": optimizers, "num_samples": 2},
    }
    with pytest.raises(ConfigError, match=match):
        Experiment.from_dict(raw)
    fixed = {"name": "fsdp", "task": "glm-logistic", "optimizer": "newton", "resources": resources}
    with pytest.raises(ConfigError, match=r"resources.strategy"):
        Experiment.from_dict(fixed)


def test_fsdp_trials_run_under_torch_trainer_and_say_so():
    exp = Experiment.from_dict(
        {"name": "fsdp", "task": "digits-mlp", "resources": {"strategy": "fsdp", "num_workers": 2}}
    )
    plan = exp.plan()
    assert plan.fixed["strategy"] == "fsdp" and exp.resources.distributed
    assert "parameters sharded: fsdp" in str(plan)
