"""Newton: exact Hessian, quadratic convergence, statsmodels Logit, Levenberg damping, contract, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raytune_opt.errors import ConfigError
from raytune_opt.optim import Newton, create
from raytune_opt.optim.newton import damped_newton_direction
from raytune_opt.optim.problems import ill_conditioned_quadratic, rosenbrock

F64 = torch.float64


def _logistic_data(n=400, p=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.cat([torch.ones(n, 1, dtype=F64), torch.randn(n, p - 1, generator=g, dtype=F64)], dim=1)
    w = torch.tensor([0.3, -1.0, 0.5, 2.0], dtype=F64)[:p]
    y = torch.bernoulli(torch.sigmoid(X @ w), generator=g)
    return X, y


def _nll(X, y, w):
    """Negative log-likelihood of the logistic model: Σ softplus(Xw) − y·Xw."""
    z = X @ w
    return (torch.nn.functional.softplus(z) - y * z).sum()


def test_logistic_regression_matches_statsmodels_and_converges_quadratically():
    from statsmodels.discrete.discrete_model import Logit

    X, y = _logistic_data()
    w = torch.zeros(X.shape[1], dtype=F64, requires_grad=True)
    opt = Newton([w], max_iter=1, tolerance_grad=0.0, tolerance_change=0.0)
    grad_norms = []
    for _ in range(12):
        with torch.enable_grad():
            (g,) = torch.autograd.grad(_nll(X, y, w), w)
        grad_norms.append(float(g.norm()))
        if grad_norms[-1] < 1e-11:
            break
        opt.step(lambda: _nll(X, y, w))
    assert grad_norms[-1] < 1e-11 and len(grad_norms) <= 9
    # quadratic convergence: ‖g_{k+1}‖ ≤ C ‖g_k‖² once close
    close = [(a, b) for a, b in zip(grad_norms, grad_norms[1:], strict=False) if a < 1.0 and b > 1e-13]
    assert close and all(b <= 10.0 * a * a for a, b in close), grad_norms
    ref = Logit(y.numpy(), X.numpy()).fit(method="newton", tol=1e-14, maxiter=100, disp=0)
    np.testing.assert_allclose(w.detach().numpy(), ref.params, rtol=0, atol=1e-8)


def test_one_newton_step_solves_a_quadratic():
    f, x_star = ill_conditioned_quadratic(8, 1e6, seed=0)
    x = torch.zeros(8, dtype=F64, requires_grad=True)
    opt = Newton([x], max_iter=1)
    opt.step(lambda: f(x))
    torch.testing.assert_close(x.detach(), x_star, rtol=0, atol=1e-8)
    assert opt.state[x]["func_evals"] == 2 and opt.state[x]["mu"] == 0.0


@pytest.mark.parametrize("line_search_fn", ["backtracking", "strong_wolfe"])
def test_indefinite_hessian_start_on_rosenbrock(line_search_fn):
    x = torch.tensor([0.0, 1.0], dtype=F64, requires_grad=True)  # ∂²f/∂x₁² = 2 − 400 < 0 here
    assert torch.linalg.eigvalsh(torch.autograd.functional.hessian(rosenbrock, x.detach())).min() < 0
    opt = Newton([x], max_iter=1, line_search_fn=line_search_fn)
    opt.step(lambda: rosenbrock(x))
    assert opt.state[x]["mu"] > 0  # Levenberg damping was needed
    assert float(rosenbrock(x.detach())) < 100.0  # and the damped step descends (f = 101 at the start)
    opt = Newton(
        [x],
        max_iter=100,
        max_eval=300,
        tolerance_grad=1e-10,
        tolerance_change=0,
        line_search_fn=line_search_fn,
    )
    opt.step(lambda: rosenbrock(x))
    torch.testing.assert_close(x.detach(), torch.ones(2, dtype=F64), rtol=0, atol=1e-8)


def test_damped_direction_is_descent():
    H = torch.tensor([[1.0, 0.0], [0.0, -3.0]], dtype=F64)
    g = torch.tensor([1.0, 1.0], dtype=F64)
    d, mu = damped_newton_direction(H, g)
    assert mu > 3.0 and float(g.dot(d)) < 0
    torch.testing.assert_close((H + mu * torch.eye(2, dtype=F64)) @ d, -g)


def test_multi_tensor_multi_group_hessian_matches_autograd():
    a = torch.tensor([[0.5, -0.2], [0.1, 0.3]], dtype=F64, requires_grad=True)
    b = torch.tensor([0.7], dtype=F64, requires_grad=True)

    def loss_of(v):
        A, c = v[:4].reshape(2, 2), v[4:]
        return (torch.exp(A).sum() * c).sum() + (A**4).sum() + (c**2 * A[0, 0]).sum()

    opt = Newton([{"params": [a]}, {"params": [b]}], max_iter=1)
    flat = torch.cat([a.detach().reshape(-1), b.detach()])
    ev = opt._evaluate(lambda: loss_of(torch.cat([a.reshape(-1), b])))
    torch.testing.assert_close(ev.H, torch.autograd.functional.hessian(loss_of, flat))
    torch.testing.assert_close(ev.g, torch.autograd.functional.jacobian(loss_of, flat))


def test_closure_that_calls_backward_is_refused():
    x = torch.tensor([-1.2, 1.0], dtype=F64, requires_grad=True)
    opt = Newton([x])

    def closure():
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        return loss

    with pytest.raises(ConfigError, match="WITHOUT calling backward"):
        opt.step(closure)


def test_registry_and_errors():
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    assert isinstance(create("newton", [x], line_search_fn="strong_wolfe"), Newton)
    assert Newton.closure_returns == "loss"
    with pytest.raises(ConfigError, match="lbfgs"):
        Newton([torch.zeros(20_000, dtype=F64, requires_grad=True)])  # 20 000² × 8 B = 3 GiB > 2 GiB
    with pytest.raises(ConfigError, match="damping"):
        Newton([x], damping=0.0)
    with pytest.raises(ConfigError, match="scalar loss"):
        Newton([x]).step(lambda: x * 2)
