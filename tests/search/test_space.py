"""SearchSpace: parsing, bad domains, and round trips through every conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic import SPACE, space

from raytune_opt.errors import ConfigError
from raytune_opt.search import Choice, Fixed, Float, Int, SearchSpace

FLAT = {
    "lr": {"loguniform": [1e-5, 1e-1]},
    "momentum": {"uniform": [0.9, 0.99]},
    "batch_size": {"int": [16, 256], "log": True},
    "layers": {"int": [1, 4]},
    "act": {"choice": ["relu", "tanh"]},
    "epochs": 5,
}


def test_parse_dict_and_yaml_agree(tmp_path):
    yaml_text = """
opt: {choice: [a, b]}
lr: {loguniform: [1.0e-4, 1.0]}
mom: {uniform: [0.0, 1.0], when: {opt: a}}
width: {int: [1, 32], log: true, when: {opt: b}}
"""
    (tmp_path / "space.yaml").write_text(yaml_text)
    assert SearchSpace.from_yaml(tmp_path / "space.yaml") == space()
    assert SearchSpace.from_yaml(yaml_text) == space()
    sp = SearchSpace(FLAT)
    assert sp.params["lr"].domain == Float(1e-5, 1e-1, log=True)
    assert sp.params["batch_size"].domain == Int(16, 256, log=True)
    assert sp.params["act"].domain == Choice(("relu", "tanh"))
    assert sp.params["epochs"].domain == Fixed(5)
    assert sp.constants == {"epochs": 5}
    assert space().params["mom"].when == ("opt", ("a",))


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"lr": {"uniform": [1.0, 1.0]}}, "low < high"),
        ({"lr": {"uniform": [2.0, 1.0]}}, "low < high"),
        ({"lr": {"loguniform": [0.0, 1.0]}}, "bounds > 0"),
        ({"n": {"int": [0, 8], "log": True}}, "bounds > 0"),
        ({"n": {"int": [1.5, 8]}}, "two integers"),
        ({"act": {"choice": []}}, "non-empty"),
        ({"act": {"grid": []}}, "non-empty"),
        ({"m": {"uniform": [0, 1], "when": {"optimizer": "sgd"}}}, "parent parameter"),
        ({"o": {"choice": ["x"]}, "m": {"uniform": [0, 1], "when": {"o": "y"}}}, "values of o"),
        ({"o": {"uniform": [0, 1]}, "m": {"uniform": [0, 1], "when": {"o": 0.5}}}, "choice parameter"),
        ({"lr": {"uniformly": [0, 1]}}, "one of uniform"),
        ({"lr": {"uniform": [0, 1], "choice": [1]}}, "one of uniform"),
    ],
)
def test_bad_domains_raise_config_error(spec, words):
    with pytest.raises(ConfigError, match=words):
        SearchSpace(spec)


def test_condition_on_unknown_parameter_suggests_the_close_name():
    with pytest.raises(ConfigError, match="did you mean 'opt'"):
        SearchSpace({**SPACE, "beta": {"uniform": [0, 1], "when": {"opts": "a"}}})


def test_conditional_samples_hold_only_active_parameters():
    sp = space()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        c = sp.validate(sp.sample(rng))
        seen.add(c["opt"])
        assert ("mom" in c) == (c["opt"] == "a") and ("width" in c) == (c["opt"] == "b")
    assert seen == {"a", "b"}
    with pytest.raises(ConfigError, match="inactive"):
        sp.validate({"opt": "b", "lr": 0.1, "width": 3, "mom": 0.5})


@pytest.mark.parametrize("categorical", ["ordinal", "onehot"])
def test_encoding_round_trip(categorical):
    """decode(encode(c)) == c for every configuration (ints and choices exactly, floats to 1e-12)."""
    for spec in (FLAT, SPACE):
        sp = SearchSpace(spec)
        enc = sp.encoding(categorical)
        rng = np.random.default_rng(1)
        for _ in range(100):
            c = sp.sample(rng)
            x = enc.encode(c)
            assert x.shape == (enc.n_dims,) and np.all((x >= 0) & (x <= 1))
            back = enc.decode(x)
            assert back.keys() == c.keys()
            for k, v in c.items():
                assert back[k] == (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v)
        assert enc.bounds.shape == (2, enc.n_dims)
    assert SearchSpace(FLAT).encoding("onehot").n_dims == 4 + 2  # act takes two one-hot columns


def test_encoding_scales_log_domains_and_gives_ints_equal_shares():
    enc = SearchSpace({"lr": {"loguniform": [1e-4, 1.0]}, "n": {"int": [1, 4]}}).encoding()
    assert enc.decode([0.5, 0.0]) == {"lr": pytest.approx(1e-2), "n": 1}
    counts = np.bincount([enc.decode([0.0, u])["n"] for u in np.linspace(0, 1, 4001)])[1:]
    assert counts.min() >= 999 and counts.max() <= 1002


def test_tune_round_trip_and_ray_sampling():
    from ray.tune.search.variant_generator import generate_variants

    sp = SearchSpace(FLAT)
    assert SearchSpace.from_tune(sp.to_tune()) == sp
    grid = SearchSpace({"a": {"grid": [1, 2, 3]}, "b": {"uniform": [0, 1]}})
    assert SearchSpace.from_tune(grid.to_tune()) == grid
    for _, config in generate_variants(sp.to_tune()):
        sp.validate(config)
    # a conditional parameter is None when inactive in Ray's own form
    for _, config in generate_variants(space().to_tune()):
        assert (config["mom"] is None) == (config["opt"] != "a")
        assert (config["width"] is None) == (config["opt"] != "b")


def test_from_tune_rejects_quantized_domains():
    from ray import tune

    with pytest.raises(ConfigError, match="quantised"):
        SearchSpace.from_tune({"x": tune.quniform(0, 1, 0.1)})


def test_hyperopt_round_trip_samples_only_active_parameters():
    from hyperopt.pyll import stochastic

    for spec in (FLAT, SPACE):
        sp = SearchSpace(spec)
        hspace = sp.to_hyperopt()
        rng = np.random.default_rng(0)
        opts = set()
        for _ in range(40):
            c = sp.validate(sp.from_hyperopt(stochastic.sample(hspace, rng)))
            opts.add(c.get("opt"))
            if "batch_size" in c:
                assert isinstance(c["batch_size"], int)
    assert opts == {"a", "b"}


def test_configspace_round_trip_with_conditions():
    from ConfigSpace import EqualsCondition, InCondition

    sp = SearchSpace({**SPACE, "beta": {"uniform": [0.8, 0.99], "when": {"opt": ["a", "b"]}}})
    cs = sp.to_configspace(seed=0)
    kinds = {type(c) for c in cs.conditions}
    assert kinds == {EqualsCondition, InCondition}
    for conf in cs.sample_configuration(40):
        c = sp.validate(sp.from_configspace(conf))
        assert "beta" in c
    flat = SearchSpace(FLAT)
    for conf in flat.to_configspace(seed=1).sample_configuration(20):
        c = flat.validate(flat.from_configspace(conf))
        assert c["epochs"] == 5 and isinstance(c["layers"], int)


def test_grid_expands_conditions_and_discretises_numbers():
    sp = space()
    grid = sp.grid(points=3)
    assert len(grid) == 3 * 3 + 3 * 3  # opt=a: lr × mom; opt=b: lr × width
    for c in grid:
        sp.validate(c)
    assert sorted({c["lr"] for c in grid}) == pytest.approx([1e-4, 1e-2, 1.0])
    assert sorted({c["width"] for c in grid if "width" in c}) == [1, 6, 32]
    with pytest.raises(ConfigError, match="points"):
        sp.grid(points=1)


def test_for_optimizers_ranges_follow_the_seed():
    pytest.importorskip("raytune_opt.optim")
    sp = SearchSpace.for_optimizers(["adam", "adamw", "lion", "momentum"], epochs=3)
    p = sp.params

    def centre(name):
        d = p[name].domain
        return math.sqrt(d.low * d.high) if d.log else (d.low + d.high) / 2

    assert 3 <= centre("adamw.lr") / centre("lion.lr") <= 10  # Lion: lr 3–10× below AdamW's
    assert 3 <= centre("lion.weight_decay") / centre("adamw.weight_decay") <= 10  # wd 3–10× above
    assert (p["momentum.momentum"].domain.low, p["momentum.momentum"].domain.high) == (0.9, 0.99)
    assert p["adam.lr"].domain.low <= 1e-3 <= p["adam.lr"].domain.high
    assert centre("adam.lr") == pytest.approx(1e-3, rel=0.5)
    rng = np.random.default_rng(0)
    for _ in range(30):
        c = sp.validate(sp.sample(rng))
        name = c["optimizer"]
        assert all(k.startswith(f"{name}.") for k in c if "." in k) and f"{name}.lr" in c
        assert c["epochs"] == 3
    with pytest.raises(ConfigError, match="did you mean 'lion'"):
        SearchSpace.for_optimizers(["lino"])


def test_a_space_is_extended_with_params_or_the_union_operator():
    base = SearchSpace.for_optimizers(["adamw", "lion"])
    extra = {
        "batch_size": {"choice": [64, 128]},
        "lion.amsgrad": {"choice": [False, True], "when": {"optimizer": "lion"}},
    }
    wider = base | extra
    assert (
        wider
        == base.with_params(extra)
        == base.with_params(batch_size={"choice": [64, 128]}).with_params(
            {"lion.amsgrad": extra["lion.amsgrad"]}
        )
    )
    assert [p.name for p in wider] == [*(p.name for p in base), "batch_size", "lion.amsgrad"]
    assert wider.params["lion.amsgrad"].when == ("optimizer", ("lion",))
    assert wider.params["batch_size"].domain == Choice((64, 128))
    assert list(base) == list(SearchSpace.for_optimizers(["adamw", "lion"]))  # base is unchanged
    config = wider.sample(0)
    assert config["batch_size"] in (64, 128) and ("lion.amsgrad" in config) == (config["optimizer"] == "lion")
    assert [p.name for p in {"depth": {"int": [1, 3]}} | base][:2] == ["depth", "optimizer"]
    assert (base | SearchSpace({"depth": Int(1, 3)})).params["depth"].domain == Int(1, 3)


@pytest.mark.parametrize(
    ("extend", "match"),
    [
        (lambda s: s | {"adamw.lr": {"loguniform": [1e-5, 1e-1]}},
         r"with_params = \['adamw.lr'\].*space.without\('adamw.lr'\)"),
        (lambda s: s.with_params({"depth": 1}, depth=2), "each parameter named once"),
        (lambda s: s | {"x": {"uniform": [0, 1], "when": {"optimizer": "sgd"}}},
         r"values of optimizer: \['adamw'\]"),
        (lambda s: s.with_params([1, 2]), "a dict of parameter: domain, or a SearchSpace"),
    ],
)  # fmt: skip
def test_extending_a_space_with_a_conflict_is_a_config_error(extend, match):
    with pytest.raises(ConfigError, match=match):
        extend(SearchSpace.for_optimizers(["adamw"]))
    with pytest.raises(TypeError):
        SearchSpace.for_optimizers(["adamw"]) | 3
