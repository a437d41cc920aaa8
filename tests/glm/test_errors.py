"""Every bad input is a ConfigError before any work, naming the problem and what is allowed."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import make_data

from raytune_opt import glm
from raytune_opt.errors import ConfigError, ConfigTypeError


@pytest.fixture(scope="module")
def data():
    return make_data("poisson", "log", n=300, seed=30)


def test_nan_and_inf_are_located(data):
    X, y = data
    Xb = X.copy()
    Xb[7, 2] = np.nan
    with pytest.raises(ConfigError, match=r"X has 1 row\(s\) with NaN or inf \(first at rows \[7\]\)"):
        glm.fit(Xb, y, family="poisson")
    yb = y.copy()
    yb[[3, 9]] = np.inf
    with pytest.raises(ConfigError, match=r"y has 2 row\(s\) with NaN or inf"):
        glm.fit(X, yb, family="poisson")
    with pytest.raises(ConfigError, match="weights has 1 row"):
        glm.fit(X, y, family="poisson", weights=np.r_[np.nan, np.ones(len(y) - 1)])


@pytest.mark.parametrize(
    ("family", "bad", "match"),
    [
        ("poisson", -1.0, ">= 0"),
        ("binomial", 2.0, r"in \[0, 1\]"),
        ("binomial", -0.5, r"in \[0, 1\]"),
        ("gamma", 0.0, "> 0"),
    ],
)
def test_y_outside_the_support(family, bad, match):
    X, y = make_data("binomial", "logit", n=200, seed=31)
    y = y * 0.5 + 0.25  # inside every support
    y[5] = bad
    with pytest.raises(ConfigError, match=f"outside the support of family '{family}'.*{match}.*rows \\[5\\]"):
        glm.fit(X, y, family=family)


def test_lengths_must_match(data):
    X, y = data
    with pytest.raises(ConfigError, match="X has 300 rows but y has 299"):
        glm.fit(X, y[:-1], family="poisson")
    with pytest.raises(ConfigError, match="weights has 10"):
        glm.fit(X, y, family="poisson", weights=np.ones(10))
    with pytest.raises(ConfigError, match="offset has 3"):
        glm.fit(X, y, family="poisson", offset=[0.0, 1.0, 2.0])
    with pytest.raises(ConfigError, match="X.ndim = 1"):
        glm.fit(X[:, 0], y)


def test_rank_deficient_design_names_the_columns_and_suggests_alpha(data):
    X, y = data
    Xd = np.column_stack([X, X[:, 1] - 2.0 * X[:, 3]])
    with pytest.raises(ConfigError, match=r"rank-deficient: numerical rank 5 < 6 .*\[1, 3, 5\].*alpha > 0"):
        glm.fit(Xd, y, family="poisson")
    with pytest.raises(ConfigError, match=r"column\(s\) \[2\] are all zero.*alpha"):
        glm.fit(np.column_stack([X[:, :2], np.zeros(len(y))]), y, family="poisson")
    with pytest.raises(ConfigError, match="rank-deficient"):
        glm.fit(Xd, y, robust="huber")
    assert glm.fit(Xd, y, family="poisson", alpha=1.0).converged  # the suggested fix works


def test_separation_complete_and_quasi_complete():
    rng = np.random.default_rng(32)
    x = rng.normal(size=100)
    X = np.column_stack([np.ones(100), x, rng.normal(size=100)])
    y = (x > 0).astype(float)
    with pytest.raises(ConfigError, match="^complete separation.*100 of 100 rows.*alpha > 0"):
        glm.fit(X, y, family="binomial")
    yq = y.copy()
    x[:6] = 0.0  # six rows on the boundary with mixed outcomes: quasi-complete
    X[:, 1] = x
    yq[:6] = [0, 1, 0, 1, 0, 1]
    with pytest.raises(ConfigError, match="^quasi-complete separation.*of 100 rows"):
        glm.fit(X, yq, family="binomial", link="probit")
    assert glm.fit(X, y, family="binomial", alpha=1.0).converged  # a penalty gives finite coefficients


def test_separation_on_real_data(cancer):
    X, y = cancer  # all 30 features of breast cancer separate the classes
    with pytest.raises(ConfigError, match="^complete separation.*569 of 569"):
        glm.fit(X, y, family="binomial")


def test_separation_found_after_a_runaway_fit_when_too_big_for_the_lp_up_front(monkeypatch):
    monkeypatch.setattr(importlib.import_module("raytune_opt.glm.fit"), "SEPARATION_LP_LIMIT", 0)
    rng = np.random.default_rng(33)
    X = np.column_stack([np.ones(200), rng.normal(size=(200, 2))])
    y = (X[:, 1] + 0.5 * X[:, 2] > 0).astype(float)
    with pytest.raises(ConfigError, match="complete separation"):
        glm.fit(X, y, family="binomial")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (
            {"family": "poison"},
            "family = 'poison' is not known \\(did you mean 'poisson'\\?\\); choose one of: "
            "binomial, gamma, gaussian, inverse_gaussian, negative_binomial, poisson, tweedie",
        ),
        ({"family": "binomial", "link": "sqrt"}, "cauchit, cloglog, log, logit, probit"),
        ({"family": "gamma", "link": "logit"}, "identity, inverse, log"),
        ({"method": "newton-cg"}, "bfgs, irls, irls-lm, lbfgs, lm, newton"),
        ({"robust": "hubber"}, "did you mean 'huber'.*andrew, bisquare, cauchy, hampel, huber, l1, seed"),
        ({"robust": "huber", "method": "bfgs"}, "irls, irls-lm for a robust fit"),
        ({"robust": "huber", "family": "poisson"}, "'gaussian'"),
        ({"alpha": -1.0}, "alpha = -1.0 .*>= 0"),
        ({"tol": 0.0}, "tol = 0.0 .*> 0"),
        ({"max_iter": 0}, "max_iter = 0 .*integer >= 1"),
        ({"max_iter": 2.5}, "max_iter = 2.5"),
        ({"num_workers": 0}, "num_workers = 0"),
        ({"weights": -np.ones(300)}, "weights >= 0"),
        ({"dtype": torch.int64}, "floating torch dtype"),
        ({"device": "gpu:7"}, "device = 'gpu:7'"),
    ],
)
def test_bad_options(data, kw, match):
    X, y = data
    with pytest.raises(ConfigError, match=match):
        glm.fit(X, y, **kw)


def test_non_numeric_input_is_a_type_error(data):
    X, y = data
    with pytest.raises(ConfigTypeError, match="X must be numeric"):
        glm.fit(np.array([["a", "b"]] * 300), y)
    with pytest.raises(ConfigError, match="need more rows than columns"):
        glm.fit(X[:4], y[:4], family="poisson")


def test_curve_fit_bad_input():
    f = lambda x, p: p[0] * x  # noqa: E731
    x = np.linspace(0, 1, 10)
    with pytest.raises(ConfigError, match="method = 'gauss' is not known.*bfgs, lbfgs, lm"):
        glm.curve_fit(f, x, x, [1.0], method="gauss")
    with pytest.raises(ConfigError, match="y contains NaN"):
        glm.curve_fit(f, x, np.r_[np.nan, x[1:]], [1.0])
    with pytest.raises(ConfigError, match="f\\(x, p0\\) has 10 values but y has 9"):
        glm.curve_fit(f, x, x[:9], [1.0])
    with pytest.raises(ConfigTypeError, match="not allowed: expected a callable"):
        glm.curve_fit("f", x, x, [1.0])
    with pytest.raises(ConfigError, match="sigma"):
        glm.curve_fit(f, x, x, [1.0], sigma=np.zeros(10))
