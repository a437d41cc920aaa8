"""The GLMs statsmodels users fit: every link, family and option of glm.fit against statsmodels' own fit.

Each case compares coefficients, standard errors, deviance, scale, Pearson chi2 and (where statsmodels
defines it) the log-likelihood; statsmodels runs to tol=1e-13 so the reference is its optimum."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from conftest import sm_family

from raytune_opt import glm
from raytune_opt.errors import ConfigError

BETA = np.array([0.3, -0.5, 0.2, 0.1, 0.4])


def _design(n, seed):
    rng = np.random.default_rng(seed)
    return rng, np.column_stack([np.ones(n), rng.normal(size=(n, 4))])


def _tweedie(rng, mu, p, phi=1.0):
    """Compound Poisson-gamma draws with mean mu, variance phi mu^p (1 < p < 2)."""
    lam = mu ** (2 - p) / (phi * (2 - p))
    shape, scale = (2 - p) / (p - 1), phi * (p - 1) * mu ** (p - 1)
    counts = rng.poisson(lam)
    return np.array([rng.gamma(shape * k, s) if k else 0.0 for k, s in zip(counts, scale, strict=True)])


# (family, link, params) -> y from mu; eta = X b * 0.4 + shift keeps mu inside the link's domain
CASES = {
    ("gaussian", "log", ()): (0.0, lambda rng, mu: mu + rng.normal(0, 0.3, mu.shape)),
    ("gaussian", "inverse", ()): (3.0, lambda rng, mu: mu + rng.normal(0, 0.02, mu.shape)),
    ("gamma", "identity", ()): (3.0, lambda rng, mu: rng.gamma(2.0, mu / 2.0)),
    ("binomial", "cloglog", ()): (0.0, lambda rng, mu: (rng.random(mu.shape) < mu).astype(float)),
    ("binomial", "log", ()): (-1.5, lambda rng, mu: (rng.random(mu.shape) < mu).astype(float)),
    ("binomial", "cauchit", ()): (0.0, lambda rng, mu: (rng.random(mu.shape) < mu).astype(float)),
    ("poisson", "identity", ()): (3.0, lambda rng, mu: rng.poisson(mu).astype(float)),
    ("poisson", "sqrt", ()): (2.0, lambda rng, mu: rng.poisson(mu).astype(float)),
    ("inverse_gaussian", "inverse_squared", ()): (3.0, lambda rng, mu: rng.wald(mu, 4.0)),
    ("inverse_gaussian", "log", ()): (0.0, lambda rng, mu: rng.wald(mu, 4.0)),
    ("inverse_gaussian", "inverse", ()): (2.0, lambda rng, mu: rng.wald(mu, 4.0)),
    ("negative_binomial", "log", (("alpha", 0.5),)): (
        1.0,
        lambda rng, mu: rng.negative_binomial(2.0, 1.0 / (1.0 + 0.5 * mu)).astype(float),
    ),
    ("tweedie", "log", (("var_power", 1.5),)): (0.5, lambda rng, mu: _tweedie(rng, mu, 1.5)),
    ("tweedie", "log", (("var_power", 3.0),)): (0.0, lambda rng, mu: rng.wald(mu, 4.0)),
}


def make(family, link, params, n=800, seed=0):
    rng, X = _design(n, seed)
    shift, draw = CASES[(family, link, params)]
    eta = 0.4 * X @ BETA + shift
    mu = sm_family(family, link, **dict(params)).link.inverse(eta)
    return X, draw(rng, mu)


def sm_fit(y, X, family, link, params=(), method="IRLS", **kw):
    fit_kw = {k: kw.pop(k) for k in ("scale", "cov_type", "cov_kwds") if k in kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' DomainWarning for its non-"safe" links
        model = sm.GLM(y, X, family=sm_family(family, link, **dict(params)), **kw)
        return model.fit(method=method, tol=1e-13, maxiter=1000, **fit_kw)


def ours_family(family, link, params):
    return glm.FAMILIES[family](link, **dict(params))


def check(res, ref, rtol=1e-6, llf=True):
    np.testing.assert_allclose(res.coef, ref.params, rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=rtol)
    np.testing.assert_allclose(res.deviance, ref.deviance, rtol=1e-9)
    np.testing.assert_allclose(res.scale, ref.scale, rtol=1e-7)
    np.testing.assert_allclose(res.pearson_chi2, ref.pearson_chi2, rtol=1e-7)
    if llf and np.isfinite(ref.llf):
        np.testing.assert_allclose(res.loglike, ref.llf, rtol=1e-9)
    elif llf:
        assert np.isnan(res.loglike)


@pytest.mark.parametrize(("family", "link", "params"), sorted(CASES), ids=lambda v: str(v))
def test_link_and_family_equal_statsmodels(family, link, params):
    X, y = make(family, link, params)
    res = glm.fit(X, y, family=ours_family(family, link, params), tol=1e-12)
    assert res.converged and res.family == family and res.link == link
    assert res.family_params == dict(params)
    check(res, sm_fit(y, X, family, link, params))


@pytest.mark.parametrize(("family", "link"), [("inverse_gaussian", "log"), ("binomial", "cloglog")])
def test_newton_with_observed_information_equals_statsmodels_newton(family, link):
    X, y = make(family, link, ())
    res = glm.fit(X, y, family=family, link=link, method="newton", tol=1e-12)
    ref = sm_fit(y, X, family, link, method="newton")
    np.testing.assert_allclose(res.coef, ref.params, rtol=1e-6)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-6)


def test_statsmodels_datasets_scotland_gamma_identity_and_inverse_gaussian():
    data = sm.datasets.scotland.load()
    X, y = sm.add_constant(np.asarray(data.exog, float)), np.asarray(data.endog, float)
    for family, link in (("gamma", "identity"), ("gamma", "log"), ("inverse_gaussian", "inverse_squared")):
        res = glm.fit(X, y, family=family, link=link, tol=1e-12)
        check(res, sm_fit(y, X, family, link))


def test_star98_two_column_binomial_response_equals_statsmodels():
    data = sm.datasets.star98.load()
    y = np.asarray(data.endog, float)  # (successes, failures)
    X = sm.add_constant(np.asarray(data.exog, float))
    X = (X - np.r_[0.0, X[:, 1:].mean(0)]) / np.r_[1.0, X[:, 1:].std(0)]
    for link in ("logit", "probit", "cloglog"):
        res = glm.fit(X, y, family="binomial", link=link, tol=1e-12)
        check(res, sm_fit(y, X, "binomial", link))


def test_freq_weights_change_df_resid_as_statsmodels():
    X, y = make("inverse_gaussian", "log", (), n=400, seed=3)
    rng = np.random.default_rng(4)
    f, v = rng.integers(0, 4, len(y)).astype(float), rng.uniform(0.5, 2.0, len(y))
    for family, link in (("inverse_gaussian", "log"), ("gaussian", "identity"), ("gaussian", "log")):
        res = glm.fit(X, y, family=family, link=link, freq_weights=f, weights=v, tol=1e-12)
        ref = sm_fit(y, X, family, link, freq_weights=f, var_weights=v)
        assert res.df_resid == pytest.approx(ref.df_resid)
        check(res, ref)
    # freq_weights = repeating the rows
    Xr, yr = np.repeat(X, f.astype(int), axis=0), np.repeat(y, f.astype(int))
    a = glm.fit(X, y, family="inverse_gaussian", link="log", freq_weights=f, tol=1e-12)
    b = glm.fit(Xr, yr, family="inverse_gaussian", link="log", tol=1e-12)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-8)
    np.testing.assert_allclose(a.loglike, b.loglike, rtol=1e-10)


def test_exposure_and_offset_equal_statsmodels_cpunish():
    data = sm.datasets.cpunish.load()
    y = np.asarray(data.endog, float)
    X = sm.add_constant(np.asarray(data.exog, float)[:, :-1])
    X[:, 1:] = (X[:, 1:] - X[:, 1:].mean(0)) / X[:, 1:].std(0)
    exposure = np.asarray(data.exog, float)[:, -1] + 1.0
    offset = np.linspace(-0.1, 0.1, len(y))
    res = glm.fit(X, y, family="poisson", exposure=exposure, offset=offset, tol=1e-12)
    check(res, sm_fit(y, X, "poisson", "log", exposure=exposure, offset=offset))
    with pytest.raises(ConfigError, match="exposure.*log link only"):
        glm.fit(X, y, family="poisson", link="sqrt", exposure=exposure)
    with pytest.raises(ConfigError, match="exposure > 0"):
        glm.fit(X, y, family="poisson", exposure=-exposure)


@pytest.mark.parametrize("scale", ["X2", "dev", 2.5])
def test_scale_x2_dev_and_fixed_equal_statsmodels(scale):
    for family, link in (("poisson", "log"), ("gamma", "log"), ("gaussian", "log")):
        shift = {"poisson": 1.0, "gamma": 0.0, "gaussian": 0.0}[family]
        rng, X = _design(500, 5)
        mu = np.exp(0.4 * X @ BETA + shift)
        y = {
            "poisson": rng.poisson(mu) * 1.0,
            "gamma": rng.gamma(2.0, mu / 2),
            "gaussian": mu + rng.normal(0, 0.3, 500),
        }
        res = glm.fit(X, y[family], family=family, link=link, scale=scale, tol=1e-12)
        check(res, sm_fit(y[family], X, family, link, scale=scale))


def test_hc0_and_cluster_equal_statsmodels_and_hc1_hc3_equal_ols():
    X, y = make("binomial", "cloglog", (), n=600, seed=6)
    groups = np.random.default_rng(7).integers(0, 25, len(y))
    for family, link in (("binomial", "cloglog"), ("binomial", "logit")):
        for cov_type in ("HC0", "cluster"):
            kw = {"groups": groups} if cov_type == "cluster" else {}
            res = glm.fit(X, y, family=family, link=link, cov_type=cov_type, tol=1e-12, **kw)
            cov_kwds = {"groups": groups} if kw else None
            ref = sm_fit(y, X, family, link, cov_type=cov_type, cov_kwds=cov_kwds)
            assert res.cov_type == cov_type
            check(res, ref)
    # statsmodels' GLM reports HC0 for HC1-HC3; its OLS has them all (gaussian identity: the same model)
    rng, X = _design(300, 8)
    y = X @ BETA + rng.normal(size=300) * (1 + np.abs(X[:, 1]))
    for cov_type in ("HC0", "HC1", "HC2", "HC3"):
        res = glm.fit(X, y, cov_type=cov_type)
        np.testing.assert_allclose(res.bse, sm.OLS(y, X).fit(cov_type=cov_type).bse, rtol=1e-9)


def test_hc2_hc3_of_a_glm_follow_the_irls_hat_matrix():
    """An independent numpy evaluation of the documented formula (R's sandwich::vcovHC for glm)."""
    X, y = make("poisson", "sqrt", ())
    ref = sm_fit(y, X, "poisson", "sqrt")
    mu, fam = ref.mu, ref.model.family
    gp = fam.link.deriv(mu)
    u = (y - mu) / (mu * gp)
    W = 1 / (mu * gp**2)
    H = -ref.model.hessian(ref.params, observed=True)
    Hi = np.linalg.inv(H)
    h = W * np.einsum("ij,jk,ik->i", X, np.linalg.inv(X.T @ (W[:, None] * X)), X)
    for cov_type, k in (("HC2", 1), ("HC3", 2)):
        meat = X.T @ ((u**2 / (1 - h) ** k)[:, None] * X)
        bse = np.sqrt(np.diag(Hi @ meat @ Hi))
        res = glm.fit(X, y, family="poisson", link="sqrt", cov_type=cov_type, tol=1e-12)
        np.testing.assert_allclose(res.bse, bse, rtol=1e-6)


def test_negative_binomial_ml_alpha_equals_statsmodels_discrete():
    data = sm.datasets.randhie.load()
    y = np.asarray(data.endog, float)
    X = sm.add_constant(np.asarray(data.exog, float))[:4000]
    y = y[:4000]
    ref = sm.NegativeBinomial(y, X).fit(method="newton", maxiter=200, tol=1e-12, disp=0)
    res = glm.fit(X, y, family=glm.NegativeBinomial(alpha="ml"), tol=1e-12)
    assert res.converged
    np.testing.assert_allclose(res.coef, ref.params[:-1], rtol=1e-6)
    np.testing.assert_allclose(res.family_params["alpha"], ref.params[-1], rtol=1e-6)
    np.testing.assert_allclose(res.bse, ref.bse[:-1], rtol=1e-5)
    np.testing.assert_allclose(res.family_params_bse["alpha"], ref.bse[-1], rtol=1e-5)
    np.testing.assert_allclose(res.loglike, ref.llf, rtol=1e-10)
    # and the GLM at that alpha is statsmodels' NB GLM at that alpha
    glm_ref = sm_fit(y, X, "negative_binomial", "log", (("alpha", res.family_params["alpha"]),))
    np.testing.assert_allclose(res.deviance, glm_ref.deviance, rtol=1e-8)


def test_negative_binomial_ml_alpha_on_equidispersed_counts_stops_at_its_floor_with_a_warning():
    # Poisson counts: l_p rises toward alpha = 0, so the maximum is on the boundary. Newton on log alpha
    # used to halve alpha without end (an n = 120 fit ran for minutes); now it stops at NB_ALPHA_FLOOR,
    # says so, and the coefficients are statsmodels' discrete NegativeBinomial's (alpha ~ 0: Poisson's).
    from raytune_opt.glm.fit import NB_ALPHA_FLOOR, GLMConvergenceWarning

    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(120), rng.normal(size=(120, 2))])
    y = rng.poisson(np.exp(X @ [1.2, 0.5, -0.4])).astype(float)
    with pytest.warns(GLMConvergenceWarning, match="no overdispersion"):
        res = glm.fit(X, y, family=glm.NegativeBinomial(alpha="ml"))
    assert res.converged and res.family_params["alpha"] == NB_ALPHA_FLOOR
    ref = sm.NegativeBinomial(y, X).fit(disp=0)
    assert ref.params[-1] < 1e-4  # statsmodels also finds no overdispersion
    poisson = glm.fit(X, y, family="poisson", tol=1e-12)
    np.testing.assert_allclose(res.coef, poisson.coef, rtol=1e-5)
    np.testing.assert_allclose(res.coef, ref.params[:-1], rtol=1e-5)


