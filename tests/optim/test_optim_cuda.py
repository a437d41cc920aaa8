"""Every optimizer of the zoo on CUDA, on each of its paths, against the same optimizer on the CPU.

The CPU paths are checked against independent float64 references in the other tests of this folder; here
a CUDA step must give the CPU's result: first-order optimizers through torch's native fused kernels
(``fused=None``), the multi-tensor rule (``fused=False``) and the compiled one (``fused=True``, Triton),
in float64 (to 1e-10) and float32 (to float32 rounding); the second-order ones on Rosenbrock and an MGH
least-squares problem. Skipped without a GPU (the CI machine); run on a lent one.
"""

from __future__ import annotations

import pytest
import torch

from raytune_opt import optim
from raytune_opt.optim._dispatch import COMPILED_MIN_NUMEL
from raytune_opt.optim.problems import mgh, rosenbrock

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FIRST_ORDER = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw", "lion")
HPARAMS = {  # non-default settings that reach every term of each equation
    "sgd": {"lr": 0.05, "weight_decay": 0.01},
    "momentum": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
    "nesterov": {"lr": 0.05, "momentum": 0.9},
    "rmsprop": {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.01},
    "adagrad": {"lr": 0.1, "weight_decay": 0.01},
    "adam": {"lr": 0.01, "weight_decay": 0.01},
    "adamw": {"lr": 0.01, "weight_decay": 0.1},
    "lion": {"lr": 0.001, "weight_decay": 0.1},
}
# one tensor above the compiled path's size threshold, two small ones (the eager rule takes those)
SHAPES = ((COMPILED_MIN_NUMEL + 3,), (33, 7), (5,))


def _run(name: str, fused: bool | None, device: str, dtype: torch.dtype, steps: int = 6) -> list:
    gen = torch.Generator().manual_seed(0)
    x0 = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES] for _ in range(steps)]
    params = [torch.nn.Parameter(x.to(device, dtype)) for x in x0]
    opt = optim.create(name, params, **HPARAMS[name], fused=fused)
    for g in grads:
        for p, gi in zip(params, g, strict=True):
            p.grad = gi.to(device, dtype) * (1.0 + p.detach())  # depends on the iterate, as a real gradient
        opt.step()
    return [p.detach().cpu().double() for p in params]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("fused", [None, False, True])
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_first_order_cuda_equals_cpu(name, fused, dtype):
    """float64: the CPU's result to 1e-10; float32: within float32 rounding of it (CPU float32: <= 8e-5)."""
    cpu = _run(name, False, "cpu", torch.float64)
    cuda = _run(name, fused, "cuda", dtype)
    for a, b in zip(cuda, cpu, strict=True):
        if dtype == torch.float64:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        elif name == "lion":  # sgn(c): where c is within float32 rounding of 0 it may step the other way
            assert torch.isclose(a, b, rtol=2e-4, atol=2e-4).float().mean() > 0.999
        else:
            torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-4)


def _solve(name: str, device: str) -> torch.Tensor:
    if name == "lm":
        prob = mgh("freudenstein_roth")
        x = torch.nn.Parameter(prob.start().to(device))
        opt = optim.create("lm", [x], max_iter=100)
        opt.step(lambda: prob.residuals(x))
    else:
        x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64, device=device))
        opt = optim.create(name, [x], max_iter=200)

        def closure() -> torch.Tensor:  # Newton differentiates the loss itself; the others take .grad
            if name == "newton":
                return rosenbrock(x)
            opt.zero_grad()
            loss = rosenbrock(x)
            loss.backward()
            return loss

        opt.step(closure)
    return x.detach().cpu()


@pytest.mark.parametrize("name", ["newton", "bfgs", "lbfgs", "lm"])
def test_second_order_cuda_equals_cpu(name):
    torch.testing.assert_close(_solve(name, "cuda"), _solve(name, "cpu"), rtol=1e-8, atol=1e-10)
