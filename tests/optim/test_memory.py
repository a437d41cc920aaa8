"""optim.state_bytes: the exact bytes of every first-order optimizer's state, per parameter (seed 3.4:
Lion keeps one buffer, Adam two), against torch.optim's own optimizers where they keep the same."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from raytune_opt import optim
from raytune_opt.optim import StateBytes, state_bytes

#: (hyperparameters, buffer bytes per float32 parameter, float32 step counters per parameter tensor)
EXPECTED = {
    "sgd": ({}, 0, False),
    "momentum": ({}, 4, False),
    "nesterov": ({}, 4, False),
    "rmsprop": ({}, 4, False),
    "rmsprop-momentum": ({"momentum": 0.5}, 8, False),
    "adagrad": ({}, 4, True),
    "adam": ({}, 8, True),
    "adamw": ({}, 8, True),
    "lion": ({}, 4, False),
    "lion-bf16": ({"state_dtype": "bfloat16"}, 2, False),
}


def _model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 3)).to(dtype)  # 283 elements, 4 tensors


def _stepped(opt: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
    model(torch.ones(2, 10, dtype=next(model.parameters()).dtype)).sum().backward()
    opt.step()
    return opt


@pytest.mark.parametrize("case", EXPECTED)
def test_exact_bytes_per_parameter(case: str) -> None:
    hparams, per_param, counts = EXPECTED[case]
    model = _model()
    opt = optim.create(case.split("-")[0], model, **hparams)
    assert state_bytes(opt) == StateBytes(buffers=0, scalars=0, params=283)  # before the first step
    got = state_bytes(_stepped(opt, model))
    assert got == StateBytes(buffers=per_param * 283, scalars=4 * 4 if counts else 0, params=283)
    assert got.per_param == per_param and got.total == got.buffers + got.scalars


def test_float64_parameters_double_the_buffers_and_bf16_is_a_quarter() -> None:
    model = _model(torch.float64)
    assert state_bytes(_stepped(optim.create("adam", model), model)).per_param == 16
    model = _model(torch.float64)
    lion = optim.create("lion", model, state_dtype="bfloat16")
    assert state_bytes(_stepped(lion, model)).per_param == 2


@pytest.mark.parametrize(
    ("ours", "torch_opt"),
    [
        ("adam", lambda p: torch.optim.Adam(p)),
        ("adamw", lambda p: torch.optim.AdamW(p)),
        ("adagrad", lambda p: torch.optim.Adagrad(p)),
        ("momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        ("rmsprop", lambda p: torch.optim.RMSprop(p)),
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1)),
    ],
)
def test_the_same_bytes_as_torch_optim(ours: str, torch_opt) -> None:
    a, b = _model(), _model()
    mine = state_bytes(_stepped(optim.create(ours, a), a))
    theirs = state_bytes(_stepped(torch_opt(b.parameters()), b))
    assert mine.buffers == theirs.buffers  # torch's RMSprop also counts steps (its scalars): ours need none
    if ours.startswith("ada"):
        assert mine.scalars == theirs.scalars


def test_second_order_state_counts_its_tensors_once() -> None:
    """BFGS keeps an n × n inverse-Hessian estimate (float32 here) and a few vectors."""
    model = _model()
    x = torch.ones(2, 10)
    opt = optim.create("bfgs", model)
    opt.step(lambda: model(x).pow(2).sum())
    got = state_bytes(opt)
    assert got.buffers >= 283 * 283 * 4 and got.per_param >= 283 * 4
