"""curve_fit against scipy.optimize.curve_fit / least_squares(method="lm")."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.optimize as so
import torch

from raytune_opt import glm
from raytune_opt.errors import ConfigError
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


@pytest.mark.filterwarnings("ignore::raytune_opt.glm.CurveFitWarning")  # m = n, singular J
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


def _decay_np(x, a, b, c):
    return a * np.exp(-b * x) + c


def test_scipy_signature_forms_and_unpacking():
    popt_ref, pcov_ref = so.curve_fit(_decay_np, X_DECAY, Y_DECAY)  # p0 = ones, as ours
    forms = [
        lambda x, a, b, c: a * torch.exp(-b * x) + c,  # SciPy's f(x, p1, ..., pn): p0 = None is n ones
        lambda x, *p: p[0] * torch.exp(-p[1] * x) + p[2],  # f(x, *p)
        decay,  # the vector form f(x, p)
    ]
    for f in forms:
        res = glm.curve_fit(f, X_DECAY, Y_DECAY, None if f is forms[0] else [1.0, 1.0, 1.0])
        popt, pcov = res  # unpacks like SciPy's (popt, pcov)
        assert res.converged and res.message and res[0] is res.popt and len(res) == 2
        np.testing.assert_allclose(popt, popt_ref, rtol=1e-6)
        np.testing.assert_allclose(pcov, pcov_ref, rtol=1e-4)


def test_absolute_sigma_as_scipy():
    sigma = np.full(X_DECAY.size, 0.05)
    for absolute in (False, True):
        res = glm.curve_fit(decay, X_DECAY, Y_DECAY, [1.0, 1.0, 0.0], sigma=sigma, absolute_sigma=absolute)
        _, pcov = so.curve_fit(
            _decay_np, X_DECAY, Y_DECAY, p0=[1, 1, 0], sigma=sigma, absolute_sigma=absolute
        )
        np.testing.assert_allclose(res.pcov, pcov, rtol=1e-4)


BOUNDED = [  # (bounds, p0, rtol on popt against SciPy's trf): the optimum (2.5, 1.3, 0.5) inside or not
    (([0, 0, -1], [10, 10, 1]), [1.0, 1.0, 0.0], 1e-6),  # two-sided, inactive
    ((0, np.inf), [1.0, 1.0, 0.1], 1e-6),  # scalar lower bound, inactive
    (([0, 0, -np.inf], [np.inf, 1.0, np.inf]), [1.0, 0.5, 0.0], 1e-5),  # b <= 1 active
    (([-np.inf, 1.5, 0.6], np.inf), [1.0, 2.0, 1.0], 1e-5),  # lower bounds of b and c active
    ((-np.inf, [2.0, np.inf, np.inf]), [1.0, 1.0, 0.0], 1e-4),  # a <= 2 active (SciPy's trf: to ~3e-5)
]


@pytest.mark.parametrize("bounds,p0,rtol", BOUNDED)
def test_bounds_match_scipy_trf(bounds, p0, rtol):
    res = glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, bounds=bounds)
    popt, pcov = so.curve_fit(_decay_np, X_DECAY, Y_DECAY, p0=p0, bounds=bounds)
    assert res.converged, res.message
    lo, hi = (np.broadcast_to(b, (3,)) for b in bounds)
    assert np.all(res.popt >= lo) and np.all(res.popt <= hi)  # every iterate is in the box
    np.testing.assert_allclose(res.popt, popt, rtol=rtol)
    np.testing.assert_allclose(res.perr, np.sqrt(np.diag(pcov)), rtol=1e-4)  # pcov from dr/dp, as SciPy


def test_bounds_active_bound_reaches_the_constrained_optimum():
    """From p0 on the lower bounds (where dp/dq = 0), with a <= 2 active: the fit restarts until the
    first-order conditions hold and reaches the optimum of b, c at a = 2 (SciPy's trf stays at p0 here)."""
    bounds = ([0.0, 0.0, -1.0], [2.0, 10.0, 1.0])
    ref = so.least_squares(
        lambda v: _decay_np(X_DECAY, 2.0, *v) - Y_DECAY, [1.0, 0.0], method="lm", xtol=1e-15, ftol=1e-15
    )
    for p0 in ([2.0, 1.0, 0.0], [0.0, 0.0, 0.0]):
        res = glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, bounds=bounds)
        assert res.converged, res.message
        assert res.popt[0] == pytest.approx(2.0, rel=1e-9)
        np.testing.assert_allclose(res.popt[1:], ref.x, rtol=1e-5)


