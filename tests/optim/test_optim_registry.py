"""The registry as the first-order optimizers use it: names, defaults, search ranges, create()."""

from __future__ import annotations

import inspect

import pytest
import torch
from first_order_helpers import FIRST_ORDER

from raytune_opt.errors import ConfigError
from raytune_opt.optim import available, create, param_groups, register
from raytune_opt.optim.registry import Choices, Fixed, Range

ISSUE_DEFAULTS = {
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9},
    "rmsprop": {"lr": 1e-3, "beta": 0.9, "eps": 1e-8, "momentum": 0.0},
    "adagrad": {"lr": 1e-2, "eps": 1e-10, "decay": 1.0},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
    # Lion: AdamW's defaults by the seed's 3–10× rule (10×: lr 1e-3 → 1e-4, weight decay 1e-2 → 0.1)
    "lion": {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.1},
}
#: searched hyperparameters whose default is "off", which their log-uniform range cannot hold: coupled L2
#: weight decay, off by default as in torch.optim (Lion's and AdamW's decoupled decay are on)
OFF_BY_DEFAULT = {(n, "weight_decay") for n in ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")}


def test_first_order_names_are_registered():
    first = available("first-order")
    assert set(FIRST_ORDER) <= set(first)
    for name in FIRST_ORDER:
        assert first[name].kind == "first-order" and first[name].summary


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_defaults_are_the_issue_table_and_the_class_signature(name):
    spec = available()[name]
    assert {"lr", "weight_decay", "maximize", "fused"} <= set(spec.hparams)
    for key, value in ISSUE_DEFAULTS.get(name, {}).items():
        assert spec.hparams[key].default == value, key
    sig = inspect.signature(spec.cls.__init__).parameters
    for key, h in spec.hparams.items():
        assert sig[key].default == h.default, key
        if h.low is not None:
            assert 0 <= h.low < h.high
            assert not h.log or h.low > 0
        if h.choices is not None:
            assert h.default in h.choices


@pytest.mark.parametrize("name", list(available()))
def test_the_signature_is_the_spec(name):
    """Every constructor parameter is registered, in signature order, with the signature's default."""
    spec = available()[name]
    sig = list(inspect.signature(spec.cls.__init__).parameters.values())
    assert [p.name for p in sig[:2]] == ["self", "params"]
    assert [p.name for p in sig[2:]] == list(spec.hparams)
    for p in sig[2:]:
        h = spec.hparams[p.name]
        assert h.default == p.default and type(h.default) is type(p.default), p.name
        assert spec.defaults[p.name] == p.default
        if h.low is not None:
            assert h.choices is None and 0 <= h.low < h.high and (not h.log or h.low > 0), p.name
        if h.choices is not None:
            assert h.default in h.choices, p.name
        if h.searched and (name, p.name) not in OFF_BY_DEFAULT:  # the default is a point of its space
            assert h.default in h.choices if h.choices else h.low <= h.default <= h.high, p.name
    # and the class built by create() without arguments runs with those defaults
    opt = create(name, [torch.zeros(2, requires_grad=True)])
    for key, value in spec.defaults.items():
        if key in opt.defaults and key != "max_eval":  # max_eval: None → its derived value
            assert opt.defaults[key] == value, key


def test_register_refuses_a_class_whose_parameters_and_entries_differ():
    class Toy(torch.optim.SGD):
        def __init__(self, params, lr: float = 0.1, momentum: float = 0.0):
            super().__init__(params, lr=lr, momentum=momentum)

    with pytest.raises(TypeError, match=r"not registered \['momentum'\]"):
        register("toy", Toy, "first-order", "toy", [Range("lr", 1e-3, 1.0, log=True)])
    with pytest.raises(TypeError, match=r"not parameters \['nesterov'\]"):
        register("toy", Toy, "first-order", "toy", [Fixed("lr"), Fixed("momentum"), Fixed("nesterov")])
    with pytest.raises(TypeError, match="not in"):
        register("toy", Toy, "first-order", "toy", [Fixed("lr"), Choices("momentum", (0.5, 0.9))])
    assert "toy" not in available()


def test_lm_takes_every_parameter_of_its_class():
    """The drift of the issue: create("lm") gave ν = 2 while the registry said 10, and refused
    damping_update, which the class takes."""
    x = torch.zeros(2, requires_grad=True)
    assert create("lm", [x]).defaults["nu"] == available()["lm"].hparams["nu"].default == 2.0
    assert create("lm", [x], damping_update="marquardt").defaults["damping_update"] == "marquardt"
    nu = available()["lm"].hparams["nu"]
    assert nu.low <= nu.default <= nu.high


def test_lion_follows_adamw_by_the_seed_rule():
    """Lion's lr 3–10× below AdamW's and its weight decay 3–10× above, across AdamW's whole ranges: every
    such value is in Lion's range and Lion's range holds nothing else; its defaults follow the same rule."""
    adamw, lion = available()["adamw"].hparams, available()["lion"].hparams
    lr, wd = lion["lr"], lion["weight_decay"]
    assert lr.log and wd.log
    assert (lr.low, lr.high) == pytest.approx((adamw["lr"].low / 10, adamw["lr"].high / 3))
    assert (wd.low, wd.high) == pytest.approx(
        (adamw["weight_decay"].low * 3, adamw["weight_decay"].high * 10)
    )
    assert 3 <= adamw["lr"].default / lr.default <= 10
    assert 3 <= wd.default / adamw["weight_decay"].default <= 10
    assert lr.low <= lr.default <= lr.high and wd.low <= wd.default <= wd.high


def test_fused_and_foreach_together_are_refused():
    with pytest.raises(ConfigError, match="foreach"):
        create("adam", [torch.zeros(2)], fused=True, foreach=True)
    with pytest.raises(ConfigError, match="foreach"):
        create("adam", [torch.zeros(2)], foreach="yes")


def test_search_ranges_follow_the_seed():
    hp = {n: available()[n].hparams for n in FIRST_ORDER}
    # Adam/AdamW lr around 1e-3
    for n in ("adam", "adamw"):
        assert hp[n]["lr"].low <= 1e-3 <= hp[n]["lr"].high and hp[n]["lr"].log
    # Lion: lr 3–10× smaller than AdamW's, weight decay 3–10× larger
    for end in ("low", "high"):
        assert 3 <= getattr(hp["adamw"]["lr"], end) / getattr(hp["lion"]["lr"], end) <= 10
        assert 3 <= getattr(hp["lion"]["weight_decay"], end) / getattr(hp["adamw"]["weight_decay"], end) <= 10
    # momentum / beta1 in 0.9–0.99
    for n in ("momentum", "nesterov"):
        assert (hp[n]["momentum"].low, hp[n]["momentum"].high) == (0.9, 0.99)
    for n in ("adam", "adamw", "lion"):
        assert all(0.9 <= b1 <= 0.99 for b1, _ in hp[n]["betas"].choices)


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_create_from_a_module_puts_biases_and_norms_in_a_no_decay_group(name):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    opt = create(name, model, weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(no_decay["params"]) == 4
    assert opt.defaults["weight_decay"] == 0.1


def test_param_groups_leaves_out_frozen_parameters():
    model = torch.nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    groups = param_groups(model, 0.5)
    assert len(groups) == 1 and groups[0]["params"] == [model.weight]


def test_unknown_names_and_hyperparameters():
    with pytest.raises(ConfigError, match="did you mean 'adamw'") as err:
        create("adamww", [torch.zeros(2)])
    assert "lion" in str(err.value) and "sgd" in str(err.value)
    with pytest.raises(ConfigError, match="betas"):
        create("lion", [torch.zeros(2)], beta1=0.9)
    with pytest.raises(ConfigError, match="momentum"):
        create("sgd", [torch.zeros(2)], momentum=0.9)  # plain SGD has none: use "momentum"
