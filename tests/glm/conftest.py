"""Data shared by the GLM tests: generated designs per family/link and two real scikit-learn data sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

# (family, link) -> generator of y from the linear predictor eta
CASES = {
    ("gaussian", "identity"): lambda rng, eta: eta + rng.normal(size=eta.shape),
    ("binomial", "logit"): lambda rng, eta: (rng.random(eta.shape) < 1 / (1 + np.exp(-eta))).astype(float),
    ("binomial", "probit"): lambda rng, eta: (rng.random(eta.shape) < 1 / (1 + np.exp(-eta))).astype(float),
    ("poisson", "log"): lambda rng, eta: rng.poisson(np.exp(eta)).astype(float),
    ("gamma", "log"): lambda rng, eta: rng.gamma(2.0, np.exp(eta) / 2.0),
    ("gamma", "inverse"): lambda rng, eta: rng.gamma(2.0, 1.0 / (eta + 3.0) / 2.0),
}


def make_data(family: str, link: str, n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X = [1, N(0, 1) x 4], eta = X b, y drawn from the family at mu = g^{-1}(eta)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 4))])
    eta = X @ np.array([0.3, -0.5, 0.2, 0.1, 0.4])
    return X, CASES[(family, link)](rng, eta)


def sm_family(family: str, link: str, **params):
    """statsmodels' family ``family`` with link ``link`` (and NB ``alpha`` / Tweedie ``var_power``)."""
    import statsmodels.api as sm

    L = sm.families.links
    links = {
        "identity": L.Identity,
        "logit": L.Logit,
        "probit": L.Probit,
        "log": L.Log,
        "inverse": L.InversePower,
        "inverse_squared": L.InverseSquared,
        "sqrt": L.Sqrt,
        "cloglog": L.CLogLog,
        "cauchit": L.Cauchy,
    }
    fams = {
        "gaussian": sm.families.Gaussian,
        "binomial": sm.families.Binomial,
        "poisson": sm.families.Poisson,
        "gamma": sm.families.Gamma,
        "inverse_gaussian": sm.families.InverseGaussian,
        "negative_binomial": sm.families.NegativeBinomial,
        "tweedie": sm.families.Tweedie,
    }
    return fams[family](links[link](), check_link=False, **params)


@pytest.fixture(scope="session")
def diabetes():
    """load_diabetes with an intercept column: X (442 x 11), y (disease progression, 25..346)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return np.column_stack([np.ones(len(y)), X]), y


@pytest.fixture(scope="session")
def cancer():
    """load_breast_cancer, standardised, with an intercept: X (569 x 31), y in {0, 1}."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return np.column_stack([np.ones(len(y)), X]), y.astype(float)
