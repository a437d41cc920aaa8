"""No strategy suggests a value outside the declared bounds (a property test over every conversion
into a configuration and every domain kind).

Log scales round-trip through ``exp(log x)``, which lands up to an ulp outside the bounds:
``grid`` and ``fabolas`` once proposed ``lr = 9.999999999999997e-06`` for ``loguniform [1e-05, 1.0]``.
The paths: the unit-cube decoding (random, Sobol', Halton, the GP-BO and Fabolas candidate pools,
Hyperband/ASHA's random samples, PBT/PB2's initial population), the grid, hyperopt's samples (TPE,
its log-int is a quantised ``qloguniform``), ConfigSpace's samples (BOHB) and the clip of PBT/PB2's
perturbations. Quantised Ray domains (``tune.quniform``) are refused, with a ConfigError.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ray.tune.search import Searcher

from raytune_opt.errors import ConfigError
from raytune_opt.search import Choice, Float, Int, SearchSpace, available_strategies, make_tune_config
from raytune_opt.search._searcher import PresetGenerator

KINDS = ("uniform", "loguniform", "int", "log-int", "choice")


@st.composite
def domains(draw, kind: str) -> dict:
    if kind == "uniform":
        low = draw(st.floats(-1e3, 1e3, allow_subnormal=False))
        width = draw(st.floats(1e-6, 1e3))
        return {"uniform": [low, low + width]}
    if kind == "loguniform":
        a = draw(st.integers(-12, 2))
        b = draw(st.integers(a + 1, 4))
        mantissa = draw(st.sampled_from([1.0, 2.5, 3.0, 7.0]))
        return {"loguniform": [mantissa * 10.0**a, 10.0**b]}
    if kind == "int":
        low = draw(st.integers(-100, 100))
        return {"int": [low, low + draw(st.integers(1, 1000))]}
    if kind == "log-int":
        low = draw(st.integers(1, 64))
        return {"int": [low, low + draw(st.integers(1, 5000))], "log": True}
    return {"choice": draw(st.lists(st.integers(0, 9), min_size=1, max_size=4, unique=True))}


@st.composite
def spaces(draw) -> SearchSpace:
    """One parameter of each kind (the exact bounds of the report among the log-uniform ones)."""
    spec = {kind: draw(domains(kind)) for kind in KINDS}
    if draw(st.booleans()):
        spec["loguniform"] = {"loguniform": [1e-05, 1.0]}
    return SearchSpace(spec)


def unit_points(d: int) -> st.SearchStrategy:
    edges = st.sampled_from([0.0, 1.0, 1.0 - 1e-16, 1e-300, 0.5])
    return st.lists(st.one_of(edges, st.floats(0.0, 1.0)), min_size=d, max_size=d)


def inside(space: SearchSpace, config: dict) -> None:
    space.validate({k: v for k, v in config.items() if k in space.params})
    for p in space:
        if p.name in config and isinstance(p.domain, (Int, Float)):
            v = config[p.name]
            assert type(v) is (int if isinstance(p.domain, Int) else float), (p.name, v)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(data=st.data(), space=spaces(), categorical=st.sampled_from(["ordinal", "onehot"]))
def test_decoding_any_point_of_the_cube_stays_inside(data, space, categorical):
    enc = space.encoding(categorical)
    config = enc.decode(data.draw(unit_points(enc.n_dims)))
    inside(space, config)
    inside(space, enc.decode(enc.encode(config)))  # and the round trip


@FAST
@given(space=spaces(), points=st.integers(2, 7))
def test_grid_values_stay_inside(space, points):
    for config in space.grid(points):
        inside(space, config)


@FAST
@given(space=spaces(), seed=st.integers(0, 2**31 - 1))
def test_hyperopt_samples_stay_inside(space, seed):
    from hyperopt.pyll.stochastic import sample

    inside(space, space.from_hyperopt(sample(space.to_hyperopt(), rng=np.random.default_rng(seed))))


@FAST
@given(space=spaces())
def test_hyperopt_extremes_stay_inside(space):
    """What hyperopt returns at the ends of its ranges: ``exp(log low)``, and for a log-int the
    quantised ``round(exp(log(low - ½)))`` (``0`` for ``low = 1``)."""
    raw = {}
    for p in space:
        d = p.domain
        if isinstance(d, Choice):
            raw[p.name] = d.values[0]
        elif isinstance(d, Int) and d.log:
            raw[p.name] = float(np.round(math.exp(math.log(d.low - 0.5))))
        elif d.log:
            raw[p.name] = math.exp(math.log(d.low))
        else:
            raw[p.name] = d.high + (d.high - d.low) * 1e-16
    inside(space, space.from_hyperopt(raw))


@FAST
@given(space=spaces(), seed=st.integers(0, 2**31 - 1))
def test_configspace_samples_stay_inside(space, seed):
    cs = space.to_configspace(seed=seed)
    for c in cs.sample_configuration(3):
        inside(space, space.from_configspace(dict(c)))


@FAST
@given(space=spaces(), data=st.data())
def test_clipped_perturbations_stay_inside(space, data):
    config = space.sample(data.draw(st.integers(0, 2**31 - 1)))
    factor = data.draw(st.sampled_from([0.8, 1.2, 1e-3, 1e3]))
    perturbed = {
        k: (v * factor if isinstance(v, (int, float)) and k != "choice" else v) for k, v in config.items()
    }
    inside(space, space.clip(perturbed))


#: small designs, so that the model-based strategies suggest from their models within a few trials
OPTIONS = {
    "bo": {"n_initial": 2, "n_candidates": 64},
    "fabolas": {"n_initial": 2, "n_candidates": 64},
    "tpe": {"n_initial_points": 2},
    "bohb": {"min_points_in_model": 2},
}


def first_suggestions(strategy: str, space: SearchSpace, seed: int, n: int = 5) -> list[dict]:
    cfg = make_tune_config(
        strategy,
        space,
        metric="loss",
        mode="min",
        num_samples=n,
        max_t=9,
        seed=seed,
        **OPTIONS.get(strategy, {}),
    )
    alg = cfg.search_alg
    if isinstance(alg, PresetGenerator):
        return alg.presets[:n]
    alg.set_search_properties("loss", "min", {})
    out = []
    for i in range(n):
        c = alg.suggest(f"t{i}")
        if c == Searcher.FINISHED:  # Fabolas ends early when its incumbent was evaluated at s = 1
            break
        out.append(c)
        # a finished trial each: the model-based strategies then suggest from their model
        alg.on_trial_complete(f"t{i}", {"loss": float(i % 3), "time_total_s": 1.0, "training_iteration": 9})
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), seed=st.integers(0, 1000))
@pytest.mark.parametrize("strategy", list(available_strategies()))
def test_every_strategy_suggests_inside_the_bounds(strategy, space, seed):
    for config in first_suggestions(strategy, space, seed):
        inside(space, config)


def test_the_reported_case():
    space = SearchSpace({"lr": {"loguniform": [1e-05, 1.0]}})
    assert space.grid(3)[0]["lr"] == 1e-05
    assert space.encoding().decode([0.0])["lr"] == 1e-05
    assert space.from_hyperopt({"lr": 9.999999999999997e-06})["lr"] == 1e-05


def test_quantised_ray_domains_are_refused():
    from ray import tune

    with pytest.raises(ConfigError, match="no quantised domain"):
        SearchSpace.from_tune({"lr": tune.quniform(0.0, 1.0, 0.1)})
    with pytest.raises(ConfigError, match="no quantised domain"):
        SearchSpace.from_tune({"n": tune.qlograndint(1, 64, 2)})
