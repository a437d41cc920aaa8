"""Robust linear regression against statsmodels RLM (HuberT, TukeyBiweight) and the norms' calculus."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
import torch

from raytune_opt import glm
from raytune_opt.glm.robust import NORMS, mad

SM_NORMS = {"huber": sm.robust.norms.HuberT, "bisquare": sm.robust.norms.TukeyBiweight}


def _contaminated(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    beta = np.array([1.0, 2.0, -1.0, 0.5])
    y = X @ beta + rng.standard_t(3, n)
    bad = rng.random(n) < 0.1
    y[bad] += rng.normal(15.0, 5.0, bad.sum())
    return X, y, beta


@pytest.mark.parametrize("name", sorted(SM_NORMS))
def test_rlm_equals_statsmodels_on_generated_and_real_data(name, diabetes):
    Xd, yd = diabetes
    yd = yd.copy()
    yd[:25] += 300.0  # gross outliers
    X, y, _ = _contaminated()
    for A, b in ((X, y), (Xd, yd)):
        res, ref = glm.fit(A, b, robust=name), sm.RLM(b, A, M=SM_NORMS[name]()).fit()
        assert res.converged and res.robust == name
        np.testing.assert_allclose(res.coef, ref.params, rtol=1e-5)
        np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-5)
        np.testing.assert_allclose(res.scale, ref.scale, rtol=1e-5)
        # statsmodels counts its OLS start; ours may stop earlier, on a short contracting step
        assert res.n_iter <= ref.fit_history["iteration"] - 1


@pytest.mark.parametrize("name", ["huber", "bisquare", "cauchy", "seed"])
def test_irls_lm_reaches_the_irls_solution(name):
    X, y, _ = _contaminated(seed=1)
    a, b = glm.fit(X, y, robust=name), glm.fit(X, y, robust=name, method="irls-lm")
    assert a.converged and b.converged
    np.testing.assert_allclose(b.coef, a.coef, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["huber", "bisquare", "cauchy", "seed"])
def test_robust_fits_resist_outliers_that_pull_least_squares(name):
    X, y, beta = _contaminated(seed=2)
    ols = glm.fit(X, y).coef
    rob = glm.fit(X, y, robust=name).coef
    assert np.abs(rob - beta).max() < 0.5 * np.abs(ols - beta).max()


def test_l1_approaches_least_absolute_deviations():
    from statsmodels.regression.quantile_regression import QuantReg

    X, y, _ = _contaminated(n=300, seed=3)
    res = glm.fit(X, y, robust="l1", max_iter=2000)
    lad = QuantReg(y, X).fit(q=0.5).params
    np.testing.assert_allclose(res.coef, lad, atol=2e-3)
    assert np.isnan(res.bse).all()  # psi' = 0: no H1 standard errors for L1


@pytest.mark.parametrize("name", sorted(NORMS))
def test_psi_is_rho_prime_and_weights_are_psi_over_u(name):
    norm = NORMS[name]()
    u = torch.tensor([-7.0, -2.0, -0.7, 0.3, 1.1, 3.0, 6.0], dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(norm.rho(u).sum(), u, create_graph=True)
    torch.testing.assert_close(norm.psi(u.detach()), d1.detach())
    torch.testing.assert_close(norm.weights(u.detach()), norm.psi(u.detach()) / u.detach())
    psi = norm.psi(u)
    d2 = torch.autograd.grad(psi.sum(), u)[0] if psi.requires_grad else torch.zeros_like(psi)
    torch.testing.assert_close(norm.psi_deriv(u.detach()), d2)


def test_mad_matches_statsmodels_with_an_even_count():
    r = np.random.default_rng(4).normal(size=100)
    assert mad(torch.from_numpy(r)) == pytest.approx(sm.robust.scale.mad(r, center=0), rel=1e-14)


def test_norm_instances_with_custom_tuning():
    X, y, _ = _contaminated(seed=5)
    ref = sm.RLM(y, X, M=sm.robust.norms.HuberT(t=2.0)).fit()
    np.testing.assert_allclose(glm.fit(X, y, robust=glm.HuberT(t=2.0)).coef, ref.params, rtol=1e-5)


SM_NEW = {
    "hampel": sm.robust.norms.Hampel,
    "andrew": sm.robust.norms.AndrewWave,
    "trimmed": sm.robust.norms.TrimmedMean,
}


@pytest.mark.parametrize("name", sorted(SM_NEW))
def test_new_norms_equal_statsmodels_norms_and_rlm(name, diabetes):
    u = np.linspace(-12.0, 12.0, 97)
    ours, ref = NORMS[name](), SM_NEW[name]()
    t = torch.from_numpy(u)
    for f in ("rho", "psi", "weights", "psi_deriv"):
        np.testing.assert_allclose(getattr(ours, f)(t).numpy(), getattr(ref, f)(u), rtol=1e-12, atol=1e-14)
    X, y, _ = _contaminated(seed=6)
    for cov in ("H1", "H2", "H3"):
        res = glm.fit(X, y, robust=name, cov_type=cov, tol=1e-10)
        ref_fit = sm.RLM(y, X, M=SM_NEW[name]()).fit(cov=cov, tol=1e-10)
        np.testing.assert_allclose(res.coef, ref_fit.params, rtol=1e-6)
        np.testing.assert_allclose(res.scale, ref_fit.scale, rtol=1e-6)
        np.testing.assert_allclose(res.bse, ref_fit.bse, rtol=1e-6)
        assert res.cov_type == cov


@pytest.mark.parametrize("name", ["huber", "bisquare", "hampel"])
def test_huber_proposal_2_scale_and_h2_h3_equal_statsmodels(name, diabetes):
    Xd, yd = diabetes
    yd = yd.copy()
    yd[:25] += 300.0
    M = {**SM_NORMS, **SM_NEW}[name]
    for cov in ("H1", "H2", "H3"):
        res = glm.fit(Xd, yd, robust=name, scale_est="huber", cov_type=cov, tol=1e-10)
        ref = sm.RLM(yd, Xd, M=M()).fit(scale_est=sm.robust.scale.HuberScale(), cov=cov, tol=1e-10)
        np.testing.assert_allclose(res.coef, ref.params, rtol=1e-6)
        np.testing.assert_allclose(res.scale, ref.scale, rtol=1e-6)
        np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-6)


def test_no_constant_column_equals_statsmodels():
    X, y, _ = _contaminated(seed=7)
    X = X[:, 1:]  # no intercept: statsmodels' k = 1 + p/n var(psi')/m^2 all the same (df_model = rank - 1)
    res, ref = (
        glm.fit(X, y - 1.0, robust="bisquare", tol=1e-10),
        sm.RLM(y - 1.0, X, M=SM_NORMS["bisquare"]()).fit(tol=1e-10),
    )
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-6)


def test_robust_option_errors():
    from raytune_opt.errors import ConfigError

    X, y, _ = _contaminated(seed=8)
    with pytest.raises(ConfigError, match="cov_type.*H1, H2, H3"):
        glm.fit(X, y, robust="huber", cov_type="HC0")
    with pytest.raises(ConfigError, match="scale_est.*huber, mad"):
        glm.fit(X, y, robust="huber", scale_est="iqr")
    with pytest.raises(ConfigError, match="freq_weights"):
        glm.fit(X, y, robust="huber", freq_weights=np.ones(len(y)))
