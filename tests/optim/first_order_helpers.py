"""Shared pieces of the first-order optimizer tests: a random smooth non-convex problem with a numpy
gradient, and runners that drive an optimizer (closed loop) or an independent numpy reference.

The references themselves (one per seed equation) live in the test files, written in plain numpy
float64, independent of ``raytune_opt.optim``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from raytune_opt.optim import create

FIRST_ORDER = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw", "lion")

# gradient → new state; a reference step maps (x, g, state) to (x_new, state_new)
RefStep = Callable[[np.ndarray, np.ndarray, dict], np.ndarray]


class SmoothProblem:
    """f(x) = ½ ‖tanh(A x) − b‖² + 0.05 Σ cos(3 xᵢ): smooth, non-convex, random A and b."""

    def __init__(self, n: int = 12, m: int = 16, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.A = rng.normal(size=(m, n)) / np.sqrt(n)
        self.b = rng.uniform(-0.8, 0.8, size=m)
        self.x0 = rng.normal(size=n)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(self.A, dtype=x.dtype)
        b = torch.as_tensor(self.b, dtype=x.dtype)
        return 0.5 * ((torch.tanh(a @ x) - b) ** 2).sum() + 0.05 * torch.cos(3 * x).sum()

    def grad(self, x: np.ndarray) -> np.ndarray:
        t = np.tanh(self.A @ x)
        return self.A.T @ ((t - self.b) * (1 - t**2)) - 0.15 * np.sin(3 * x)


def run_ours(
    name: str, problem: SmoothProblem, steps: int, dtype: torch.dtype = torch.float64, **hparams
) -> tuple[list[np.ndarray], list[np.ndarray], torch.optim.Optimizer]:
    """Closed loop: ``steps`` steps of optimizer ``name`` on ``problem``; the parameter after each step and
    the float64 gradient autograd gave before it."""
    x = torch.tensor(problem.x0, dtype=dtype, requires_grad=True)
    opt = create(name, [x], **hparams)
    traj, grads = [], []
    for _ in range(steps):
        opt.zero_grad()
        problem.loss(x).backward()
        grads.append(x.grad.double().numpy().copy())
        opt.step()
        traj.append(x.detach().double().numpy().copy())
    return traj, grads, opt


def run_reference(
    step: RefStep, x0: np.ndarray, grad: Callable[[np.ndarray], np.ndarray], steps: int
) -> list:
    """Closed loop of a numpy reference: x ← step(x, grad(x), state)."""
    x, state, traj = x0.astype(np.float64).copy(), {}, []
    for _ in range(steps):
        x = step(x, grad(x), state)
        traj.append(x.copy())
    return traj


def replay_reference(step: RefStep, x0: np.ndarray, grads: list[np.ndarray]) -> list:
    """Open loop: the reference fed the gradients the optimizer saw (float32 checks, no chaos from f)."""
    x, state, traj = x0.astype(np.float64).copy(), {}, []
    for g in grads:
        x = step(x, g, state)
        traj.append(x.copy())
    return traj


def max_rel_err(traj: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """max over steps of ‖x − x_ref‖∞ / ‖x_ref‖∞."""
    assert len(traj) == len(ref) and len(ref) > 0
    return max(float(np.abs(x - r).max() / np.abs(r).max()) for x, r in zip(traj, ref, strict=True))


def check_against_reference(name: str, step: RefStep, hparams: dict, steps: int = 50, seed: int = 0) -> None:
    """The issue's correctness bar: float64 closed loop within 1e-10, float32 within 1e-5 (relative)."""
    problem = SmoothProblem(seed=seed)
    traj, _, _ = run_ours(name, problem, steps, torch.float64, **hparams)
    ref = run_reference(step, problem.x0, problem.grad, steps)
    assert np.abs(ref[-1] - problem.x0).max() > 1e-3, (
        "the trajectory must move for the check to mean anything"
    )
    assert max_rel_err(traj, ref) < 1e-10
    x0_32 = problem.x0.astype(np.float32).astype(np.float64)
    traj32, grads32, _ = run_ours(name, problem, steps, torch.float32, **hparams)
    assert max_rel_err(traj32, replay_reference(step, x0_32, grads32)) < 1e-5
