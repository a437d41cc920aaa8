"""SGD, Momentum and Nesterov against independent numpy references of the seed's equations (3.1),
and against torch.optim.SGD where it computes the same function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from first_order_helpers import SmoothProblem, check_against_reference, max_rel_err, run_ours

from raytune_opt.optim import Nesterov, create


def ref_sgd(lr, weight_decay=0.0, maximize=False):
    """a ← a − α g,  g = ±∇J + λ a."""

    def step(a, grad, state):
        g = (-grad if maximize else grad) + weight_decay * a
        return a - lr * g

    return step


def ref_momentum(lr, momentum, weight_decay=0.0):
    """v ← γ v + α g ; a ← a − v."""

    def step(a, grad, state):
        v = state.get("v", np.zeros_like(a))
        v = momentum * v + lr * (grad + weight_decay * a)
        state["v"] = v
        return a - v

    return step


class RefNesterov:
    """The seed's NAG with a and v kept apart: v ← γ v + α ∇J(a − γ v) ; a ← a − v."""

    def __init__(self, x0, grad_fn, lr, momentum):
        self.a, self.v = x0.copy(), np.zeros_like(x0)
        self.grad_fn, self.lr, self.gamma = grad_fn, lr, momentum

    def step(self):
        self.v = self.gamma * self.v + self.lr * self.grad_fn(self.a - self.gamma * self.v)
        self.a = self.a - self.v
        return self.a - self.gamma * self.v  # the look-ahead point, which the optimizer's parameter holds


@pytest.mark.parametrize("hp", [dict(lr=0.1), dict(lr=0.05, weight_decay=0.1), dict(lr=0.1, maximize=True)])
def test_sgd_matches_seed_equation(hp):
    check_against_reference("sgd", ref_sgd(**hp), hp)


@pytest.mark.parametrize("hp", [dict(lr=0.05, momentum=0.9), dict(lr=0.02, momentum=0.5, weight_decay=0.05)])
@pytest.mark.parametrize("fused", [None, False])
def test_momentum_matches_seed_equation(hp, fused):
    check_against_reference("momentum", ref_momentum(**hp), {**hp, "fused": fused})


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_nesterov_gradient_is_taken_at_the_lookahead_point(dtype, tol):
    problem, steps, lr, gamma = SmoothProblem(seed=1), 50, 0.05, 0.9
    traj, _, opt = run_ours("nesterov", problem, steps, dtype, lr=lr, momentum=gamma)
    ref = RefNesterov(
        problem.x0.astype(np.float32 if dtype == torch.float32 else np.float64).astype(float),
        problem.grad,
        lr,
        gamma,
    )
    lookahead = [ref.step() for _ in range(steps)]
    assert np.abs(lookahead[-1] - problem.x0).max() > 1e-2
    assert max_rel_err(traj, lookahead) < (tol if dtype == torch.float64 else 1e-4)
    # the seed's iterate a is recovered from the look-ahead point b as b + γ v
    a = opt.iterate()[0].double().numpy()
    assert np.abs(a - ref.a).max() < 1e3 * tol * np.abs(ref.a).max()


def _torch_vs_ours(name, torch_kwargs, ours_kwargs, steps=50, schedule=None):
    problem = SmoothProblem(seed=2)
    out = []
    for make in (lambda p: torch.optim.SGD(p, **torch_kwargs), lambda p: create(name, p, **ours_kwargs)):
        x = torch.tensor(problem.x0, requires_grad=True)
        opt = make([x])
        sched = schedule(opt) if schedule else None
        traj = []
        for _ in range(steps):
            opt.zero_grad()
            problem.loss(x).backward()
            opt.step()
            if sched:
                sched.step()
            traj.append(x.detach().numpy().copy())
        out.append(traj)
    return max_rel_err(out[1], out[0])


@pytest.mark.parametrize("fused", [None, False])
def test_matches_torch_sgd_at_constant_lr(fused):
    assert _torch_vs_ours("sgd", dict(lr=0.1), dict(lr=0.1, fused=fused)) < 1e-12
    assert (
        _torch_vs_ours("momentum", dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, fused=fused))
        < 1e-12
    )
    assert (
        _torch_vs_ours(
            "nesterov", dict(lr=0.05, momentum=0.9, nesterov=True), dict(lr=0.05, momentum=0.9, fused=fused)
        )
        < 1e-12
    )


def test_momentum_keeps_the_seed_form_when_the_lr_changes():
    """torch keeps v/α, so after a StepLR drop the two differ; ours follows v ← γ v + α g exactly."""

    def schedule(opt):
        return torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)

    assert (
        _torch_vs_ours("momentum", dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9), 30, schedule)
        > 1e-6
    )
    problem = SmoothProblem(seed=2)
    x = torch.tensor(problem.x0, requires_grad=True)
    opt = create("momentum", [x], lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
    a, v = problem.x0.copy(), np.zeros_like(problem.x0)
    for t in range(30):
        opt.zero_grad()
        problem.loss(x).backward()
        opt.step()
        sched.step()
        v = 0.9 * v + 0.05 * 0.1 ** (t // 10) * problem.grad(a)
        a = a - v
    np.testing.assert_allclose(x.detach().numpy(), a, rtol=1e-10)


def test_nesterov_iterate_before_any_step_is_the_parameter():
    x = torch.tensor([1.0, 2.0])
    opt = Nesterov([x], lr=0.1)
    assert torch.equal(opt.iterate()[0], x)


def test_momentum_zero_is_plain_gradient_descent():
    problem = SmoothProblem(seed=3)
    a, _, _ = run_ours("momentum", problem, 10, lr=0.1, momentum=0.0)
    b, _, _ = run_ours("sgd", problem, 10, lr=0.1)
    assert max_rel_err(a, b) < 1e-14


@pytest.mark.parametrize("fused", [None, False])
def test_nesterov_keeps_the_seed_form_when_the_lr_changes(fused):
    """The buffer is kept as v / c with its own scale c; lr drops, a per-step schedule and lr = 0 steps
    must still give the seed's v ← γ v + α ∇J(a − γ v) ; a ← a − v exactly (float64)."""
    problem, gamma = SmoothProblem(seed=3), 0.9
    lrs = [0.05] * 5 + [0.005] * 5 + [0.0] * 3 + [0.02 * 0.9**t for t in range(20)] + [0.01] * 10
    x = torch.tensor(problem.x0, requires_grad=True)
    opt = Nesterov([x], lr=lrs[0], momentum=gamma, fused=fused)
    a, v = problem.x0.copy(), np.zeros_like(problem.x0)
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        problem.loss(x).backward()
        opt.step()
        v = gamma * v + lr * problem.grad(a - gamma * v)
        a = a - v
        np.testing.assert_allclose(x.detach().numpy(), a - gamma * v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(opt.iterate()[0].numpy(), a, rtol=1e-10, atol=1e-12)
    assert np.abs(a - problem.x0).max() > 1e-2


def test_nesterov_default_is_torch_fused_kernel_at_constant_lr():
    """The default path runs torch's fused Nesterov kernel: bit-identical to torch.optim.SGD(fused=True)."""
    problem = SmoothProblem(seed=4)
    out = []
    for make in (
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, fused=True),
        lambda p: Nesterov(p, lr=0.05, momentum=0.9),
    ):
        x = torch.tensor(problem.x0, dtype=torch.float32, requires_grad=True)
        opt = make([x])
        for _ in range(20):
            opt.zero_grad()
            problem.loss(x).backward()
            opt.step()
        out.append(x.detach().clone())
    assert torch.equal(out[0], out[1])