def test_bounds_p0_none_starts_as_scipy_and_unbounded_is_plain_lm():
    f = lambda x, a, b, c: a * torch.exp(-b * x) + c  # noqa: E731
    res = glm.curve_fit(f, X_DECAY, Y_DECAY, bounds=([0, 0, -1], [10, 10, 1]))  # p0 = the midpoint
    popt, _ = so.curve_fit(_decay_np, X_DECAY, Y_DECAY, bounds=([0, 0, -1], [10, 10, 1]))
    assert res.converged
    np.testing.assert_allclose(res.popt, popt, rtol=1e-6)
    free = glm.curve_fit(decay, X_DECAY, Y_DECAY, [1.0, 1.0, 0.0], bounds=(-np.inf, np.inf))
    plain = glm.curve_fit(decay, X_DECAY, Y_DECAY, [1.0, 1.0, 0.0])
    assert free.converged and free.nfev == plain.nfev and np.array_equal(free.popt, plain.popt)


def test_bad_bounds_are_a_clear_error():
    p0 = [1.0, 1.0, 0.0]
    with pytest.raises(ConfigError, match="method.*'lm' with bounds"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, method="bfgs", bounds=(0, 10))
    with pytest.raises(ConfigError, match=r"lower\[1\] = 2 >= upper\[1\] = 2"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, bounds=([0, 2, 0], [5, 2, 5]))
    with pytest.raises(ConfigError, match=r"p0\[2\] = 0 is outside bounds \[0.1, 1\]"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, bounds=([0, 0, 0.1], [5, 5, 1]))
    with pytest.raises(ConfigError, match="one per parameter"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, bounds=([0, 0], [5, 5]))
    with pytest.raises(ConfigError, match="not NaN"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, bounds=(np.nan, 5))
    with pytest.raises(ConfigError, match="a pair"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, p0, bounds=(0, 1, 2))


def test_bad_input_is_a_clear_error_before_the_fit():
    def log_model(x, p):
        return p[0] * torch.log(x - p[1])

    with pytest.raises(ConfigError, match=r"NaN or inf at \d+ of 80 points"):
        glm.curve_fit(log_model, X_DECAY, Y_DECAY, [1.0, 2.0])  # log of negatives at p0
    with pytest.raises(ConfigError, match=r"does not use p\[3\]"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, [1.0, 1.0, 0.0, 5.0])  # p0 one too long
    with pytest.raises(ConfigError, match="IndexError.*right length"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY, [1.0, 1.0])  # p0 one too short
    with pytest.raises(ConfigError, match="p0 has 4 entries but f takes 3"):
        glm.curve_fit(lambda x, a, b, c: a * torch.exp(-b * x) + c, X_DECAY, Y_DECAY, [1, 1, 0, 5])
    with pytest.raises(ConfigError, match="does not depend on p through autograd"):
        glm.curve_fit(lambda x, p: p.detach()[0] * torch.exp(-p.detach()[1] * x), X_DECAY, Y_DECAY, [1, 1])
    with pytest.raises(ConfigError, match="torch operations"):
        glm.curve_fit(lambda x, a, b, c: a * np.exp(-b * x) + c, X_DECAY, Y_DECAY, [1, 1, 0])
    with pytest.raises(ConfigError, match="p0 = None"):
        glm.curve_fit(decay, X_DECAY, Y_DECAY)


def test_unidentifiable_parameter_warns_and_is_not_converged():
    with pytest.warns(glm.CurveFitWarning, match="not identified") as caught:
        res = glm.curve_fit(lambda x, p: p[0] * p[1] * x + p[2], X_MM, Y_MM, [1.0, 2.0, 0.0])
    assert not res.converged and "rank 2 < 3" in res.message and np.isinf(res.pcov).all()
    # the warning users catch is the one glm exports (also a GLMConvergenceWarning, a RuntimeWarning)
    assert [w.category for w in caught] == [glm.CurveFitWarning]
    assert glm.CurveFitWarning is importlib.import_module("raytune_opt.glm.curve_fit").CurveFitWarning
    assert issubclass(glm.CurveFitWarning, glm.GLMConvergenceWarning)
    assert "CurveFitWarning" in glm.__all__


def test_misra1a_from_nist_start1_reaches_the_certified_values():
    """Issue 17's reproduction through curve_fit: it stopped at b1 = 500, SSR 19.5, "converged"."""
    x = [77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1, 689.1, 760.0]
    y = [10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40, 75.47, 81.78]
    res = glm.curve_fit(lambda x, b1, b2: b1 * (1 - torch.exp(-b2 * x)), x, y, [500.0, 1e-4])
    assert res.converged
    assert 2 * res.cost == pytest.approx(1.2455138894e-01, rel=1e-8)
    np.testing.assert_allclose(res.popt, [2.3894212918e02, 5.5015643181e-04], rtol=1e-7)
    np.testing.assert_allclose(res.perr, [2.7070075241e00, 7.2668688436e-06], rtol=1e-5)  # certified
