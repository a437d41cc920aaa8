"""curve_fit against scipy.optimize.curve_fit / least_squares(method="lm")."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
import torch

from raytune_opt import glm
from raytune_opt.optim.problems import MGH

RNG = np.random.default_rng(11)
X_DECAY = np.linspace(0.0, 4.0, 80)
Y_DECAY = 2.5 * np.exp(-1.3 * X_DECAY) + 0.5 + 0.05 * RNG.normal(size=80)
X_MM = np.linspace(0.1, 10.0, 50)
Y_MM = 3.0 * X_MM / (1.5 + X_MM) * (1.0 + 0.03 * RNG.normal(size=50))  # Michaelis–Menten


def decay(x, p):
    return p[0] * torch.exp(-p[1] * x) + p[2]


def michaelis_menten(x, p):
    return p[0] * x / (p[1] + x)


CASES = [
    (decay, X_DECAY, Y_DECAY, [1.0, 1.0, 0.0], lambda x, a, b, c: a * np.exp(-b * x) + c),
    (michaelis_menten, X_MM, Y_MM, [1.0, 1.0], lambda x, a, b: a * x / (b + x)),
]


@pytest.mark.parametrize("method", ["lm", "bfgs", "lbfgs"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_curve_fit_equals_scipy(case, method):
    f, x, y, p0, f_np = CASES[case]
    res = glm.curve_fit(f, x, y, p0, method=method)
    popt, pcov = so.curve_fit(f_np, x, y, p0=p0)
    assert res.converged and res.method == method
    np.testing.assert_allclose(res.popt, popt, rtol=1e-6)
    np.testing.assert_allclose(res.perr, np.sqrt(np.diag(pcov)), rtol=1e-4)


def test_sigma_weights_the_residuals_as_scipy():
    sigma = np.linspace(0.5, 2.0, X_DECAY.size)
    res = glm.curve_fit(decay, X_DECAY, Y_DECAY, [1.0, 1.0, 0.0], sigma=sigma)
    popt, _ = so.curve_fit(
        lambda x, a, b, c: a * np.exp(-b * x) + c, X_DECAY, Y_DECAY, p0=[1, 1, 0], sigma=sigma
    )
    np.testing.assert_allclose(res.popt, popt, rtol=1e-6)


@pytest.mark.parametrize(
    "name", ["rosenbrock", "freudenstein_roth", "brown_badly_scaled", "box_3d", "powell_singular"]
)
def test_mgh_problems_reach_scipy_least_squares_lm(name):
    prob = MGH[name]
    res = glm.curve_fit(
        lambda x, p: prob.residuals(p), None, np.zeros(prob.m), list(prob.x0), max_iter=500, tol=1e-14
    )
    ref = so.least_squares(
        lambda p: prob.residuals(torch.from_numpy(p)).numpy(),
        np.array(prob.x0),
        method="lm",
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    assert res.cost == pytest.approx(ref.cost, abs=1e-12, rel=1e-8)
    if prob.x_star is not None:
        np.testing.assert_allclose(res.popt, ref.x, rtol=1e-6)
