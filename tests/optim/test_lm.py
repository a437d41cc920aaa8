"""Levenberg–Marquardt: MGH problems vs SciPy least_squares(method="lm"), Jacobian, λ rules, state, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.optim import LM, create
from raytune_opt.optim.lm import STATUS, jacobian
from raytune_opt.optim.problems import MGH

F64 = torch.float64


def _scipy_lm(pb):
    fun = lambda x: pb.residuals(torch.from_numpy(x)).numpy()  # noqa: E731
    jac = lambda x: torch.autograd.functional.jacobian(pb.residuals, torch.from_numpy(x)).numpy()  # noqa: E731
    return least_squares(fun, np.array(pb.x0), jac=jac, method="lm")


@pytest.mark.parametrize(
    "rule,scale",
    [
        ("trust-region", True),
        ("trust-region", False),
        ("nielsen", False),
        ("nielsen", True),
        ("marquardt", False),
        ("marquardt", True),
    ],
)
@pytest.mark.parametrize("name", list(MGH))
def test_mgh_reaches_scipy_lm_solution(name, rule, scale):
    pb = MGH[name]
    ref = _scipy_lm(pb)
    x = pb.start().requires_grad_()
    opt = LM([x], max_iter=500, damping_update=rule, scale=scale, nu=2.0 if rule == "nielsen" else 10.0)
    loss0 = opt.step(lambda: pb.residuals(x))
    assert float(loss0) == pytest.approx(float(pb.cost(pb.start())))  # ½‖r‖² at the start of the step
    cost = float(pb.cost(x.detach()))
    if pb.f_star == 0.0:  # zero-residual problems: both reach cost ~ 0
        assert ref.cost < 1e-12 and cost < 1e-12
    else:
        assert cost == pytest.approx(ref.cost, rel=1e-8)
    if pb.x_star is not None:  # unique minimiser: the same point as SciPy and as the known solution
        np.testing.assert_allclose(x.detach().numpy(), ref.x, rtol=1e-3)
        np.testing.assert_allclose(x.detach().numpy(), pb.x_star, rtol=1e-5)
    st = opt.state[x]
    assert st["jac_evals"] <= st["func_evals"] and st["n_iter"] >= 1
    assert st["converged"] and st["status"] in STATUS and st["message"] == STATUS[st["status"]]


def test_default_trust_region_follows_minpack_evaluations():
    """Same iteration as MINPACK lmder (x_scale='jac'): the same closure calls on the MGH problems."""
    for name in ("rosenbrock", "freudenstein_roth", "box_3d", "brown_badly_scaled"):
        pb = MGH[name]
        x = pb.start().requires_grad_()
        opt = LM([x], max_iter=1000, tolerance_change=1e-8)
        opt.step(lambda pb=pb, x=x: pb.residuals(x))
        fun = lambda v, pb=pb: pb.residuals(torch.from_numpy(v)).numpy()  # noqa: E731
        jac = lambda v, pb=pb: torch.autograd.functional.jacobian(pb.residuals, torch.from_numpy(v)).numpy()  # noqa: E731
        ref = least_squares(fun, np.array(pb.x0), jac=jac, method="lm", ftol=1e-8, xtol=1e-8)
        assert opt.state[x]["func_evals"] == ref.nfev, name


def test_gradient_test_is_minpack_gtol_and_scale_invariant():
    """tolerance_grad is MINPACK's gtol, max_j |J_jᵀr| / (‖J_j‖‖r‖): on a noisy exponential fit (cost > 0)
    it stops at the same closure call as SciPy's least_squares(method="lm", gtol=...), and residuals
    multiplied by 1e6 (or 1e-6) change neither the stop, nor n_iter, nor the solution."""
    rng = np.random.default_rng(3)
    t = torch.linspace(0, 4, 60, dtype=F64)
    y = 2.5 * torch.exp(-1.3 * t) + 0.5 + 0.05 * torch.from_numpy(rng.normal(size=60))
    runs = {}
    for c in (1.0, 1e6, 1e-6):
        x = torch.tensor([1.0, 0.5, 0.0], dtype=F64, requires_grad=True)
        opt = LM([x], max_iter=200, tolerance_grad=1e-8, tolerance_change=0.0)
        opt.step(lambda x=x, c=c: c * (x[0] * torch.exp(-x[1] * t) + x[2] - y))
        st = opt.state[x]
        assert st["converged"] and st["status"] == 4 and st["gnorm"] <= 1e-8, (c, st["message"])
        runs[c] = (st["n_iter"], st["func_evals"], x.detach().numpy())
    for c in (1e6, 1e-6):
        assert runs[c][:2] == runs[1.0][:2]
        np.testing.assert_allclose(runs[c][2], runs[1.0][2], rtol=1e-9)
    tn, yn = t.numpy(), y.numpy()

    def jac(v):
        e = np.exp(-v[1] * tn)
        return np.stack([e, -v[0] * tn * e, np.ones_like(e)], 1)

    fun = lambda v: v[0] * np.exp(-v[1] * tn) + v[2] - yn  # noqa: E731
    ref = least_squares(fun, [1.0, 0.5, 0.0], jac=jac, method="lm", gtol=1e-8, ftol=1e-15, xtol=1e-15)
    assert ref.status == 1 and ref.nfev == runs[1.0][1]  # SciPy's status 1: "gtol termination condition"
    np.testing.assert_allclose(runs[1.0][2], ref.x, rtol=1e-9)


def test_budget_exhausted_is_not_converged():
    pb = MGH["rosenbrock"]
    x = pb.start().requires_grad_()
    opt = LM([x], max_iter=3)
    opt.step(lambda: pb.residuals(x))
    st = opt.state[x]
    assert st["n_iter"] == 3 and not st["converged"] and st["status"] == 5 and "max_iter" in st["message"]
    x = pb.start().requires_grad_()
    opt = LM([x], max_iter=100, max_eval=4)
    opt.step(lambda: pb.residuals(x))
    assert not opt.state[x]["converged"] and opt.state[x]["func_evals"] == 4


def test_jacobian_multi_tensor_matches_autograd():
    a = torch.tensor([[0.5, -0.2], [0.1, 0.3]], dtype=F64, requires_grad=True)
    b = torch.tensor([0.7, 1.1, -0.4], dtype=F64, requires_grad=True)
    t = torch.linspace(0, 1, 7, dtype=F64)

    def res(A, c):
        return torch.exp(-A[0, 0] * t) * c[0] + torch.sin(A[1] @ c[:2] * t) - c[2] * A[0, 1] * t**2

    J = jacobian(res(a, b), [a, b])
    Ja, Jb = torch.autograd.functional.jacobian(res, (a.detach(), b.detach()))
    torch.testing.assert_close(J, torch.cat([Ja.reshape(7, -1), Jb], dim=1))


def test_large_m_exponential_fit_multi_group():
    """m = 200 000 residuals, p = 3 in two groups: the Jacobian is p batched passes, not m."""
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 4, 200_000, dtype=F64)
    y = 2.5 * torch.exp(-1.3 * t) + 0.5 + 0.01 * torch.randn(t.shape, generator=g, dtype=F64)
    amp_rate = torch.tensor([1.0, 0.5], dtype=F64, requires_grad=True)
    offset = torch.tensor([0.0], dtype=F64, requires_grad=True)
    opt = LM([{"params": [amp_rate]}, {"params": [offset]}], max_iter=50)
    opt.step(lambda: amp_rate[0] * torch.exp(-amp_rate[1] * t) + offset - y)
    # the normal equations hold at the solution: Jᵀr = 0
    X = torch.stack(
        [torch.exp(-amp_rate[1] * t), -amp_rate[0] * t * torch.exp(-amp_rate[1] * t), torch.ones_like(t)], 1
    )
    r = amp_rate[0] * torch.exp(-amp_rate[1] * t) + offset - y
    assert float((X.T @ r).detach().abs().max()) < 1e-6
    np.testing.assert_allclose(torch.cat([amp_rate, offset]).detach().numpy(), [2.5, 1.3, 0.5], atol=1e-2)


def test_linear_least_squares_and_damping_rules():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(50, 4, generator=g, dtype=F64)
    y = torch.randn(50, generator=g, dtype=F64)
    lam0 = 1e-3 * float((X.T @ X).diagonal().max())

    w = torch.zeros(4, dtype=F64, requires_grad=True)
    opt = LM([w], max_iter=1, damping_update="marquardt", nu=10.0, scale=False)
    opt.step(lambda: X @ w - y)
    assert opt.state[w]["damping"] == pytest.approx(lam0 / 10.0)  # accepted: λ ← λ/ν
    opt = LM([w], max_iter=100, damping_update="marquardt", nu=10.0, tolerance_change=0, scale=False)
    opt.step(lambda: X @ w - y)
    torch.testing.assert_close(w.detach(), torch.linalg.lstsq(X, y).solution)
    w = torch.zeros(4, dtype=F64, requires_grad=True)
    opt = LM([w])  # trust region: the Gauss–Newton step fits in δ₀ = 100: one step, λ = 0
    opt.step(lambda: X @ w - y)
    torch.testing.assert_close(w.detach(), torch.linalg.lstsq(X, y).solution)
    assert opt.state[w]["damping"] == 0.0 and opt.state[w]["converged"]

    for rule, expect in [("marquardt", lam0 * 10.0), ("nielsen", lam0 * 10.0)]:
        w = torch.zeros(4, dtype=F64, requires_grad=True)
        opt = LM([w], lr=3.0, max_eval=2, damping_update=rule, nu=10.0, scale=False)  # lr = 3 overshoots
        opt.step(lambda w=w: X @ w - y)
        assert opt.state[w]["damping"] == pytest.approx(expect)  # rejected: λ ← λ·ν
        assert float(w.detach().abs().max()) == 0.0  # and the parameters stay where they were


def test_state_dict_round_trip_continues_exactly():
    pb = MGH["box_3d"]

    def make():
        x = pb.start().requires_grad_()
        return x, LM([x], max_iter=2, scale=True)

    x1, o1 = make()
    o1.step(lambda: pb.residuals(x1))
    saved = o1.state_dict()
    x2, o2 = make()
    with torch.no_grad():
        x2.copy_(x1)
    o2.load_state_dict(saved)
    assert o2.state[x2]["damping"] == o1.state[x1]["damping"]
    for _ in range(3):
        o1.step(lambda: pb.residuals(x1))
        o2.step(lambda: pb.residuals(x2))
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)


def test_contract_and_errors():
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    assert isinstance(create("lm", [x], scale=True), LM) and LM.closure_returns == "residuals"
    opt = LM([x])

    def backward_closure():
        r = x - 1.0
        (0.5 * (r * r).sum()).backward()
        return r

    with pytest.raises(ConfigError, match="WITHOUT calling backward"):
        opt.step(backward_closure)
    with pytest.raises(ConfigTypeError, match="residual vector"):
        opt.step(lambda: 1.0)
    with pytest.raises(ConfigError, match="lbfgs"):
        LM([torch.zeros(20_000, dtype=F64, requires_grad=True)])
    with pytest.raises(ConfigError, match="lm.nu"):
        LM([x], nu=1.0)
    with pytest.raises(ConfigError, match="damping_update"):
        LM([x], damping_update="levenberg")
    with pytest.raises(ConfigError, match="scale"):
        LM([x], scale="jac")
    with pytest.raises(ConfigError, match="damping"):
        LM([x], damping=-1e-3)


def test_benchmark_quick(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "solvers_mgh.py"
    spec = importlib.util.spec_from_file_location("solvers_mgh", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "solvers_mgh.md"
    lines = module.main(["--quick", "--out", str(out)])
    assert out.read_text().count("|") > 50
    assert sum(line.startswith("| rosenbrock 2-D |") for line in lines) == 2
    headline = lines[-1]
    assert headline.startswith("headline: lm function evaluations")
    m = re.search(r"problems: lm ([0-9.]+) \(without Powell singular ([0-9.]+);", headline)
    assert m, headline
    # counts of closure calls, deterministic; Powell singular's stop is rounding noise (see the script)
    assert 0 < float(m[1]) <= 1.2 and 0 < float(m[2]) <= 1.0
    m = re.search(r"reached f\* (\d)/5, SciPy (\d)/5; median ratio ([0-9.]+)", headline)
    assert m and int(m[1]) >= int(m[2]) and float(m[3]) <= 1.0
