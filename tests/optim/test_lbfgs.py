"""L-BFGS: two-loop recursion, Rosenbrock vs SciPy, robustness vs torch.optim.LBFGS, history, state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, rosen, rosen_der

from raytune_opt.errors import ConfigError
from raytune_opt.optim import LBFGS, create
from raytune_opt.optim.bfgs import bfgs_inverse_update
from raytune_opt.optim.lbfgs import two_loop
from raytune_opt.optim.problems import MGH, ill_conditioned_quadratic, rosenbrock

F64 = torch.float64


def test_two_loop_equals_dense_inverse_bfgs():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(5, 5, generator=g, dtype=F64)
    A = A @ A.T + torch.eye(5, dtype=F64)
    pairs = [(s, A @ s) for s in torch.randn(4, 5, generator=g, dtype=F64)]
    s_hist, y_hist = [s for s, _ in pairs], [y for _, y in pairs]
    gamma = float(y_hist[-1].dot(s_hist[-1]) / y_hist[-1].dot(y_hist[-1]))
    H = gamma * torch.eye(5, dtype=F64)
    for s, y in pairs:
        H = bfgs_inverse_update(H, s, y)
    v = torch.randn(5, generator=g, dtype=F64)
    torch.testing.assert_close(two_loop(v, s_hist, y_hist, gamma), H @ v)


@pytest.mark.parametrize("x0", [[-1.2, 1.0], [0.0] * 10], ids=["2d", "10d"])
def test_rosenbrock_vs_scipy_lbfgsb(x0):
    ref = minimize(rosen, np.array(x0), jac=rosen_der, method="L-BFGS-B", options={"gtol": 1e-5})
    x = torch.tensor(x0, dtype=F64, requires_grad=True)
    opt = LBFGS([x], max_iter=1000, max_eval=3000, tolerance_grad=1e-5, tolerance_change=1e-14)
    opt.step(lambda: rosenbrock(x))
    assert float(rosenbrock(x.detach())) <= max(ref.fun, 1e-12)
    np.testing.assert_allclose(x.detach().numpy(), ref.x, atol=1e-4)
    assert opt.state[x]["n_iter"] <= 1.5 * ref.nit, (opt.state[x]["n_iter"], ref.nit)


@pytest.mark.parametrize("name", ["brown_badly_scaled", "box_3d"])
def test_more_robust_than_torch_lbfgs_default(name):
    """torch.optim.LBFGS's default fixed step (no line search) diverges or stalls on these MGH costs."""
    pb = MGH[name]
    results = {}
    for cls in (torch.optim.LBFGS, LBFGS):
        x = pb.start().requires_grad_()
        opt = cls([x], max_iter=300, max_eval=600, tolerance_grad=1e-9, tolerance_change=1e-15)

        def closure(opt=opt, x=x):
            opt.zero_grad()
            loss = pb.cost(x)
            loss.backward()
            return loss

        opt.step(closure)
        results[cls] = float(pb.cost(x.detach()))
    assert results[LBFGS] < 1e-12
    assert not results[torch.optim.LBFGS] < 1e-3  # torch: large cost or nan


def test_history_size_and_ill_conditioned_quadratic():
    f, x_star = ill_conditioned_quadratic(30, 1e2, seed=0)
    x = torch.zeros(30, dtype=F64, requires_grad=True)
    opt = LBFGS([x], history_size=5, max_iter=500, max_eval=1000, tolerance_grad=1e-10, tolerance_change=0)
    opt.step(lambda: f(x))
    st = opt.state[x]
    assert len(st["old_dirs"]) == len(st["old_stps"]) == 5
    torch.testing.assert_close(x.detach(), x_star, atol=1e-7, rtol=0)


@pytest.mark.parametrize("line_search_fn", ["backtracking", None])
def test_other_line_searches(line_search_fn):
    f, x_star = ill_conditioned_quadratic(8, 10.0, seed=4)
    x = torch.zeros(8, dtype=F64, requires_grad=True)
    opt = LBFGS(
        [x],
        lr=1.0,
        line_search_fn=line_search_fn,
        max_iter=200,
        max_eval=400,
        tolerance_grad=1e-10,
        tolerance_change=0,
    )
    opt.step(lambda: f(x))
    torch.testing.assert_close(x.detach(), x_star, atol=1e-8, rtol=0)


def test_multi_group_module_and_state_dict_round_trip():
    torch.manual_seed(0)
    X = torch.randn(64, 3, dtype=F64)
    y = torch.sin(X.sum(1, keepdim=True))

    def make():
        torch.manual_seed(1)
        net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
        groups = [
            {"params": [p for p in net.parameters() if p.ndim == 2]},
            {"params": [p for p in net.parameters() if p.ndim < 2]},
        ]
        return net, LBFGS(groups, max_iter=5, history_size=4)

    def closure_for(net):
        return lambda: torch.nn.functional.mse_loss(net(X), y)

    n1, o1 = make()
    losses = [float(o1.step(closure_for(n1))) for _ in range(3)]
    assert losses[-1] < losses[0]
    n2, o2 = make()
    n2.load_state_dict(n1.state_dict())
    o2.load_state_dict(o1.state_dict())
    for _ in range(2):
        o1.step(closure_for(n1))
        o2.step(closure_for(n2))
    for p1, p2 in zip(n1.parameters(), n2.parameters(), strict=True):
        torch.testing.assert_close(p1, p2, rtol=0, atol=0)


def test_registry_and_errors():
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    opt = create("lbfgs", [x], history_size=7)
    assert isinstance(opt, LBFGS) and opt.hp["history_size"] == 7 and LBFGS.closure_returns == "loss"
    LBFGS([torch.zeros(100_000, dtype=F64, requires_grad=True)], max_iter=1)  # not dense: no memory limit
    with pytest.raises(ConfigError, match="history_size"):
        LBFGS([x], history_size=0)
    with pytest.raises(ConfigError, match="tolerance_grad"):
        LBFGS([x], tolerance_grad=-1)
    with pytest.raises(ConfigError, match="empty"):
        LBFGS([])