def test_new_families_on_two_ray_workers(ray_local):
    X, y = make("negative_binomial", "log", (("alpha", 0.5),), n=600, seed=9)
    for family in (glm.NegativeBinomial(alpha="ml"), glm.Tweedie(var_power=1.5), glm.InverseGaussian("log")):
        yy = y + 0.5 if family.name == "inverse_gaussian" else y
        a = glm.fit(X, yy, family=family, tol=1e-12)
        b = glm.fit(X, yy, family=family, tol=1e-12, num_workers=2, cov_type="HC0")
        np.testing.assert_allclose(b.coef, a.coef, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            b.family_params.get("alpha", 0), a.family_params.get("alpha", 0), rtol=1e-7
        )
        assert b.num_workers == 2 and np.isfinite(b.bse).all()


def test_bad_options_are_config_errors():
    X, y = make("poisson", "identity", ())
    with pytest.raises(ConfigError, match="cov_type.*HC0"):
        glm.fit(X, y, family="poisson", cov_type="HC4")
    with pytest.raises(ConfigError, match="groups"):
        glm.fit(X, y, family="poisson", cov_type="cluster")
    with pytest.raises(ConfigError, match="scale.*X2"):
        glm.fit(X, y, family="poisson", scale="pearson")
    with pytest.raises(ConfigError, match="freq_weights >= 0"):
        glm.fit(X, y, family="poisson", freq_weights=-np.ones(len(y)))
    with pytest.raises(ConfigError, match="link \\(family 'poisson'\\)"):
        glm.fit(X, y, family="poisson", link="logit")
    with pytest.raises(ConfigError, match="support of family 'inverse_gaussian'"):
        glm.fit(X, y, family="inverse_gaussian")
    with pytest.raises(ConfigError, match="left the domain of the link"):
        Xn, yn = make("negative_binomial", "log", (("alpha", 0.5),), n=600, seed=9)
        glm.fit(Xn, yn + 0.5, family="inverse_gaussian")  # counts: 1/mu^2 < 0 after the first step
    with pytest.raises(ConfigError, match="failures >= 0"):
        glm.fit(X, np.column_stack([y, -y]), family="binomial")
