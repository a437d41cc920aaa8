"""Exponential-family distributions and link functions of the generalized linear model.

A GLM says ``E[y] = mu``, ``eta = g(mu) = X a + offset`` and ``Var[y] = phi V(mu) / w`` with prior weights
``w``. IRLS and Newton–Raphson (seed section 3.2) need, per observation, the link ``g``, its inverse, its
first two derivatives, the variance function ``V`` and its derivative, the unit deviance ``d(y, mu)`` and the
log-likelihood. Everything here is elementwise torch, so it runs on any device and under ``torch.func``.

The formulas (and the constants in the log-likelihoods) follow ``statsmodels.genmod.families`` so that
``deviance`` and ``loglike`` of a fit are the numbers statsmodels reports.
"""

from __future__ import annotations

import math

import torch

from raytune_opt.errors import ConfigError

__all__ = ["Link", "Family", "FAMILIES", "LINKS", "get_family"]

_TINY = 1e-300  # keeps log() finite at mu on the boundary of the support


class Link:
    """A link ``eta = g(mu)``; ``deriv`` = g'(mu), ``deriv2`` = g''(mu), ``inverse_deriv`` = dmu/deta."""

    name: str = ""

    def __call__(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse(self, eta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def deriv(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def deriv2(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse_deriv(self, eta: torch.Tensor) -> torch.Tensor:
        """dmu/deta = 1 / g'(mu(eta))."""
        return 1.0 / self.deriv(self.inverse(eta))

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


class Identity(Link):
    """eta = mu."""

    name = "identity"

    def __call__(self, mu):
        return mu

    def inverse(self, eta):
        return eta

    def deriv(self, mu):
        return torch.ones_like(mu)

    def deriv2(self, mu):
        return torch.zeros_like(mu)

    def inverse_deriv(self, eta):
        return torch.ones_like(eta)


class Logit(Link):
    """eta = log(mu / (1 - mu)); g' = 1 / (mu (1 - mu)); g'' = (2 mu - 1) / (mu (1 - mu))^2."""

    name = "logit"

    def __call__(self, mu):
        return torch.logit(mu)

    def inverse(self, eta):
        return torch.sigmoid(eta)

    def deriv(self, mu):
        return 1.0 / (mu * (1.0 - mu))

    def deriv2(self, mu):
        v = mu * (1.0 - mu)
        return (2.0 * mu - 1.0) / (v * v)

    def inverse_deriv(self, eta):
        p = torch.sigmoid(eta)
        return p * (1.0 - p)


class Probit(Link):
    """eta = Phi^-1(mu); g' = 1 / phi(eta); g'' = eta / phi(eta)^2 (phi, Phi: standard normal pdf, cdf)."""

    name = "probit"

    def __call__(self, mu):
        return torch.special.ndtri(mu)

    def inverse(self, eta):
        return torch.special.ndtr(eta)

    def deriv(self, mu):
        return 1.0 / _normal_pdf(torch.special.ndtri(mu))

    def deriv2(self, mu):
        eta = torch.special.ndtri(mu)
        pdf = _normal_pdf(eta)
        return eta / (pdf * pdf)

    def inverse_deriv(self, eta):
        return _normal_pdf(eta)


class Log(Link):
    """eta = log(mu); g' = 1 / mu; g'' = -1 / mu^2."""

    name = "log"

    def __call__(self, mu):
        return torch.log(mu)

    def inverse(self, eta):
        return torch.exp(eta)

    def deriv(self, mu):
        return 1.0 / mu

    def deriv2(self, mu):
        return -1.0 / (mu * mu)

    def inverse_deriv(self, eta):
        return torch.exp(eta)


class Inverse(Link):
    """eta = 1 / mu; g' = -1 / mu^2; g'' = 2 / mu^3."""

    name = "inverse"

    def __call__(self, mu):
        return 1.0 / mu

    def inverse(self, eta):
        return 1.0 / eta

    def deriv(self, mu):
        return -1.0 / (mu * mu)

    def deriv2(self, mu):
        return 2.0 / (mu * mu * mu)

    def inverse_deriv(self, eta):
        return -1.0 / (eta * eta)


def _normal_pdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


LINKS: dict[str, type[Link]] = {c.name: c for c in (Identity, Logit, Probit, Log, Inverse)}


class Family:
    """One exponential family: variance function, unit deviance, log-likelihood and support of y.

    ``links`` lists the allowed link names, the first being the default; ``canonical`` names the canonical
    link (for which the observed and expected information coincide); ``fixed_scale`` is True where the
    dispersion phi is 1 (binomial, Poisson) and False where it is estimated by Pearson's chi2 / (n - p).
    """

    name: str = ""
    links: tuple[str, ...] = ()
    canonical: str = ""
    fixed_scale: bool = False

    def __init__(self, link: str | None = None) -> None:
        link = self.links[0] if link is None else link
        if link not in self.links:
            raise ConfigError.unknown(f"link (family {self.name!r})", link, self.links)
        self.link: Link = LINKS[link]()

    @property
    def is_canonical(self) -> bool:
        return self.link.name == self.canonical

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def variance_deriv(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unit_deviance(self, y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """d(y, mu) with deviance D = sum_i w_i d(y_i, mu_i)."""
        raise NotImplementedError

    def saturated(self, y: torch.Tensor) -> torch.Tensor | None:
        """s(y) of the split d(y, mu) = 2 (s(y) - k(y, mu)), or None where the family has no such split.

        s depends on y only, so a solver that evaluates D at many mu computes it once: each evaluation is
        then the cheaper kernel k (no ``xlogy`` of y by y), see ``Shard``."""
        return None

    def kernel(self, y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """k(y, mu) of the split in :meth:`saturated` (only called where that is not None)."""
        raise NotImplementedError

    def loglike_obs(self, y: torch.Tensor, mu: torch.Tensor, w: torch.Tensor, scale: float) -> torch.Tensor:
        raise NotImplementedError

    def clip_mu(self, mu: torch.Tensor) -> torch.Tensor:
        """Keep mu inside the open domain of V (IRLS weights stay finite)."""
        return mu

    def starting_mu(self, y: torch.Tensor) -> torch.Tensor:
        """mu_0 = (y + mean(y)) / 2, statsmodels' start (binomial overrides)."""
        return (y + y.mean()) / 2.0

    def check_support(self, y: torch.Tensor, w: torch.Tensor) -> None:
        """Raise ``ConfigError`` when an observation with positive weight lies outside the support."""

    def _support_error(self, y: torch.Tensor, bad: torch.Tensor, allowed: str) -> ConfigError:
        idx = torch.nonzero(bad).flatten()
        first = idx[:5].tolist()
        vals = [float(y[i]) for i in first]
        return ConfigError(
            f"y is outside the support of family {self.name!r}: {idx.numel()} value(s) not {allowed} "
            f"(first at rows {first}: {vals})"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"


class Gaussian(Family):
    """V(mu) = 1; d = (y - mu)^2; ll_i = -(w (y - mu)^2 / phi + log(2 pi phi / w)) / 2."""

    name = "gaussian"
    links = ("identity",)
    canonical = "identity"

    def variance(self, mu):
        return torch.ones_like(mu)

    def variance_deriv(self, mu):
        return torch.zeros_like(mu)

    def unit_deviance(self, y, mu):
        return (y - mu) ** 2

    def loglike_obs(self, y, mu, w, scale):
        return -(w * (y - mu) ** 2 / scale + torch.log(scale / w) + math.log(2 * math.pi)) / 2.0


class Binomial(Family):
    """V(mu) = mu (1 - mu), y in [0, 1] (a proportion; ``weights`` = number of trials).

    d = 2 (y log(y / mu) + (1 - y) log((1 - y) / (1 - mu)));
    ll_i = w (lgamma(2) - lgamma(y + 1) - lgamma(2 - y) + y log(mu / (1 - mu)) + log(1 - mu)).
    """

    name = "binomial"
    links = ("logit", "probit")
    canonical = "logit"
    fixed_scale = True
    eps = float(torch.finfo(torch.float64).eps)

    def variance(self, mu):
        return mu * (1.0 - mu)

    def variance_deriv(self, mu):
        return 1.0 - 2.0 * mu

    def clip_mu(self, mu):
        return mu.clamp(self.eps, 1.0 - self.eps)

    def starting_mu(self, y):
        """mu_0 = (y + 1/2) / 2."""
        return (y + 0.5) / 2.0

    def unit_deviance(self, y, mu):
        # four xlogy terms (not xlogy(y, y / mu)) keep the derivative in mu finite at y = 0 for LM's Jacobian
        return 2.0 * (
            torch.xlogy(y, y) - torch.xlogy(y, mu) + torch.xlogy(1 - y, 1 - y) - torch.xlogy(1 - y, 1 - mu)
        )

    def saturated(self, y):
        """s = y log y + (1 - y) log(1 - y)."""
        return torch.xlogy(y, y) + torch.xlogy(1.0 - y, 1.0 - y)

    def kernel(self, y, mu):
        """k = y log mu + (1 - y) log(1 - mu), mu clipped into (0, 1)."""
        return y * torch.log(mu) + (1.0 - y) * torch.log1p(-mu)

    def loglike_obs(self, y, mu, w, scale):
        ll = self.kernel(y, mu)
        if bool(((y > 0) & (y < 1)).any()):  # the binomial coefficient's term is 0 for y in {0, 1}
            ll = ll + (math.lgamma(2.0) - torch.lgamma(y + 1.0) - torch.lgamma(2.0 - y))
        return w * ll

    def check_support(self, y, w):
        bad = ((y < 0) | (y > 1)) & (w > 0)
        if bool(bad.any()):
            raise self._support_error(y, bad, "in [0, 1] (binary outcomes or proportions)")


class Poisson(Family):
    """V(mu) = mu, y >= 0; d = 2 (y log(y / mu) - (y - mu)); ll_i = w (y log mu - mu - lgamma(y + 1))."""

    name = "poisson"
    links = ("log",)
    canonical = "log"
    fixed_scale = True

    def variance(self, mu):
        return mu

    def variance_deriv(self, mu):
        return torch.ones_like(mu)

    def clip_mu(self, mu):
        return mu.clamp_min(_TINY)

    def unit_deviance(self, y, mu):
        return 2.0 * (torch.xlogy(y, y) - torch.xlogy(y, mu) - (y - mu))

    def saturated(self, y):
        """s = y log y - y."""
        return torch.xlogy(y, y) - y

    def kernel(self, y, mu):
        """k = y log mu - mu, mu clipped above 0."""
        return y * torch.log(mu) - mu

    def loglike_obs(self, y, mu, w, scale):
        return w / scale * (torch.xlogy(y, mu) - mu - torch.lgamma(y + 1.0))

    def check_support(self, y, w):
        bad = (y < 0) & (w > 0)
        if bool(bad.any()):
            raise self._support_error(y, bad, ">= 0 (counts)")


class Gamma(Family):
    """V(mu) = mu^2, y > 0; d = 2 ((y - mu) / mu - log(y / mu));
    ll_i = (w/phi) log(w y / (phi mu)) - w y / (phi mu) - lgamma(w / phi) - log y."""

    name = "gamma"
    links = ("inverse", "log")
    canonical = "inverse"

    def variance(self, mu):
        return mu * mu

    def variance_deriv(self, mu):
        return 2.0 * mu

    def clip_mu(self, mu):
        return mu.clamp_min(_TINY)

    def unit_deviance(self, y, mu):
        return 2.0 * ((y - mu) / mu - torch.log(y / mu))

    def saturated(self, y):
        """s = -log y - 1."""
        return -torch.log(y) - 1.0

    def kernel(self, y, mu):
        """k = -y / mu - log mu."""
        return -y / mu - torch.log(mu)

    def loglike_obs(self, y, mu, w, scale):
        ws = w / scale
        return ws * torch.log(ws * y / mu) - ws * y / mu - torch.lgamma(ws) - torch.log(y)

    def check_support(self, y, w):
        bad = (y <= 0) & (w > 0)
        if bool(bad.any()):
            raise self._support_error(y, bad, "> 0")


FAMILIES: dict[str, type[Family]] = {c.name: c for c in (Gaussian, Binomial, Poisson, Gamma)}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """The family named ``family`` with link ``link`` (its default when None); ``ConfigError`` otherwise."""
    if isinstance(family, Family):
        if link is not None and link != family.link.name:
            return type(family)(link)
        return family
    if not isinstance(family, str) or family not in FAMILIES:
        raise ConfigError.unknown("family", family, FAMILIES)
    if link is not None and (not isinstance(link, str) or link not in LINKS):
        raise ConfigError.unknown("link", link, FAMILIES[family].links)
    return FAMILIES[family](link)
