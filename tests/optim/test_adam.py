"""Adam and AdamW against independent numpy references of the seed's equations (3.3) and against
torch.optim.Adam / AdamW, which compute the same functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from first_order_helpers import SmoothProblem, check_against_reference, max_rel_err

from raytune_opt.optim import create


def ref_adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False, maximize=False):
    """V ← β₁V + (1−β₁)g ; S ← β₂S + (1−β₂)g² ; V̂ = V/(1−β₁ᵗ) ; Ŝ = S/(1−β₂ᵗ) ;
    w ← w − η V̂/(√Ŝ + ε)  [− η λ w_{t−1} if decoupled, else g += λ w]."""
    b1, b2 = betas

    def step(w, grad, state):
        g = -grad if maximize else grad.copy()
        if not decoupled:
            g = g + weight_decay * w
        t = state.get("t", 0) + 1
        V = b1 * state.get("V", np.zeros_like(w)) + (1 - b1) * g
        S = b2 * state.get("S", np.zeros_like(w)) + (1 - b2) * g * g
        state.update(t=t, V=V, S=S)
        V_hat, S_hat = V / (1 - b1**t), S / (1 - b2**t)
        new = w - lr * V_hat / (np.sqrt(S_hat) + eps)
        return new - lr * weight_decay * w if decoupled else new

    return step


@pytest.mark.parametrize(
    "hp",
    [
        dict(lr=0.01),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1),
        dict(lr=0.01, maximize=True),
    ],
)
@pytest.mark.parametrize("fused", [None, False])
def test_adam_matches_seed_equation(hp, fused):
    check_against_reference("adam", ref_adam(**hp), {**hp, "fused": fused})


@pytest.mark.parametrize(
    "hp", [dict(lr=0.01, weight_decay=0.01), dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.5)]
)
@pytest.mark.parametrize("fused", [None, False])
def test_adamw_matches_seed_equation(hp, fused):
    check_against_reference("adamw", ref_adam(**hp, decoupled=True), {**hp, "fused": fused})


@pytest.mark.parametrize("name,torch_cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
@pytest.mark.parametrize("fused", [None, False])
def test_matches_torch(name, torch_cls, fused):
    problem = SmoothProblem(seed=4)
    hp = dict(lr=0.02, betas=(0.85, 0.99), eps=1e-6, weight_decay=0.05)
    trajs = []
    for make in (lambda p: torch_cls(p, **hp), lambda p: create(name, p, **hp, fused=fused)):
        x = torch.tensor(problem.x0, requires_grad=True)
        opt, traj = make([x]), []
        for _ in range(50):
            opt.zero_grad()
            problem.loss(x).backward()
            opt.step()
            traj.append(x.detach().numpy().copy())
        trajs.append(traj)
    assert max_rel_err(trajs[1], trajs[0]) < 1e-12


def test_adamw_via_create_leaves_biases_undecayed():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = create("adamw", model, lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradient: only the decoupled decay can move a parameter
    opt.step()
    for n, p in model.named_parameters():
        if p.ndim >= 2:
            torch.testing.assert_close(p.detach(), before[n] * (1 - 0.1 * 0.5), rtol=0, atol=0)
        else:
            assert torch.equal(p.detach(), before[n]), n
