"""The experiment description: validated up front, every error one ConfigError line that says where."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raytune_opt import Experiment
from raytune_opt.errors import ConfigError
from raytune_opt.experiment import apply_overrides

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD = {
    "name": "t",
    "task": "digits-mlp",
    "train": {"epochs": 3, "batch_size": 64},
    "search": {
        "strategy": "asha",
        "optimizers": ["adamw", "lion"],
        "num_samples": 4,
        "metric": "val_accuracy",
        "mode": "max",
    },
}


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates(path):
    exp = Experiment.from_yaml(path)
    assert str(exp.plan()).startswith(f"experiment {exp.name!r}")


def test_quickstart_is_a_comparison_of_four_optimizers():
    exp = Experiment.from_yaml(EXAMPLES / "quickstart.yaml")
    assert exp.search.strategy == "asha" and exp.task.name == "mnist1d-mlp"
    assert exp.search.compare == "optimizers" and exp.search.compare_seeds == 3
    assert list(exp.plan().optimizers) == ["adamw", "lion", "momentum", "nesterov"]
    names = {p.name for p in exp.plan().space}
    assert {"optimizer", "lion.lr", "adamw.weight_decay", "nesterov.momentum"} <= names
    assert (exp.plan().metric, exp.plan().mode) == ("val_accuracy", "max")
    fixed = exp.plan().fixed
    assert fixed["task"] == "mnist1d-mlp" and fixed["epochs"] == 30 and "optimizer" not in fixed
    assert "comparison: that search once per optimizer" in str(exp.plan())


def test_defaults_metric_mode_and_max_t_from_the_task_and_train():
    exp = Experiment.from_dict(
        {
            "name": "t",
            "task": "digits-mlp",
            "search": {"strategy": "random", "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
        }
    )
    assert (exp.plan().metric, exp.plan().mode) == ("val_accuracy", "max")
    cfg = exp.plan().tune_config()
    assert cfg.num_samples == 10 and cfg.metric == "val_accuracy"
    exp = Experiment.from_dict({"name": "t", "task": "glm-poisson", "optimizer": "irls"})
    assert (exp.plan().metric, exp.plan().mode) == ("val_deviance", "min")
    assert exp.plan().tune_config().num_samples == 1


@pytest.mark.parametrize("searched", ["seed", "batch_size", "lr"])
def test_to_dict_reads_back_the_same_experiment_when_a_train_key_is_searched(searched):
    """What experiment.json keeps (``to_dict``) is what ``resume`` reads (``from_dict``): a train key
    left at its default and searched is not written as fixed."""
    domains = {"seed": {"grid": [1, 2]}, "batch_size": {"choice": [32, 64]}, "lr": {"grid": [0.1, 0.01]}}
    exp = Experiment.from_dict(
        {
            "name": "t",
            "task": "digits-mlp",
            "optimizer": {"name": "adamw"},
            "train": {"epochs": 3},
            "search": {"strategy": "grid", "space": {searched: domains[searched]}},
        }
    )
    again = Experiment.from_dict(exp.to_dict())
    assert again.to_dict() == exp.to_dict()
    assert again.plan().fixed == exp.plan().fixed
    assert [p.name for p in again.plan().space] == [p.name for p in exp.plan().space] == [searched]
    assert again.to_dict()["train"]["epochs"] == 3


def test_space_entries_override_the_optimizer_ranges_and_keep_their_condition():
    exp = Experiment.from_dict(
        {
            **GOOD,
            "search": {
                **GOOD["search"],
                "space": {
                    "lion.lr": {"loguniform": [1e-6, 1e-5]},
                    "schedule": {"choice": ["constant", "cosine"]},
                },
            },
        }
    )
    params = {p.name: p for p in exp.plan().space}
    assert params["lion.lr"].domain.low == 1e-6 and params["lion.lr"].when == ("optimizer", ("lion",))
    assert "schedule" not in exp.plan().fixed  # searched keys are not fixed


def test_overrides_parse_values_as_yaml():
    raw = apply_overrides(
        GOOD, ["search.num_samples=8", "search.optimizers=[sgd]", "run.address=null", "new.key=x"]
    )
    assert raw["search"]["num_samples"] == 8 and raw["search"]["optimizers"] == ["sgd"]
    assert raw["run"]["address"] is None and raw["new"] == {"key": "x"}
    assert GOOD["search"]["num_samples"] == 4  # the original is untouched
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(GOOD, ["search.num_samples"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides(GOOD, ["name.x=1"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"search": {**GOOD["search"], "stratgy": "x"}},
            r"exp.yaml:\d+: search.stratgy is not a known key \(did you mean 'strategy'\?\)",
        ),
        (
            {"search": {**GOOD["search"], "strategy": "bohbb"}},
            r"exp.yaml:\d+: search.strategy: .*'bohbb' is not known \(did you mean 'bohb'\?\)",
        ),
        (
            {"search": {**GOOD["search"], "optimizers": ["adamw", "lino"]}},
            r"search.optimizers\[1\]: .*'lino'.*did you mean 'lion'",
        ),
        (
            {"search": {**GOOD["search"], "num_samples": "many"}},
            r"search.num_samples = 'many' is not allowed",
        ),
        (
            {"search": {**GOOD["search"], "metric": "val_acc"}},
            r"search.metric: .*'val_acc' is not known.*val_accuracy",
        ),
        (
            {"search": {**GOOD["search"], "mode": "maximize"}},
            r"search.mode = 'maximize' is not allowed.*'min' or 'max'",
        ),
        ({"search": {**GOOD["search"], "max_t": 9}}, r"search.max_t: .*at most train.epochs = 3"),
        ({"task": "digits-mlpp"}, r"task.name: .*did you mean 'digits-mlp'"),
        (
            {"task": {"name": "digits-mlp", "args": {"hiden": 3}}},
            r"task.args: .*'hiden'.*did you mean 'hidden'",
        ),
        ({"train": {"epochs": 0}}, r"train\.epochs = 0 is not allowed.*>= 1"),
        ({"train": {"batch_size": "all"}}, r"train.batch_size = 'all' is not allowed"),
        ({"trian": {}}, r"trian is not a known key \(did you mean 'train'\?\)"),
        ({"name": "a b"}, r"name = 'a b' is not allowed: a folder name"),
        ({"resources": {"num_workers": 0}}, r"resources.num_workers = 0 is not allowed"),
        ({"run": {"max_failures": "x"}}, r"run.max_failures = 'x' is not allowed"),
        (
            {"optimizer": {"name": "adamw", "lr": 1e-3}},
            r"optimizer: .*no fixed optimizer when search.optimizers",
        ),
        (
            {"search": {**GOOD["search"], "space": {"lion.lr": {"loguniform": [1e-3]}}}},
            r"search.space: .*pair \[low, high\]",
        ),
        (
            {"search": {**GOOD["search"], "options": {"brackets": 0, "foo": 1}}},
            r"search: .*asha option = 'foo' is not known",
        ),
        ({"imports": ["no_such_file.py"]}, r"imports\[0\] = 'no_such_file.py' cannot be imported"),
        (
            {
                "search": {**GOOD["search"], "strategy": "pbt", "options": {}},
                "train": {"epochs": 3, "checkpoint_every": 0, "checkpoint_at_end": False},
            },
            r"train.checkpoint_at_end: .*checkpoint_at_end = False is not allowed.*'pbt' \(it clones",
        ),
        ({"train": {"checkpoint_at_end": "maybe"}}, r"train.checkpoint_at_end = 'maybe' is not allowed"),
    ],
)
def test_errors_name_file_line_key_value_and_allowed(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message) as info:
        Experiment.from_yaml(write(tmp_path, {**GOOD, **change}))
    assert "\n" not in str(info.value)


def test_missing_name_and_yaml_syntax_errors(tmp_path):
    with pytest.raises(ConfigError, match="name is required"):
        Experiment.from_yaml(write(tmp_path, {"task": "digits-mlp"}))
    with pytest.raises(ConfigError, match=r"exp.yaml:\d+: not valid YAML"):
        Experiment.from_yaml(write(tmp_path, "name: t\ntask: digits-mlp\nsearch: {strategy: [\n"))
    with pytest.raises(ConfigError, match=r"search.space = \['batch_size'\] is not allowed.*not also fixed"):
        space = {"batch_size": {"choice": [32, 64]}}
        Experiment.from_yaml(write(tmp_path, {**GOOD, "search": {**GOOD["search"], "space": space}}))
    with pytest.raises(ConfigError, match="must be a mapping"):
        Experiment.from_yaml(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        Experiment.from_yaml(tmp_path / "missing.yaml")


def test_fixed_hyperparameter_checked_by_the_optimizer(tmp_path):
    with pytest.raises(ConfigError, match=r"optimizer: .*lr"):
        Experiment.from_yaml(
            write(tmp_path, {"name": "t", "task": "digits-mlp", "optimizer": {"name": "adamw", "lr": -1}})
        )
    with pytest.raises(ConfigError, match=r"optimizer.name: .*did you mean 'adam'"):
        Experiment.from_yaml(write(tmp_path, {"name": "t", "task": "digits-mlp", "optimizer": "adamv"}))


def test_imports_register_user_tasks(tmp_path):
    (tmp_path / "my_tasks.py").write_text(
        "from raytune_opt.tasks import register_task, get_task\n"
        "@register_task('digits-copy')\n"
        "def digits_copy(hidden: int = 8):\n"
        "    return get_task('digits-mlp').fn(hidden=hidden)\n"
    )
    exp = Experiment.from_yaml(
        write(
            tmp_path,
            {**GOOD, "imports": ["my_tasks.py"], "task": {"name": "digits-copy", "args": {"hidden": 4}}},
        )
    )
    assert exp.task.name == "digits-copy"


# ---------------------------------------------------------------------- fuzz
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
)
_paths = st.sampled_from(
    [
        "name",
        "task",
        "task.name",
        "task.args",
        "train",
        "train.epochs",
        "train.batch_size",
        "train.schedule",
        "train.data_fraction",
        "optimizer",
        "search",
        "search.strategy",
        "search.optimizers",
        "search.space",
        "search.space.lr",
        "search.num_samples",
        "search.metric",
        "search.mode",
        "search.max_t",
        "search.options",
        "search.reduction_factor",
        "resources",
        "resources.num_workers",
        "resources.cpus_per_worker",
        "run",
        "run.storage_path",
        "run.trial_timeout_s",
        "run.stall_factor",
        "task.args.hidden",
        "train.step_gamma",
        "resources.use_gpu",
        "search.time_budget_s",
        "search.options.max_concurrent",
        "search.options.reuse_actors",
        "search.options.trial_name_creator",
        "unknown",
        "search.unknown",
    ]
)


def _set(raw: dict, path: str, value) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(raw))
    node = raw
    *parents, last = path.split(".")
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[last] = value
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(_paths, _junk), min_size=1, max_size=3))
def test_fuzz_malformed_values_give_one_line_config_errors(edits):
    raw = GOOD
    for path, value in edits:
        raw = _set(raw, path, value)
    try:
        Experiment.from_dict(raw, source="fuzz.yaml")
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith("fuzz.yaml")


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab: -[]{}\n'\"#&*!|>%@`\t,.0")), max_size=60))
def test_fuzz_malformed_yaml_text_gives_one_line_config_errors(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "exp.yaml"
    path.write_text(text)
    try:
        Experiment.from_yaml(path)
    except ConfigError as e:
        assert "\n" not in str(e)


def test_max_concurrent_trials_reaches_variant_generators_too():
    """Tune applies TuneConfig.max_concurrent_trials by wrapping a Searcher; grid and PBT run through a
    variant generator: the grid's takes the cap itself, PBT's scheduler takes it (its whole population
    is generated at once, raytune_opt.search.schedulers "Concurrency")."""
    for name in ("grid", "pbt", "random"):
        exp = Experiment.from_yaml(
            EXAMPLES / "strategies" / f"{name}.yaml", overrides=["resources.max_concurrent_trials=1"]
        )
        cfg = exp.plan().tune_config()
        from ray.tune.search import BasicVariantGenerator

        if name == "pbt":
            assert cfg.scheduler.max_concurrent == 1 and cfg.search_alg.max_concurrent == 0
            assert cfg.max_concurrent_trials is None  # Tune would only warn that it ignores it
        elif isinstance(cfg.search_alg, BasicVariantGenerator):  # Tune would not cap it
            assert cfg.search_alg.max_concurrent == 1 and cfg.max_concurrent_trials is None
        else:  # a Searcher: Tune hands it the cap at fit time (ours keep it themselves)
            assert cfg.max_concurrent_trials == 1
            assert cfg.search_alg.set_max_concurrency(1) is True and cfg.search_alg.max_concurrent == 1


EXAMPLE_TEXTS = sorted((EXAMPLES / "strategies").glob("*.yaml")) + [EXAMPLES / "quickstart.yaml"]


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Line- and byte-level mutations of an experiment file: the kinds that once gave tracebacks."""
    lines = data.split(b"\n")
    for op, i, j in ops:
        i %= max(len(lines), 1)
        if op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "anchor":
            lines[i] = lines[i].replace(b": ", b": &a ", 1)
        elif op == "alias":
            lines.insert(i, b"x: [*a, *a, *a, *a]")
        elif op == "nest":
            lines[i] = lines[i].replace(b": ", b": " + b"[" * (j % 200), 1)
        elif op == "bytes":
            lines[i] = lines[i][: j % (len(lines[i]) + 1)] + b"\xff\xfe" + lines[i][j % (len(lines[i]) + 1) :]
        elif op == "number":
            lines[i] = lines[i] + b" 1e-3" if j % 2 else lines[i].replace(b"1", b"10" * (j % 40), 1)
    return b"\n".join(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    example=st.sampled_from(EXAMPLE_TEXTS),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["duplicate", "delete", "anchor", "alias", "nest", "bytes", "number"]),
            st.integers(0, 60),
            st.integers(0, 400),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_mutated_example_files_give_one_line_config_errors(tmp_path_factory, example, ops):
    """Mutants of the shipped examples (as the issue's fuzzer made them): each is accepted or refused
    with one ConfigError line, never a traceback or a hang."""
    path = tmp_path_factory.mktemp("mutant") / "exp.yaml"
    path.write_bytes(_mutate(example.read_bytes(), ops))
    try:
        Experiment.from_yaml(path)
    except ConfigError as e:
        assert "\n" not in str(e)
