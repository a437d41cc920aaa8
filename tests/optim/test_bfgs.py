"""BFGS: the seed's B update (kept as its inverse), Rosenbrock vs SciPy, closures, groups, state, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, rosen, rosen_der

from raytune_opt.errors import ConfigError
from raytune_opt.optim import BFGS, create
from raytune_opt.optim.bfgs import bfgs_inverse_update, bfgs_update
from raytune_opt.optim.problems import ill_conditioned_quadratic, rosenbrock

F64 = torch.float64


def _minimize(cls, f, x0, **hp):
    x = torch.tensor(x0, dtype=F64, requires_grad=True)
    opt = cls([x], **{"max_iter": 1000, "max_eval": 3000, "tolerance_change": 1e-14, **hp})
    opt.step(lambda: f(x))
    return x.detach(), opt.state[x]


def test_inverse_update_equals_inverse_of_seed_b_update():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(6, 6, generator=g, dtype=F64)
    B = M @ M.T + 6 * torch.eye(6, dtype=F64)
    H = torch.linalg.inv(B)
    for _ in range(5):
        s = torch.randn(6, generator=g, dtype=F64)
        y = B @ s + 0.1 * torch.randn(6, generator=g, dtype=F64)
        assert float(y.dot(s)) > 0
        B, H = bfgs_update(B, s, y), bfgs_inverse_update(H, s, y)
        torch.testing.assert_close(H, torch.linalg.inv(B), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(B @ s, y)  # secant equation B_{k+1} s_k = y_k


class _RecordingBFGS(BFGS):
    """BFGS that also applies the seed's B formula to every accepted pair (test-only subclass)."""

    def _update(self, st, s, y):
        before = st.get("H")
        super()._update(st, s, y)
        if st.get("H") is not before:
            if before is None:  # H₀ = γ I was just created, then updated
                gamma = float(y.dot(s) / y.dot(y))
                self.B = torch.eye(s.numel(), dtype=s.dtype) / gamma
            self.B = bfgs_update(self.B, s, y)


def test_state_h_is_inverse_of_seed_b_along_a_run():
    f, _ = ill_conditioned_quadratic(5, 1e3, seed=1)
    x = torch.zeros(5, dtype=F64, requires_grad=True)
    opt = _RecordingBFGS([x], max_iter=4, tolerance_grad=0.0, tolerance_change=0.0)
    opt.step(lambda: f(x))
    H = opt.state[x]["H"]
    torch.testing.assert_close(H, torch.linalg.inv(opt.B), rtol=1e-8, atol=1e-10)


def test_update_skipped_without_curvature():
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    opt = BFGS([x])
    st = opt.state[x]
    st["H"] = torch.eye(3, dtype=F64)
    s = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    opt._update(st, s, -s)  # yᵀs < 0: B_{k+1} would not be positive definite
    torch.testing.assert_close(st["H"], torch.eye(3, dtype=F64))


@pytest.mark.parametrize("x0", [[-1.2, 1.0], [0.0] * 10], ids=["2d", "10d"])
def test_rosenbrock_vs_scipy_bfgs(x0):
    ref = minimize(rosen, np.array(x0), jac=rosen_der, method="BFGS", options={"gtol": 1e-5})
    x, st = _minimize(BFGS, rosenbrock, x0, tolerance_grad=1e-5)
    assert float(rosenbrock(x)) <= max(ref.fun, 1e-12)
    np.testing.assert_allclose(x.numpy(), ref.x, atol=1e-4)
    assert st["n_iter"] <= 1.5 * ref.nit, (st["n_iter"], ref.nit)


def test_loss_only_closure_equals_backward_closure():
    x1 = torch.tensor([-1.2, 1.0], dtype=F64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    o1, o2 = BFGS([x1], max_iter=15), BFGS([x2], max_iter=15)

    def closure_backward():
        o1.zero_grad()
        loss = rosenbrock(x1)
        loss.backward()
        return loss

    l1 = o1.step(closure_backward)
    l2 = o2.step(lambda: rosenbrock(x2))
    assert float(l1) == float(l2) == pytest.approx(24.2)  # the loss at the START of the step
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)


def test_multi_tensor_multi_group_equals_single_vector():
    f, x_star = ill_conditioned_quadratic(6, 100.0, seed=2)
    a = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    b = torch.zeros(2, dtype=F64, requires_grad=True)
    opt = BFGS(
        [{"params": [a]}, {"params": [b]}],
        max_iter=40,
        max_eval=100,
        tolerance_grad=1e-12,
        tolerance_change=0,
    )
    opt.step(lambda: f(torch.cat([a.reshape(-1), b])))
    x = torch.zeros(6, dtype=F64, requires_grad=True)
    ref = BFGS([x], max_iter=40, max_eval=100, tolerance_grad=1e-12, tolerance_change=0)
    ref.step(lambda: f(x))
    torch.testing.assert_close(
        torch.cat([a.detach().reshape(-1), b.detach()]), x.detach(), rtol=0, atol=1e-14
    )
    torch.testing.assert_close(x.detach(), x_star, atol=1e-6, rtol=0)


def test_state_dict_round_trip_continues_exactly():
    def make():
        x = torch.tensor([-1.2, 1.0, 0.5, -0.3], dtype=F64, requires_grad=True)
        return x, BFGS([x], max_iter=3)

    x1, o1 = make()
    for _ in range(2):
        o1.step(lambda: rosenbrock(x1))
    saved = o1.state_dict()
    x2, o2 = make()
    with torch.no_grad():
        x2.copy_(x1)
    o2.load_state_dict(saved)
    assert "H" in o2.state[x2]
    for _ in range(3):
        o1.step(lambda: rosenbrock(x1))
        o2.step(lambda: rosenbrock(x2))
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)


def test_registry_and_errors():
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    assert isinstance(create("bfgs", [x]), BFGS)
    assert BFGS.closure_returns == "loss"
    with pytest.raises(ConfigError, match="lbfgs"):
        BFGS([torch.zeros(1000, dtype=F64, requires_grad=True)], max_dense_bytes=1_000_000)
    BFGS([torch.zeros(1000, dtype=F64, requires_grad=True)], max_dense_bytes=8_000_000)  # raised limit: fine
    with pytest.raises(ConfigError, match="bfgs.lr"):
        BFGS([x], lr=-1.0)
    with pytest.raises(ConfigError, match="strong_wolfe"):
        BFGS([x], line_search_fn="strong_wolf")
    with pytest.raises(ConfigError, match="max_iter"):
        BFGS([x], max_iter=0)
    with pytest.raises(ConfigError, match=r"param_groups\[1\].lr"):
        BFGS([{"params": [x]}, {"params": [torch.zeros(1, dtype=F64, requires_grad=True)], "lr": 0.5}])
    with pytest.raises(ConfigError, match="dtype"):
        BFGS([x, torch.zeros(2, dtype=torch.float32, requires_grad=True)])
    with pytest.raises(ConfigError, match="closure"):
        BFGS([x]).step(None)
    with pytest.raises(ConfigError, match="scalar loss"):
        BFGS([x]).step(lambda: x * 2)
