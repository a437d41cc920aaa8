"""Every ``>>>`` example in raytune_opt's docstrings runs (doctest), at tiny scale, on the suite's Ray.

The examples run in a scratch folder that holds a link to the repository's ``examples/`` (they read
``examples/*.yaml``) and ``results/random``, a finished tiny run of ``examples/strategies/random.yaml``
(the folder the report, export and evaluate examples read); what they write stays there."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
from pathlib import Path

import pytest

import raytune_opt

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(raytune_opt.__path__, "raytune_opt.")
    if not m.name.endswith("__main__")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _tests(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]


WITH_EXAMPLES = [name for name in MODULES if _tests(name)]


@pytest.fixture(scope="module")
def scratch(ray_local, tmp_path_factory):
    """A working directory with ``examples/`` and the finished tiny run ``results/random``."""
    from raytune_opt import Experiment

    folder = tmp_path_factory.mktemp("doctest")
    (folder / "examples").symlink_to(ROOT / "examples")
    before = Path.cwd()
    os.chdir(folder)
    try:
        exp = Experiment.from_yaml(
            "examples/strategies/random.yaml", overrides=["search.num_samples=2", "train.epochs=1"]
        )
        exp.run(progress=False)
        yield folder
    finally:
        os.chdir(before)


def test_every_module_with_examples_is_collected() -> None:
    assert {"raytune_opt.keys", "raytune_opt.experiment", "raytune_opt.search.space"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name: str, scratch) -> None:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _tests(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see above)"
