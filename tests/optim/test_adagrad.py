"""Adagrad (and its decaying variant) against an independent numpy reference of the seed's equation (3.3)."""

from __future__ import annotations

import numpy as np
import pytest
from first_order_helpers import SmoothProblem, check_against_reference, run_ours


def ref_adagrad(lr, eps=1e-10, decay=1.0, weight_decay=0.0, maximize=False):
    """G ← ρ G + g² ; a ← a − α g / √(G + ε)."""

    def step(a, grad, state):
        g = (-grad if maximize else grad) + weight_decay * a
        G = decay * state.get("G", np.zeros_like(a)) + g * g
        state["G"] = G
        return a - lr * g / np.sqrt(G + eps)

    return step


@pytest.mark.parametrize(
    "hp",
    [
        dict(lr=0.1),
        dict(lr=0.1, eps=0.5),
        dict(lr=0.05, decay=0.9, eps=1e-2, weight_decay=0.01),
        dict(lr=0.05, maximize=True),
    ],
)
@pytest.mark.parametrize("fused", [None, False])
def test_adagrad_matches_seed_equation(hp, fused):
    check_against_reference("adagrad", ref_adagrad(**hp), {**hp, "fused": fused})


def test_state_sum_is_the_shifted_accumulator():
    problem = SmoothProblem()
    _, grads, opt = run_ours("adagrad", problem, 5, lr=0.1, eps=1e-3)
    state = next(iter(opt.state.values()))
    G = sum(g * g for g in grads)
    np.testing.assert_allclose(state["sum"].numpy() - 1e-3, G, rtol=1e-12, atol=1e-15)
