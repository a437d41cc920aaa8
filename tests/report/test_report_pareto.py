"""``report.pareto.pareto_mask``: the non-dominated points, checked against a brute-force definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from raytune_opt.errors import ConfigError
from raytune_opt.report.pareto import pareto_mask

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _dominates(a: list[float], b: list[float], modes: list[str]) -> bool:
    """``a`` at least as good as ``b`` on every objective and strictly better on one."""
    better = [(x > y) if m == "max" else (x < y) for x, y, m in zip(a, b, modes, strict=True)]
    worse = [(x < y) if m == "max" else (x > y) for x, y, m in zip(a, b, modes, strict=True)]
    return not any(worse) and any(better)


def _brute(points: list[list[float]], modes: list[str]) -> list[bool]:
    return [not any(_dominates(q, p, modes) for q in points if q is not p) for p in points]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 3).flatmap(
        lambda k: st.tuples(
            st.lists(
                st.lists(st.integers(-3, 3).map(float), min_size=k, max_size=k), min_size=1, max_size=12
            ),
            st.lists(st.sampled_from(["min", "max"]), min_size=k, max_size=k),
        )
    )
)
def test_the_mask_is_the_brute_force_front(case) -> None:
    points, modes = case  # small integers: many ties and equal points
    assert pareto_mask(points, modes).tolist() == _brute(points, modes)


def test_a_seeded_case_and_its_properties() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(60, 2))
    modes = ["max", "min"]
    mask = pareto_mask(y, modes)
    assert mask.tolist() == _brute(y.tolist(), modes)
    front = y[mask]
    assert len(front) >= 1
    for a, b in itertools.permutations(front.tolist(), 2):  # no point of the front dominates another
        assert not _dominates(a, b, modes)
    for p in y[~mask].tolist():  # every other point is dominated by one on the front
        assert any(_dominates(q, p, modes) for q in front.tolist())
    # the best point of each objective alone is on the front
    assert mask[np.argmax(y[:, 0])] and mask[np.argmin(y[:, 1])]


def test_equal_points_are_both_on_the_front_and_the_docstring_case() -> None:
    assert pareto_mask([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]], ["max", "min"]).tolist() == [True, True, False]
    assert pareto_mask([[0.9, 3.0], [0.8, 1.0], [0.7, 2.0], [0.9, 3.0]], ["max", "min"]).tolist() == [
        True,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("values", "modes", "match"),
    [
        ([[1.0, 2.0]], ["max"], "modes"),
        ([[1.0, 2.0]], ["max", "up"], "modes"),
        ([1.0, 2.0], ["max"], "values"),
        ([[1.0, float("nan")]], ["max", "min"], "finite"),
    ],
)
def test_bad_input_is_a_config_error(values, modes, match) -> None:
    with pytest.raises(ConfigError, match=match):
        pareto_mask(values, modes)
