"""Line searches (strong Wolfe, Armijo backtracking) and the shared line-search loop."""

from __future__ import annotations

import math

import pytest
import torch

from raytune_opt.optim import BFGS, LBFGS, Newton
from raytune_opt.optim._flat import Evaluation
from raytune_opt.optim.linesearch import STATUS, backtracking, cubic_minimizer, strong_wolfe
from raytune_opt.optim.problems import rosenbrock

F64 = torch.float64


def _phi_factory(f, x0, d, counter):
    def phi(t):
        counter.append(t)
        x = (x0 + t * d).requires_grad_()
        with torch.enable_grad():
            loss = f(x)
            (g,) = torch.autograd.grad(loss, x)
        ev = Evaluation(x.detach(), loss)
        ev.g = g
        return ev

    return phi


def _start(f, x0):
    phi = _phi_factory(f, x0, torch.zeros_like(x0), [])
    return phi(0.0)


@pytest.mark.parametrize("t0", [1e-3, 1.0, 50.0])
def test_strong_wolfe_conditions_hold_on_rosenbrock(t0):
    x0 = torch.tensor([-1.2, 1.0], dtype=F64)
    ev0 = _start(rosenbrock, x0)
    d = -ev0.g
    gtd0 = float(ev0.g.dot(d))
    calls = []
    t, ev, n = strong_wolfe(_phi_factory(rosenbrock, x0, d, calls), t0, d, ev0, gtd0, c1=1e-4, c2=0.9)
    assert n == len(calls) and t > 0
    assert ev.f <= ev0.f + 1e-4 * t * gtd0  # sufficient decrease
    assert abs(float(ev.g.dot(d))) <= 0.9 * abs(gtd0)  # curvature (strong)
    assert torch.allclose(ev.x, x0 + t * d)


def test_strong_wolfe_exact_on_quadratic_with_tight_c2():
    # f = ½‖x‖², d = −x: the exact minimiser along d is t = 1; cubic interpolation finds it.
    f = lambda x: 0.5 * (x * x).sum()  # noqa: E731
    x0 = torch.tensor([3.0, -4.0], dtype=F64)
    ev0 = _start(f, x0)
    d = -ev0.g
    t, ev, _ = strong_wolfe(_phi_factory(f, x0, d, []), 0.1, d, ev0, float(ev0.g.dot(d)), c2=1e-6)
    assert t == pytest.approx(1.0, rel=1e-8)
    assert ev.f == pytest.approx(0.0, abs=1e-12)


def test_backtracking_armijo_and_failure():
    x0 = torch.tensor([-1.2, 1.0], dtype=F64)
    ev0 = _start(rosenbrock, x0)
    d = -ev0.g
    gtd0 = float(ev0.g.dot(d))
    calls = []
    t, ev, n = backtracking(_phi_factory(rosenbrock, x0, d, calls), 1.0, ev0, gtd0)
    assert ev.f <= ev0.f + 1e-4 * t * gtd0
    assert t == 0.5 ** (n - 1) and n == len(calls) > 1  # the full step t = 1 overshoots
    # an ascent direction: no trial is accepted, the search says t = 0 and keeps the start
    t, ev, n = backtracking(_phi_factory(rosenbrock, x0, -d, []), 1.0, ev0, -gtd0, max_ls=5)
    assert (t, n) == (0.0, 5) and ev is ev0


def test_cubic_minimizer():
    # f(t) = (t − 2)²: exact through any two points with derivatives
    f = lambda t: (t - 2.0) ** 2  # noqa: E731
    df = lambda t: 2.0 * (t - 2.0)  # noqa: E731
    assert cubic_minimizer(0.0, f(0.0), df(0.0), 3.0, f(3.0), df(3.0)) == pytest.approx(2.0)
    # f(t) = t³ − 3t has its local minimum at t = 1
    g = lambda t: t**3 - 3 * t  # noqa: E731
    dg = lambda t: 3 * t**2 - 3  # noqa: E731
    assert cubic_minimizer(0.0, g(0.0), dg(0.0), 2.0, g(2.0), dg(2.0)) == pytest.approx(1.0)
    # clipped to the bounds, and bisection when there is no real minimiser
    assert cubic_minimizer(0.0, f(0.0), df(0.0), 3.0, f(3.0), df(3.0), bounds=(2.5, 4.0)) == 2.5
    assert math.isfinite(cubic_minimizer(0.0, 0.0, 1.0, 1.0, 0.0, 1.0, bounds=(0.0, 1.0)))


@pytest.mark.parametrize("cls", [BFGS, LBFGS, Newton])
def test_converged_only_when_the_gradient_test_held(cls):
    def run(**hp):
        x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
        opt = cls([x], **hp)
        opt.step(lambda: rosenbrock(x))
        return opt.state[x], x

    st, x = run(max_iter=500, max_eval=2000, tolerance_grad=1e-8, tolerance_change=0.0)
    assert st["converged"] and st["status"] == 1 and st["message"] == STATUS[1]
    assert float(torch.func.grad(rosenbrock)(x.detach()).abs().max()) <= 1e-8
    st, _ = run(max_iter=3)  # budget: not converged
    assert not st["converged"] and st["status"] == 5
    st, _ = run(max_iter=500, tolerance_grad=1e-12, tolerance_change=1.0)  # stops on the change rules
    assert not st["converged"] and st["status"] in (2, 3, 4) and st["message"] == STATUS[st["status"]]
