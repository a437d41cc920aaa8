"""Links and families: derivatives against autograd, deviance and log-likelihood against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sm_family

from raytune_opt.errors import ConfigError
from raytune_opt.glm import FAMILIES, LINKS, get_family

MU = {  # points inside each link's domain
    "identity": torch.tensor([-2.0, 0.3, 1.7], dtype=torch.float64),
    "logit": torch.tensor([0.05, 0.4, 0.93], dtype=torch.float64),
    "probit": torch.tensor([0.05, 0.4, 0.93], dtype=torch.float64),
    "log": torch.tensor([0.2, 1.0, 7.5], dtype=torch.float64),
    "inverse": torch.tensor([0.2, 1.0, 7.5], dtype=torch.float64),
    "inverse_squared": torch.tensor([0.2, 1.0, 7.5], dtype=torch.float64),
    "sqrt": torch.tensor([0.2, 1.0, 7.5], dtype=torch.float64),
    "cloglog": torch.tensor([0.05, 0.4, 0.93], dtype=torch.float64),
    "cauchit": torch.tensor([0.05, 0.4, 0.93], dtype=torch.float64),
}
PARAMS = {"negative_binomial": {"alpha": 0.7}, "tweedie": {"var_power": 1.5}}


@pytest.mark.parametrize("name", sorted(LINKS))
def test_link_derivatives_match_autograd(name):
    link = LINKS[name]()
    mu = MU[name].clone().requires_grad_(True)
    eta = link(mu)
    (d1,) = torch.autograd.grad(eta.sum(), mu, create_graph=True)
    d2 = torch.autograd.grad(d1.sum(), mu)[0] if d1.requires_grad else torch.zeros_like(d1)
    torch.testing.assert_close(link.deriv(mu.detach()), d1.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(link.deriv2(mu.detach()), d2, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(link.inverse(eta.detach()), mu.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(link.inverse_deriv(eta.detach()), 1.0 / d1.detach(), rtol=1e-10, atol=1e-12)


def test_links_match_statsmodels():
    for name in LINKS:
        fam = next(f for f, cls in FAMILIES.items() if name in cls.links)
        ref = sm_family(fam, name).link
        mu = MU[name].numpy()
        ours = LINKS[name]()
        t = torch.from_numpy(mu)
        np.testing.assert_allclose(ours(t).numpy(), ref(mu), rtol=1e-12)
        np.testing.assert_allclose(ours.deriv(t).numpy(), ref.deriv(mu), rtol=1e-10)
        np.testing.assert_allclose(ours.deriv2(t).numpy(), ref.deriv2(mu), rtol=1e-6)


def _family(name):
    return FAMILIES[name](**PARAMS.get(name, {}))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_variance_derivative_matches_autograd(family):
    fam = _family(family)
    mu = MU["logit"].clone().requires_grad_(True)
    v = fam.variance(mu)
    dv = torch.autograd.grad(v.sum(), mu)[0] if v.requires_grad else torch.zeros_like(v)
    torch.testing.assert_close(fam.variance_deriv(mu.detach()), dv)


@pytest.mark.parametrize(
    ("family", "link", "params"),
    [(f, lk, PARAMS.get(f, {})) for f, cls in FAMILIES.items() for lk in cls.links]
    + [("tweedie", "log", {"var_power": p}) for p in (1.0, 1.2, 2.0)]
    + [("negative_binomial", "log", {"alpha": 2.5})],
)
def test_deviance_and_loglike_match_statsmodels(family, link, params):
    rng = np.random.default_rng(3)
    mu = rng.uniform(0.1, 0.9, 40)
    y = {
        "gaussian": rng.normal(size=40),
        "binomial": rng.integers(0, 2, 40).astype(float),
        "poisson": rng.poisson(2.0, 40).astype(float),
        "gamma": rng.gamma(2.0, 1.0, 40),
        "inverse_gaussian": rng.wald(1.0, 2.0, 40),
        "negative_binomial": rng.negative_binomial(2, 0.4, 40).astype(float),
        "tweedie": np.where(rng.random(40) < 0.3, 0.0, rng.gamma(2.0, 1.0, 40)),
    }[family]
    if family == "tweedie" and params["var_power"] >= 2:
        y = y + 0.1
    w = rng.uniform(0.5, 2.0, 40)
    scale = 1.0 if family in ("binomial", "poisson", "negative_binomial") else 1.7
    fam, ref = FAMILIES[family](link, **params), sm_family(family, link, **params)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    dev = float((t(w) * fam.unit_deviance(t(y), t(mu))).sum())
    np.testing.assert_allclose(dev, ref.deviance(y, mu, var_weights=w), rtol=1e-12)
    ll = float(fam.loglike_obs(t(y), t(mu), t(w), torch.tensor(scale, dtype=torch.float64)).sum())
    np.testing.assert_allclose(ll, ref.loglike(y, mu, var_weights=w, scale=scale), rtol=1e-10)
    np.testing.assert_allclose(fam.variance(t(mu)).numpy(), ref.variance(mu), rtol=1e-14)


@pytest.mark.parametrize("family", ["gaussian", "binomial", "poisson", "gamma", "inverse_gaussian"])
def test_saturated_and_kernel_split_the_unit_deviance(family):
    """d(y, mu) = 2 (s(y) - k(y, mu)) wherever a family splits it (Shard evaluates D that way)."""
    rng = np.random.default_rng(5)
    mu = torch.from_numpy(rng.uniform(0.05, 0.95, 200))
    y = torch.from_numpy(
        {
            "gaussian": rng.normal(size=200),
            "binomial": np.r_[rng.integers(0, 2, 100), rng.uniform(0, 1, 100)],
            "poisson": np.r_[rng.poisson(2.0, 150), [0.0] * 50],
            "gamma": rng.gamma(2.0, 1.0, 200),
            "inverse_gaussian": rng.wald(1.0, 2.0, 200),
        }[family].astype(float)
    )
    fam = get_family(family)
    s = fam.saturated(y)
    if family == "gaussian":
        assert s is None
        return
    split = 2.0 * (s - fam.kernel(y, mu))
    torch.testing.assert_close(split, fam.unit_deviance(y, mu), rtol=1e-12, atol=1e-13)


def test_binomial_proportions_loglike_matches_statsmodels():
    y, mu, w = np.array([0.25, 0.5, 1.0, 0.0]), np.array([0.3, 0.6, 0.8, 0.1]), np.array([4.0, 2.0, 1.0, 3.0])
    fam, ref = get_family("binomial"), sm_family("binomial", "logit")
    ll = float(fam.loglike_obs(*(torch.from_numpy(a) for a in (y, mu, w)), 1.0).sum())
    np.testing.assert_allclose(ll, ref.loglike(y, mu, var_weights=w), rtol=1e-12)


def test_unknown_family_and_link_list_the_choices():
    with pytest.raises(ConfigError, match="gaussian.*poisson"):
        get_family("poison")
    with pytest.raises(ConfigError, match="did you mean 'poisson'"):
        get_family("poison")
    with pytest.raises(ConfigError, match="cauchit, cloglog, log, logit, probit"):
        get_family("binomial", "identity")
    with pytest.raises(ConfigError, match="identity, inverse, log"):
        get_family("gaussian", "cloglog")
    with pytest.raises(ConfigError, match=r"link \(family 'poisson'\) = 'inverse'.*identity, log, sqrt"):
        get_family("poisson", "inverse")
    with pytest.raises(ConfigError, match="negative_binomial.alpha"):
        FAMILIES["negative_binomial"](alpha=-1.0)
    with pytest.raises(ConfigError, match="tweedie.var_power"):
        FAMILIES["tweedie"](var_power=0.5)


def test_negative_binomial_alpha_derivatives_match_autograd():
    rng = np.random.default_rng(7)
    y = torch.from_numpy(rng.negative_binomial(2, 0.3, 30).astype(float))
    mu = torch.from_numpy(rng.uniform(0.5, 6.0, 30)).requires_grad_(True)
    a = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    ia = 1 / a
    ll = torch.xlogy(y, a * mu) - (y + ia) * torch.log1p(a * mu) + torch.lgamma(y + ia) - torch.lgamma(ia)
    fam = FAMILIES["negative_binomial"](alpha=0.8)
    d1, d2, dmu = fam.alpha_derivs(y, mu.detach())
    (ga,) = torch.autograd.grad(ll.sum(), a, create_graph=True)
    (gaa,) = torch.autograd.grad(ga, a, retain_graph=True)
    torch.testing.assert_close(d1.sum(), ga.detach())
    torch.testing.assert_close(d2.sum(), gaa)
    (gmu,) = torch.autograd.grad(ll.sum(), mu, create_graph=True)
    (gmua,) = torch.autograd.grad(gmu.sum(), a)
    torch.testing.assert_close(dmu.sum(), gmua)
    torch.testing.assert_close(
        fam.loglike_obs(y, mu.detach(), torch.ones_like(y), 1.0).sum(),
        (ll - torch.lgamma(y + 1)).sum().detach(),
    )
