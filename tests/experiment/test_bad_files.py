"""Each kind of bad experiment file that once gave a traceback or a hang: one ConfigError line now,
before any work starts (issue: "Fuzzed configs: 40 tracebacks and 8 hangs in 400")."""

from __future__ import annotations

from pathlib import Path

import pytest

from raytune_opt.cli import main
from raytune_opt.errors import ConfigError
from raytune_opt.experiment import Experiment

BASE = "name: bad\ntask: digits-mlp\ntrain: {epochs: 2}\n"
SEARCH = "search: {strategy: random, optimizers: [adam], num_samples: 2}\n"


def _bomb(levels: int = 6) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return BASE + "\n".join(lines) + "\n"


CASES = {
    "alias bomb": (_bomb(), "expands to more than"),
    "self-referencing alias": (BASE + "imports: &a [*a]\n", "alias refers to itself"),
    "deep nesting": (BASE + "search: " + "{a: " * 200 + "1" + "}" * 200 + "\n", "nested"),
    "deep flow nesting": (BASE + "x: " + "[" * 3000 + "\n", "nested too deeply|not valid YAML"),
    "duplicate key": (BASE + "train: {epochs: 3}\n", "duplicate key 'train'"),
    "huge grid": (
        BASE + "search: {strategy: grid, space: {lr: {grid: [0.1, 0.2]}}, num_samples: 1000000000}\n"
        "optimizer: sgd\n",
        "num_samples",
    ),
    "max_concurrent in options": (
        BASE + "search: {strategy: random, optimizers: [adam], options: {max_concurrent: 2}}\n",
        "resources.max_concurrent_trials",
    ),
    "non-callable trial_name_creator": (
        BASE + "search: {strategy: random, optimizers: [adam], options: {trial_name_creator: 3}}\n",
        "trial_name_creator",
    ),
    "reuse_actors maybe": (
        BASE + "search: {strategy: random, optimizers: [adam], options: {reuse_actors: maybe}}\n",
        "reuse_actors",
    ),
    "time budget <= 0": (
        BASE + "search: {strategy: random, optimizers: [adam], time_budget_s: 0}\n",
        "time_budget_s",
    ),
    "task arg of the wrong type": ("name: bad\ntask: {name: digits-mlp, args: {hidden: x}}\n", "args.hidden"),
    "task arg the task cannot take": (
        "name: bad\ntask: {name: mnist1d-mlp, args: {hidden: -1}}\n",
        "task 'mnist1d-mlp' cannot be built with hidden=-1",
    ),
    "task data it cannot make": (
        "name: bad\ntask: {name: mnist1d-mlp, args: {num_samples: 0}}\n",
        "task 'mnist1d-mlp' cannot be built",
    ),
    "a name past the file system's limit": (
        "name: " + "n" * 300 + "\ntask: digits-mlp\n",
        "at most 100 characters",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_one_config_error_line(tmp_path: Path, case: str, capsys) -> None:
    text, message = CASES[case]
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        Experiment.from_yaml(path)
    assert "\n" not in str(info.value)
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_invalid_utf8_and_a_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(BASE.encode() + b"x: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        Experiment.from_yaml(path)
    path.write_text(BASE + "#" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        Experiment.from_yaml(path)


def test_set_overrides_are_bounded_and_address_dotted_names(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE + SEARCH)
    with pytest.raises(ConfigError, match="key path of at most"):
        Experiment.from_yaml(path, overrides=["a." * 100 + "b=1"])
    with pytest.raises(ConfigError, match="nested too deeply"):
        Experiment.from_yaml(path, overrides=["search.options=" + "[" * 5000])
    exp = Experiment.from_yaml(path, overrides=["search.space.adam.lr={loguniform: [1e-4, 1e-2]}"])
    lr = next(p for p in exp.plan().space if p.name == "adam.lr")
    assert (lr.domain.low, lr.domain.high) == (1e-4, 1e-2)


def test_yaml_12_numbers(tmp_path: Path) -> None:
    """``1e-3`` is a number (YAML 1.1, PyYAML's default, reads it as a string)."""
    path = tmp_path / "exp.yaml"
    path.write_text(BASE + "optimizer: {name: adam, lr: 1e-3}\n")
    assert Experiment.from_yaml(path).optimizer.hparams["lr"] == pytest.approx(1e-3)
    path.write_text(
        BASE
        + "search: {strategy: random, optimizers: [lion], space: {lion.lr: {loguniform: [1e-5, 1e-3]}}}\n"
    )
    lr = next(p for p in Experiment.from_yaml(path).plan().space if p.name == "lion.lr")
    assert (lr.domain.low, lr.domain.high) == (1e-5, 1e-3)
    path.write_text(BASE + "optimizer: {name: adam, lr: '1e-3'}\n")  # quoted: a string, refused
    with pytest.raises(ConfigError, match="lr"):
        Experiment.from_yaml(path)
