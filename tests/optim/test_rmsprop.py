"""RMSProp against an independent numpy reference of the seed's equation (3.3), ε inside the root."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from first_order_helpers import check_against_reference

from raytune_opt.optim import RMSProp


def ref_rmsprop(lr, beta=0.9, eps=1e-8, momentum=0.0, weight_decay=0.0):
    """v ← β v + (1 − β) g² ; a ← a − α g / √(v + ε)   (momentum: u ← γ u + α g / √(v + ε) ; a ← a − u)."""

    def step(a, grad, state):
        g = grad + weight_decay * a
        v = beta * state.get("v", np.zeros_like(a)) + (1 - beta) * g * g
        state["v"] = v
        d = lr * g / np.sqrt(v + eps)
        if momentum:
            d = momentum * state.get("u", np.zeros_like(a)) + d
            state["u"] = d
        return a - d

    return step


@pytest.mark.parametrize(
    "hp",
    [
        dict(lr=0.01),
        dict(lr=0.01, beta=0.99, eps=1e-3),
        dict(lr=0.005, momentum=0.9, weight_decay=0.01),
    ],
)
@pytest.mark.parametrize("fused", [None, True])  # True on the CPU: the single-pass kernel (_kernels)
def test_rmsprop_matches_seed_equation(hp, fused):
    check_against_reference("rmsprop", ref_rmsprop(**hp), {**hp, "fused": fused})


def test_eps_is_inside_the_root():
    """From v = 0, one step moves a by α g / √((1 − β) g² + ε): a large ε shows where it sits."""
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = RMSProp([x], lr=1.0, beta=0.0, eps=3.0)
    x.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step()
    assert x.item() == pytest.approx(-1.0 / np.sqrt(1.0 + 3.0), rel=1e-15)  # outside: −1 / (1 + 3)


def test_momentum_buffer_only_when_momentum_is_used():
    x = torch.ones(3, requires_grad=True)
    opt = RMSProp([x], lr=0.1)
    x.grad = torch.ones(3)
    opt.step()
    assert set(opt.state[x]) == {"square_avg"}
    opt.param_groups[0]["momentum"] = 0.9  # e.g. OneCycleLR turning momentum on
    opt.step()
    assert set(opt.state[x]) == {"square_avg", "momentum_buffer"}
