"""glm.fit(method="bfgs" | "lbfgs" | "lm") on statsmodels' datasets: the IRLS optimum, honest convergence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

from raytune_opt import glm


def _data(name: str):
    d = getattr(sm.datasets, name).load()
    X = sm.add_constant(np.asarray(d.exog, dtype=float), prepend=False)
    if name == "star98":  # (successes, failures): proportions with the trials as weights
        e = np.asarray(d.endog, dtype=float)
        return X, e[:, 0] / e.sum(1), e.sum(1)
    return X, np.asarray(d.endog, dtype=float), None


CASES = [
    ("cpunish", "poisson", sm.families.Poisson()),  # income in dollars beside 0/1 columns: badly scaled
    ("scotland", "gamma", sm.families.Gamma()),
    ("spector", "binomial", sm.families.Binomial()),
    ("star98", "binomial", sm.families.Binomial()),
    ("randhie", "poisson", sm.families.Poisson()),
]


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "lm"])
@pytest.mark.parametrize(("name", "family", "sm_family"), CASES)
def test_reaches_the_statsmodels_optimum(name, family, sm_family, method):
    X, y, w = _data(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.GLM(y, X, family=sm_family, var_weights=w).fit(tol=1e-12, maxiter=1000)
    res = glm.fit(X, y, family=family, method=method, weights=w)
    assert res.converged, res.message
    assert res.message
    np.testing.assert_allclose(res.coef, ref.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(res.deviance, ref.deviance, rtol=1e-10)


def test_cpunish_bfgs_no_longer_stops_early_claiming_convergence():
    """Issue 17's reproduction: bfgs stopped at a deviance 0.014 above the optimum and said converged."""
    X, y, _ = _data("cpunish")
    irls = glm.fit(X, y, family="poisson")
    for method in ("bfgs", "lbfgs"):
        res = glm.fit(X, y, family="poisson", method=method)
        assert res.converged and res.deviance == pytest.approx(irls.deviance, rel=1e-12)


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "lm"])
def test_budget_exhausted_says_not_converged_and_why(method):
    X, y, _ = _data("cpunish")
    with pytest.warns(glm.GLMConvergenceWarning, match="max_iter"):
        res = glm.fit(X, y, family="poisson", method=method, max_iter=2)
    assert not res.converged and res.n_iter <= 2 and "max_iter" in res.message
