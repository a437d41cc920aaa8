"""Lion against an independent numpy reference of Chen et al.'s equations, the seed's simplified form
(β₁ = β₂), the peers lion-pytorch and pytorch_optimizer, and its single-pass kernels (CPU and compiled)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from first_order_helpers import SmoothProblem, check_against_reference, max_rel_err, run_ours, run_reference

from raytune_opt.errors import ConfigError
from raytune_opt.optim import Lion
from raytune_opt.optim._dispatch import COMPILED_MIN_NUMEL, run_compiled
from raytune_opt.optim.lion import lion_update


def ref_lion(lr, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
    """c ← β₁ m + (1 − β₁) g ; θ ← θ − η (sgn(c) + λ θ) ; m ← β₂ m + (1 − β₂) g."""
    b1, b2 = betas

    def step(theta, grad, state):
        g = -grad if maximize else grad
        m = state.get("m", np.zeros_like(theta))
        c = b1 * m + (1 - b1) * g
        state["m"] = b2 * m + (1 - b2) * g
        return theta - lr * (np.sign(c) + weight_decay * theta)

    return step


def ref_seed_lion(lr, beta1):
    """The seed's form (3.3): m ← β₁ m + (1 − β₁) g ; θ ← θ − η sgn(m)."""

    def step(theta, g, state):
        m = beta1 * state.get("m", np.zeros_like(theta)) + (1 - beta1) * g
        state["m"] = m
        return theta - lr * np.sign(m)

    return step


@pytest.mark.parametrize(
    "hp",
    [
        dict(lr=0.01, weight_decay=0.0),
        dict(lr=0.01, betas=(0.95, 0.98), weight_decay=0.3),
        dict(lr=0.005, weight_decay=0.1, maximize=True),
    ],
)
@pytest.mark.parametrize("fused", [None, True])  # True on the CPU: the single-pass kernel (_kernels)
def test_lion_matches_chen_et_al(hp, fused):
    check_against_reference("lion", ref_lion(**hp), {**hp, "fused": fused})


def test_equal_betas_is_the_seeds_simplified_form():
    problem = SmoothProblem(seed=5)
    traj, _, _ = run_ours("lion", problem, 50, lr=0.01, betas=(0.9, 0.9), weight_decay=0.0)
    ref = run_reference(ref_seed_lion(0.01, 0.9), problem.x0, problem.grad, 50)
    assert max_rel_err(traj, ref) < 1e-10


def _peer_trajectory(make, problem, steps=50):
    x = torch.tensor(problem.x0, requires_grad=True)
    opt, traj = make([x]), []
    for _ in range(steps):
        opt.zero_grad()
        problem.loss(x).backward()
        opt.step()
        traj.append(x.detach().numpy().copy())
    return traj


def test_matches_lion_pytorch_and_pytorch_optimizer():
    lion_pytorch = pytest.importorskip("lion_pytorch")
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    problem = SmoothProblem(seed=6)
    hp = dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.2)
    ours = _peer_trajectory(lambda p: Lion(p, **hp), problem)
    assert max_rel_err(ours, _peer_trajectory(lambda p: lion_pytorch.Lion(p, **hp), problem)) < 1e-12
    assert max_rel_err(ours, _peer_trajectory(lambda p: pytorch_optimizer.Lion(p, **hp), problem)) < 1e-12


def test_compiled_kernel_equals_foreach_path():
    """The one test that compiles (torch.compile → one C++ loop; what ``fused=True`` runs on CUDA and for
    half precision): the compiled rule gives the foreach result.

    The first tensor is large enough for the compiled kernel; the small one takes the eager rule. The
    lr and betas change at every step (a schedule): the kernel takes them as inputs, no recompile."""
    torch.manual_seed(0)
    params = [torch.randn(COMPILED_MIN_NUMEL), torch.randn(7, 11)]
    out = []
    for compiled in (True, False):
        ps = [p.clone() for p in params]
        m = [torch.zeros_like(p) for p in ps]
        gen = torch.Generator().manual_seed(1)
        for t in range(4):
            hyper = dict(lr=0.01 / (t + 1), beta1=0.9 - 0.01 * t, beta2=0.99, weight_decay=0.1)
            hyper["maximize"] = False
            grads = [torch.randn(p.shape, generator=gen) for p in ps]
            if compiled:
                with torch._dynamo.config.patch(error_on_recompile=t > 0):
                    run_compiled(lion_update, (ps, grads, m), hyper, Lion.compiled_tensors)
            else:
                lion_update(ps, grads, m, **hyper)
        out.append(ps)
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def _bf16(x: np.ndarray) -> np.ndarray:
    """x rounded to bfloat16 (to nearest, ties to even) as torch casts a float64: through float32."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def ref_lion_bf16_state(lr, betas, weight_decay):
    """Chen et al.'s Lion in float64 with the momentum m stored in bfloat16: rounded after each step."""
    b1, b2 = betas

    def step(theta, g, state):
        m = state.get("m", np.zeros_like(theta))
        c = b1 * m + (1 - b1) * g
        state["m"] = _bf16(b2 * m + (1 - b2) * g)
        return theta - lr * (np.sign(c) + weight_decay * theta)

    return step


@pytest.mark.parametrize("fused", [None, True])
def test_bf16_state_is_the_equation_with_m_rounded_each_step(fused):
    hp = dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    problem = SmoothProblem(seed=2)
    traj, _, opt = run_ours("lion", problem, 50, state_dtype="bfloat16", fused=fused, **hp)
    ref = run_reference(ref_lion_bf16_state(**hp), problem.x0, problem.grad, 50)
    assert max_rel_err(traj, ref) < 1e-10
    m = next(iter(opt.state.values()))["exp_avg"]
    assert m.dtype == torch.bfloat16
    # and it is not the float64-state trajectory: the rounding is real
    full = run_reference(ref_lion(**hp), problem.x0, problem.grad, 50)
    assert max_rel_err(ref, full) > 1e-6


def test_bf16_state_survives_a_state_dict_round_trip():
    """torch's load_state_dict casts state to the parameter's dtype; the bf16 momentum is cast back
    (losslessly) and the run continues bit for bit."""
    problem = SmoothProblem(seed=4)

    def step(opt, x):
        opt.zero_grad()
        problem.loss(x).backward()
        opt.step()

    x = torch.tensor(problem.x0, dtype=torch.float32, requires_grad=True)
    opt = Lion([x], lr=0.01, state_dtype="bfloat16")
    for _ in range(3):
        step(opt, x)
    y = x.detach().clone().requires_grad_()
    other = Lion([y], lr=0.01, state_dtype="bfloat16")
    other.load_state_dict(opt.state_dict())
    assert other.state[y]["exp_avg"].dtype == torch.bfloat16
    assert torch.equal(other.state[y]["exp_avg"], opt.state[x]["exp_avg"])
    step(opt, x)
    step(other, y)
    assert torch.equal(x, y) and torch.equal(other.state[y]["exp_avg"], opt.state[x]["exp_avg"])


def test_state_dtype_is_checked():
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(ConfigError, match=r"lion.state_dtype = 'float16' is not known.*bfloat16"):
        Lion([x], state_dtype="float16")
    with pytest.raises(ConfigError, match="lion.state_dtype = 'bfloat16' is not allowed: expected None"):
        Lion([torch.zeros(3, dtype=torch.complex64, requires_grad=True)], state_dtype="bfloat16")
