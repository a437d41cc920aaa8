"""Rows sharded over 2 real local Ray actors give the single-process fit to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_data

from raytune_opt import glm
from raytune_opt.errors import ConfigError


@pytest.mark.parametrize(
    ("family", "link", "method"),
    [("binomial", "logit", "irls"), ("gamma", "log", "newton"), ("poisson", "log", "lbfgs")],
)
def test_two_workers_equal_one_process(ray_local, family, link, method):
    X, y = make_data(family, link, n=3001, seed=20)  # an odd n: unequal shards
    w = np.random.default_rng(21).uniform(0.5, 2.0, len(y))
    # L-BFGS stops at its gradient test (tol=1e-13: at the rounding floor of its line search), a point that
    # rounding in the summed pieces moves by ~1e-9: both runs are that close to the solution and each other
    tol = 1e-13 if method == "lbfgs" else 1e-8
    local = glm.fit(X, y, family=family, link=link, method=method, weights=w, tol=tol)
    dist = glm.fit(X, y, family=family, link=link, method=method, weights=w, num_workers=2, tol=tol)
    assert dist.num_workers == 2 and dist.converged
    if method != "lbfgs":
        assert dist.n_iter == local.n_iter
    close = 1e-8 if method == "lbfgs" else 1e-10
    np.testing.assert_allclose(dist.coef, local.coef, rtol=0, atol=close)
    np.testing.assert_allclose(dist.bse, local.bse, rtol=close)
    np.testing.assert_allclose(dist.deviance, local.deviance, rtol=1e-12)
    np.testing.assert_allclose(dist.loglike, local.loglike, rtol=1e-12)


def test_two_workers_robust_huber(ray_local):
    rng = np.random.default_rng(22)
    X = np.column_stack([np.ones(2000), rng.normal(size=(2000, 3))])
    y = X @ [1.0, 2.0, -1.0, 0.5] + rng.standard_t(2, 2000)
    local, dist = glm.fit(X, y, robust="huber"), glm.fit(X, y, robust="huber", num_workers=2)
    assert dist.n_iter == local.n_iter
    np.testing.assert_allclose(dist.coef, local.coef, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dist.bse, local.bse, rtol=1e-10)


def test_lm_is_refused_with_workers_and_too_many_workers_are_refused(ray_local):
    X, y = make_data("poisson", "log", n=200)
    with pytest.raises(ConfigError, match="irls-lm"):
        glm.fit(X, y, family="poisson", method="lm", num_workers=2)
    with pytest.raises(ConfigError, match="num_workers = 64 .*CPUs"):
        glm.fit(X, y, family="poisson", num_workers=64)
