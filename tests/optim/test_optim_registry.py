"""The registry as the first-order optimizers use it: names, defaults, search ranges, create()."""

from __future__ import annotations

import inspect

import pytest
import torch
from first_order_helpers import FIRST_ORDER

from raytune_opt.errors import ConfigError
from raytune_opt.optim import available, create, param_groups

ISSUE_DEFAULTS = {
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9},
    "rmsprop": {"lr": 1e-3, "beta": 0.9, "eps": 1e-8, "momentum": 0.0},
    "adagrad": {"lr": 1e-2, "eps": 1e-10, "decay": 1.0},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
    "lion": {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0},
}


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
