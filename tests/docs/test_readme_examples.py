"""The README's code runs: its ``python`` blocks are executed on tiny data, its experiment YAML is
validated into a plan, and each ``bash`` line is run (``raytune-opt run ... --dry-run``, ``list``,
``--version``) or, for commands that need a finished experiment or a cluster, parsed by the CLI's own
parser and its files checked (``make`` targets, ``ray submit`` scripts)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from raytune_opt.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = [
    (m.group(1), README[: m.start()].count("\n") + 2, m.group(2))
    for m in re.finditer(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
]


def _blocks(lang: str) -> list[tuple[int, str]]:
    return [(line, text) for kind, line, text in BLOCKS if kind == lang]


def _data() -> dict:
    """The names the README's python blocks use for the user's data, tiny and seeded."""
    rng = np.random.default_rng(0)
    n_obs = 120
    X = np.column_stack([np.ones(n_obs), rng.normal(size=(n_obs, 2))])
    eta = X @ [0.2, 0.5, -0.4]
    x = torch.linspace(0, 3, n_obs)
    n = rng.integers(5, 10, n_obs)
    return {
        "batches": [(torch.randn(16, 10), torch.randn(16, 1)) for _ in range(3)],
        "X": X,
        "y": (rng.random(n_obs) < 1 / (1 + np.exp(-eta))).astype(float),
        # overdispersed (negative binomial, r = 2): NB2's alpha by maximum likelihood has one to find
        "counts": rng.negative_binomial(2, 2 / (2 + np.exp(eta + 1))).astype(float),
        "k": rng.binomial(n, 1 / (1 + np.exp(-eta))),
        "n": n,
        "w": rng.integers(1, 4, n_obs).astype(float),
        "t": rng.uniform(0.5, 2.0, n_obs),
        "g": np.repeat(np.arange(12), n_obs // 12),
        "f": lambda x, p: p[0] * torch.exp(-p[1] * x) + p[2],
        "x": x,
        "z": 2.0 * torch.exp(-1.3 * x) + 0.5 + 0.01 * torch.sin(7 * x),
        "p0": [1.0, 0.5, 0.0],
        "s": torch.full((n_obs,), 0.01),
    }


def test_the_readme_has_the_blocks_this_test_reads() -> None:
    assert len(_blocks("python")) >= 2 and len(_blocks("yaml")) >= 1 and len(_blocks("bash")) >= 2


@pytest.mark.parametrize(
    ("line", "code"), _blocks("python"), ids=lambda v: str(v) if isinstance(v, int) else ""
)
def test_python_blocks_run(line: int, code: str, ray_local) -> None:
    namespace = _data()
    exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - the README's own code


@pytest.mark.parametrize(
    ("line", "text"), _blocks("yaml"), ids=lambda v: str(v) if isinstance(v, int) else ""
)
def test_yaml_blocks_are_valid_experiments(line: int, text: str, tmp_path: Path) -> None:
    from raytune_opt import Experiment

    path = tmp_path / f"readme-{line}.yaml"
    path.write_text(text)
    plan = Experiment.from_yaml(path).plan()  # every check a run makes before Ray starts
    assert plan.name == "quickstart" and plan.trials >= 1


def _own_data(tmp: Path) -> Path:
    """examples/own_data/write_data.py's files, 30 / 15 / 15 of them, under ``tmp``."""
    import importlib.util

    path = ROOT / "examples" / "own_data" / "write_data.py"
    spec = importlib.util.spec_from_file_location("readme_write_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.write_signals(tmp / "signals", 30, 15, 15))


def _commands() -> list[tuple[int, list[str]]]:
    out = []
    for line, text in _blocks("bash"):
        for k, row in enumerate(text.splitlines()):
            row = row.split("#", 1)[0].strip()
            if row:
                out.append((line + k, shlex.split(row)))
    return out


@pytest.mark.parametrize(("line", "argv"), _commands(), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_bash_lines_run_or_parse(line: int, argv: list[str], capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(ROOT)
    tool, args = argv[0], argv[1:]
    if tool == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        assert args[0] in targets, f"README.md:{line}: no make target {args[0]!r}"
    elif tool == "ray":  # ray submit CLUSTER.yaml SCRIPT -- ARGS: the files it names exist
        assert args[0] == "submit" and (ROOT / args[1]).is_file() and (ROOT / args[2]).is_file()
    elif tool == "raytune-opt" and args[:1] == ["list"]:
        for what in args[1].split("|"):  # `list optimizers|strategies|tasks`: each of them
            assert main(["list", what]) == 0
    elif tool == "raytune-opt" and args == ["--version"]:
        with pytest.raises(SystemExit) as stop:
            main(args)
        assert stop.value.code == 0 and capsys.readouterr().out.startswith("raytune-opt ")
    elif tool == "python":  # python examples/<script>.py ARGS: the script exists and a test runs it
        script = Path(args[0])
        assert (ROOT / script).is_file(), f"README.md:{line}: no file {script}"
        tests = "".join(p.read_text() for p in (ROOT / "tests" / "examples").glob("test_*.py"))
        assert script.stem in tests, f"README.md:{line}: no test in tests/examples runs {script}"
    elif tool == "raytune-opt" and args[0] == "run":
        dry = args if "--dry-run" in args else [*args, "--dry-run"]
        if args[1].startswith("examples/own_data/"):  # its data: what write_data.py writes, small
            dry += ["--set", f"task.args.root={_own_data(tmp_path)}"]
        assert main(dry) == 0, f"README.md:{line}: {shlex.join(argv)} --dry-run failed"
        assert "experiment '" in capsys.readouterr().out
    else:
        assert tool == "raytune-opt", f"README.md:{line}: a command this test does not know: {argv}"
        build_parser().parse_args(args)  # resume, report, export, evaluate: need a finished run
