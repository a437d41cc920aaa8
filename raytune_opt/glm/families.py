"""Exponential-family distributions and link functions of the generalized linear model.

A GLM says ``E[y] = mu``, ``eta = g(mu) = X a + offset`` and ``Var[y] = phi V(mu) / w`` with prior weights
``w``. IRLS and Newton–Raphson (seed section 3.2) need, per observation, the link ``g``, its inverse, its
first two derivatives, the variance function ``V`` and its derivative, the unit deviance ``d(y, mu)`` and the
log-likelihood. Everything here is elementwise torch, so it runs on any device and under ``torch.func``.

The formulas (and the constants in the log-likelihoods) follow ``statsmodels.genmod.families`` so that
``deviance`` and ``loglike`` of a fit are the numbers statsmodels reports.

This module is the one definition of the families: ``glm.fit``, the ``glm-*`` tasks
(``raytune_opt.tasks.glm``, whose loss is :meth:`Family.nll`) and the GLM solvers of the training loop
(``raytune_opt.train.glm_solvers``) all use it.

Links (``LINKS``; g, its inverse, g'):

================  ===========================  ===========================  ==============================
link              eta = g(mu)                  mu = g^-1(eta)               g'(mu)
================  ===========================  ===========================  ==============================
identity          mu                           eta                          1
log               log mu                       exp eta                      1 / mu
inverse           1 / mu                       1 / eta                      -1 / mu^2
inverse_squared   1 / mu^2                     eta^(-1/2)                   -2 / mu^3
sqrt              sqrt mu                      eta^2                        1 / (2 sqrt mu)
logit             log(mu / (1 - mu))           1 / (1 + exp(-eta))          1 / (mu (1 - mu))
probit            Phi^-1(mu)                   Phi(eta)                     1 / phi(Phi^-1(mu))
cloglog           log(-log(1 - mu))            1 - exp(-exp eta)            1 / ((1 - mu) (-log(1 - mu)))
cauchit           tan(pi (mu - 1/2))           1/2 + atan(eta) / pi         pi (1 + eta^2)
================  ===========================  ===========================  ==============================

Families (``FAMILIES``; first link = default, as statsmodels):

=================  ===============  ==================  =======================================
family             V(mu)            support of y        links
=================  ===============  ==================  =======================================
gaussian           1                real                identity, log, inverse
binomial           mu (1 - mu)      [0, 1]; (k, n - k)  logit, probit, cloglog, log, cauchit
poisson            mu               >= 0                log, identity, sqrt
gamma              mu^2             > 0                 inverse, log, identity
inverse_gaussian   mu^3             > 0                 inverse_squared, inverse, log, identity
negative_binomial  mu + alpha mu^2  >= 0                log, identity, sqrt
tweedie            mu^var_power     >= 0 (> 0: p >= 2)  log, identity, sqrt, inverse
=================  ===============  ==================  =======================================
"""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from raytune_opt.errors import ConfigError

__all__ = [
    "Link",
    "Family",
    "FAMILIES",
    "LINKS",
    "get_family",
    "Gaussian",
    "Binomial",
    "Poisson",
    "Gamma",
    "InverseGaussian",
    "NegativeBinomial",
    "Tweedie",
]

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


class InverseSquared(Link):
    """eta = mu^-2; mu = eta^(-1/2); g' = -2 / mu^3; g'' = 6 / mu^4 (inverse Gaussian's canonical link)."""

    name = "inverse_squared"

    def __call__(self, mu):
        return 1.0 / (mu * mu)

    def inverse(self, eta):
        return eta.rsqrt()

    def deriv(self, mu):
        return -2.0 / (mu * mu * mu)

    def deriv2(self, mu):
        return 6.0 / (mu * mu) ** 2

    def inverse_deriv(self, eta):
        return -0.5 * eta.pow(-1.5)


class Sqrt(Link):
    """eta = sqrt(mu); mu = eta^2; g' = 1 / (2 sqrt mu); g'' = -1 / (4 mu^(3/2))."""

    name = "sqrt"

    def __call__(self, mu):
        return torch.sqrt(mu)

    def inverse(self, eta):
        return eta * eta

    def deriv(self, mu):
        return 0.5 / torch.sqrt(mu)

    def deriv2(self, mu):
        return -0.25 * mu.pow(-1.5)

    def inverse_deriv(self, eta):
        return 2.0 * eta


class CLogLog(Link):
    """eta = log(-log(1 - mu)); mu = 1 - exp(-exp eta); with L = -log(1 - mu):
    g' = 1 / ((1 - mu) L); g'' = (L - 1) / ((1 - mu)^2 L^2); dmu/deta = exp(eta - exp eta)."""

    name = "cloglog"

    def __call__(self, mu):
        return torch.log(-torch.log1p(-mu))

    def inverse(self, eta):
        return -torch.expm1(-torch.exp(eta))

    def deriv(self, mu):
        return 1.0 / ((1.0 - mu) * -torch.log1p(-mu))

    def deriv2(self, mu):
        L = -torch.log1p(-mu)
        return (L - 1.0) / ((1.0 - mu) ** 2 * L * L)

    def inverse_deriv(self, eta):
        return torch.exp(eta - torch.exp(eta))


class Cauchit(Link):
    """eta = tan(pi (mu - 1/2)); mu = 1/2 + atan(eta) / pi; g' = pi (1 + eta^2);
    g'' = 2 pi^2 eta (1 + eta^2)."""

    name = "cauchit"

    def __call__(self, mu):
        return torch.tan(math.pi * (mu - 0.5))

    def inverse(self, eta):
        return 0.5 + torch.atan(eta) / math.pi

    def deriv(self, mu):
        eta = self(mu)
        return math.pi * (1.0 + eta * eta)

    def deriv2(self, mu):
        eta = self(mu)
        return 2.0 * math.pi**2 * eta * (1.0 + eta * eta)

    def inverse_deriv(self, eta):
        return 1.0 / (math.pi * (1.0 + eta * eta))


def _normal_pdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


LINKS: dict[str, type[Link]] = {
    c.name: c for c in (Identity, Log, Inverse, InverseSquared, Sqrt, Logit, Probit, CLogLog, Cauchit)
}


class Family:
    """One exponential family: variance function, unit deviance, log-likelihood and support of y.

    ``links`` lists the allowed link names, the first being the default; ``canonical`` names the canonical
    link (for which the observed and expected information coincide); ``fixed_scale`` is True where the
    dispersion phi is 1 (binomial, Poisson, negative binomial) and False where it is estimated by
    Pearson's chi2 / (n - p). ``params`` names the family's own parameters (negative binomial ``alpha``,
    Tweedie ``var_power``), attributes of the instance.
    """

    name: str = ""
    links: tuple[str, ...] = ()
    canonical: str = ""
    fixed_scale: bool = False
    params: tuple[str, ...] = ()

    def __init__(self, link: str | None = None) -> None:
        self.link: Link = self._make_link(link)

    def _make_link(self, link: str | None) -> Link:
        link = self.links[0] if link is None else link
        if not isinstance(link, str) or link not in self.links:
            raise ConfigError.unknown(f"link (family {self.name!r})", link, self.links)
        return LINKS[link]()

    def with_link(self, link: str) -> Family:
        """A copy with link ``link`` (same family parameters); ``ConfigError`` for a link not allowed."""
        new = copy.copy(self)
        new.link = self._make_link(link)
        return new

    @property
    def is_canonical(self) -> bool:
        return self.link.name == self.canonical

    @property
    def param_values(self) -> dict[str, float]:
        """{name: value} of :attr:`params`."""
        return {k: getattr(self, k) for k in self.params}

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def variance_deriv(self, mu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unit_deviance(self, y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """d(y, mu) with deviance D = sum_i w_i d(y_i, mu_i)."""
        raise NotImplementedError

    def nll(self, eta: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row negative log-likelihood in eta up to terms free of eta (unit scale): d(y, g^-1(eta)) / 2.

        The loss of the ``glm-*`` tasks; binomial with the logit link overrides it by the overflow-free
        softplus(eta) - y eta."""
        return 0.5 * self.unit_deviance(y, self.link.inverse(eta))

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

    def _check(self, y: torch.Tensor, w: torch.Tensor, bad: torch.Tensor, allowed: str) -> None:
        bad = bad & (w > 0)
        if not bool(bad.any()):
            return
        idx = torch.nonzero(bad).flatten()
        first = idx[:5].tolist()
        vals = [float(y[i]) for i in first]
        raise ConfigError(
            f"y is outside the support of family {self.name!r}: {idx.numel()} value(s) not {allowed} "
            f"(first at rows {first}: {vals})"
        )

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.param_values.items())
        return f"{type(self).__name__}(link={self.link.name!r}{args})"


def _positive_mu(mu: torch.Tensor) -> torch.Tensor:
    return mu.clamp_min(_TINY)


class Gaussian(Family):
    """V(mu) = 1; d = (y - mu)^2; ll_i = -(w (y - mu)^2 / phi + log(2 pi phi / w)) / 2."""

    name = "gaussian"
    links = ("identity", "log", "inverse")
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
    With ``counts`` (a two-column response (successes k, failures n - k), y = k / n and the prior weight
    multiplied by n): ll_i = w (y log mu + (1 - y) log(1 - mu)), the log C(n, k) term added by ``fit``.
    """

    name = "binomial"
    links = ("logit", "probit", "cloglog", "log", "cauchit")
    canonical = "logit"
    fixed_scale = True
    eps = float(torch.finfo(torch.float64).eps)

    def __init__(self, link: str | None = None, counts: bool = False) -> None:
        super().__init__(link)
        self.counts = bool(counts)

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

    def nll(self, eta, y):
        """softplus(eta) - y eta for the logit link (d/2 up to s(y), without overflow); d/2 otherwise."""
        if self.link.name == "logit":
            return F.binary_cross_entropy_with_logits(eta, y, reduction="none")
        return super().nll(eta, y)

    def saturated(self, y):
        """s = y log y + (1 - y) log(1 - y): 0 for binary y (checked first: cheaper than the logs)."""
        if not bool(((y > 0) & (y < 1)).any()):
            return torch.zeros_like(y)
        return torch.xlogy(y, y) + torch.xlogy(1.0 - y, 1.0 - y)

    def kernel(self, y, mu):
        """k = y log mu + (1 - y) log(1 - mu), mu clipped into (0, 1)."""
        return y * torch.log(mu) + (1.0 - y) * torch.log1p(-mu)

    def loglike_obs(self, y, mu, w, scale):
        ll = self.kernel(y, mu)
        if not self.counts and bool(((y > 0) & (y < 1)).any()):  # 0 for y in {0, 1}
            ll = ll + (math.lgamma(2.0) - torch.lgamma(y + 1.0) - torch.lgamma(2.0 - y))
        return w * ll

    def check_support(self, y, w):
        self._check(y, w, (y < 0) | (y > 1), "in [0, 1] (binary outcomes or proportions)")


class Poisson(Family):
    """V(mu) = mu, y >= 0; d = 2 (y log(y / mu) - (y - mu)); ll_i = w (y log mu - mu - lgamma(y + 1))."""

    name = "poisson"
    links = ("log", "identity", "sqrt")
    canonical = "log"
    fixed_scale = True

    def variance(self, mu):
        return mu

    def variance_deriv(self, mu):
        return torch.ones_like(mu)

    def clip_mu(self, mu):
        return _positive_mu(mu)

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
        self._check(y, w, y < 0, ">= 0 (counts)")


class Gamma(Family):
    """V(mu) = mu^2, y > 0; d = 2 ((y - mu) / mu - log(y / mu));
    ll_i = (w/phi) log(w y / (phi mu)) - w y / (phi mu) - lgamma(w / phi) - log y."""

    name = "gamma"
    links = ("inverse", "log", "identity")
    canonical = "inverse"

    def variance(self, mu):
        return mu * mu

    def variance_deriv(self, mu):
        return 2.0 * mu

    def clip_mu(self, mu):
        return _positive_mu(mu)

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
        self._check(y, w, y <= 0, "> 0")


class InverseGaussian(Family):
    """V(mu) = mu^3, y > 0; d = (y - mu)^2 / (y mu^2);
    ll_i = -(w (y - mu)^2 / (phi y mu^2) + log(phi y^3 / w) + log(2 pi)) / 2."""

    name = "inverse_gaussian"
    links = ("inverse_squared", "inverse", "log", "identity")
    canonical = "inverse_squared"

    def variance(self, mu):
        return mu * mu * mu

    def variance_deriv(self, mu):
        return 3.0 * mu * mu

    def clip_mu(self, mu):
        return _positive_mu(mu)

    def unit_deviance(self, y, mu):
        return (y - mu) ** 2 / (y * mu * mu)

    def saturated(self, y):
        """s = 1 / (2 y)."""
        return 0.5 / y

    def kernel(self, y, mu):
        """k = 1 / mu - y / (2 mu^2)."""
        return 1.0 / mu - 0.5 * y / (mu * mu)

    def loglike_obs(self, y, mu, w, scale):
        return (
            -(w * (y - mu) ** 2 / (scale * y * mu * mu) + torch.log(scale * y**3 / w) + math.log(2 * math.pi))
            / 2.0
        )

    def check_support(self, y, w):
        self._check(y, w, y <= 0, "> 0")


class NegativeBinomial(Family):
    """NB2 with dispersion ``alpha``: V(mu) = mu + alpha mu^2, y >= 0 (counts); scale fixed at 1.

    d = 2 (y log(y / mu) - (y + 1/alpha) log((y + 1/alpha) / (mu + 1/alpha)));
    ll_i = w (y log(alpha mu) - (y + 1/alpha) log(1 + alpha mu) + lgamma(y + 1/alpha) - lgamma(1/alpha)
    - lgamma(y + 1)) (statsmodels' ``NegativeBinomial`` family, and ``discrete.NegativeBinomial``'s
    NB2 likelihood). ``alpha="ml"`` asks ``fit`` to estimate alpha by maximum likelihood jointly with the
    coefficients (as statsmodels' ``discrete.NegativeBinomial``); it holds the estimate afterwards.
    """

    name = "negative_binomial"
    links = ("log", "identity", "sqrt")
    canonical = "nbinom"  # log(alpha mu / (1 + alpha mu)), not offered: every link here is non-canonical
    fixed_scale = True
    params = ("alpha",)

    def __init__(self, link: str | None = None, alpha: float | str = 1.0) -> None:
        super().__init__(link)
        if alpha != "ml" and (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or not math.isfinite(alpha)
            or alpha <= 0
        ):
            raise ConfigError.invalid(
                "negative_binomial.alpha", alpha, "a finite number > 0, or 'ml' (estimate it)"
            )
        self.estimate_alpha = alpha == "ml"
        self.alpha = 1.0 if self.estimate_alpha else float(alpha)

    def variance(self, mu):
        return mu + self.alpha * mu * mu

    def variance_deriv(self, mu):
        return 1.0 + 2.0 * self.alpha * mu

    def clip_mu(self, mu):
        return _positive_mu(mu)

    def unit_deviance(self, y, mu):
        ia = 1.0 / self.alpha
        return 2.0 * (torch.xlogy(y, y) - torch.xlogy(y, mu) - (y + ia) * torch.log((y + ia) / (mu + ia)))

    def loglike_obs(self, y, mu, w, scale):
        a, ia = self.alpha, 1.0 / self.alpha
        ll = (
            torch.xlogy(y, a * mu)
            - (y + ia) * torch.log1p(a * mu)
            + torch.lgamma(y + ia)
            - math.lgamma(ia)
            - torch.lgamma(y + 1.0)
        )
        return w / scale * ll

    def alpha_derivs(
        self, y: torch.Tensor, mu: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-row (dl/dalpha, d2l/dalpha2, d2l/dmu dalpha) of ll_i / w (for the ML estimate of alpha):

        dl/da = (y - mu) / (a (1 + a mu)) + L / a^2,  L = log(1 + a mu) - psi(y + 1/a) + psi(1/a);
        d2l/da2 = -(y - mu)(1 + 2 a mu) / (a (1 + a mu))^2 + L' / a^2 - 2 L / a^3,
        L' = mu / (1 + a mu) + (psi1(y + 1/a) - psi1(1/a)) / a^2;  d2l/dmu da = -(y - mu) / (1 + a mu)^2
        (psi, psi1: digamma, trigamma)."""
        a = self.alpha
        ia = 1.0 / a
        q = 1.0 + a * mu
        psi_ia, trig_ia = (float(torch.polygamma(k, torch.tensor(ia, dtype=torch.float64))) for k in (0, 1))
        L = torch.log(q) - torch.digamma(y + ia) + psi_ia
        dL = mu / q + (torch.polygamma(1, y + ia) - trig_ia) / (a * a)
        r = y - mu
        d1 = r / (a * q) + L / (a * a)
        d2 = -r * (1.0 + 2.0 * a * mu) / (a * q) ** 2 + dL / (a * a) - 2.0 * L / a**3
        dmu = -r / (q * q)
        return d1, d2, dmu

    def check_support(self, y, w):
        self._check(y, w, y < 0, ">= 0 (counts)")

    def __repr__(self) -> str:
        alpha = "'ml'" if self.estimate_alpha else repr(self.alpha)
        return f"NegativeBinomial(link={self.link.name!r}, alpha={alpha})"


class Tweedie(Family):
    """V(mu) = mu^p (p = ``var_power``; 0 normal, 1 Poisson, 1 < p < 2 compound Poisson-gamma, 2 gamma,
    3 inverse Gaussian); y >= 0 for p < 2, y > 0 for p >= 2.

    d = 2 (y^(2-p) / ((1-p)(2-p)) - y mu^(1-p) / (1-p) + mu^(2-p) / (2-p)) (p not 1 or 2; the Poisson and
    gamma deviances there). ll_i: the Poisson / gamma ones at p = 1, 2; for 1 < p < 2 the series density
    of Dunn & Smyth (2005), log f = (y theta - kappa) w/phi + log W(y) - log y with theta = mu^(1-p)/(1-p),
    kappa = mu^(2-p)/(2-p) and W SciPy's Wright Bessel function (as statsmodels; computed on the CPU by
    ``scipy.special.log_wright_bessel``); NaN for other p (statsmodels too).
    """

    name = "tweedie"
    links = ("log", "identity", "sqrt", "inverse")
    canonical = ""
    params = ("var_power",)

    def __init__(self, link: str | None = None, var_power: float = 1.0) -> None:
        super().__init__(link)
        if (
            isinstance(var_power, bool)
            or not isinstance(var_power, (int, float))
            or not (var_power == 0 or 1 <= var_power <= 10)
        ):
            raise ConfigError.invalid("tweedie.var_power", var_power, "0 or a number in [1, 10]")
        self.var_power = float(var_power)
        self.canonical = "log" if self.var_power == 1 else ("inverse" if self.var_power == 2 else "")

    def variance(self, mu):
        return mu.pow(self.var_power)

    def variance_deriv(self, mu):
        p = self.var_power
        return p * mu.pow(p - 1.0)

    def clip_mu(self, mu):
        return _positive_mu(mu)

    def unit_deviance(self, y, mu):
        p = self.var_power
        if p == 1:
            return Poisson.unit_deviance(self, y, mu)
        if p == 2:
            return Gamma.unit_deviance(self, y, mu)
        return 2.0 * (
            y.pow(2.0 - p) / ((1.0 - p) * (2.0 - p))
            - y * mu.pow(1.0 - p) / (1.0 - p)
            + mu.pow(2.0 - p) / (2.0 - p)
        )

    def loglike_obs(self, y, mu, w, scale):
        p = self.var_power
        if p == 1:
            return Poisson.loglike_obs(self, y, mu, w, scale)
        if p == 2:
            return Gamma.loglike_obs(self, y, mu, w, scale)
        if not 1 < p < 2:
            return torch.full_like(y, float("nan"))
        import numpy as np
        from scipy.special import log_wright_bessel

        phi = scale / w
        ll = (y * mu.pow(1.0 - p) / (1.0 - p) - mu.pow(2.0 - p) / (2.0 - p)) / phi
        pos = y > 0
        a = (2.0 - p) / (1.0 - p)
        yp, phip = y[pos], phi[pos] if phi.ndim else phi
        x = ((p - 1.0) * phip / yp) ** a / ((2.0 - p) * phip)
        lw = torch.from_numpy(np.asarray(log_wright_bessel(-a, 0.0, x.detach().cpu().double().numpy()))).to(y)
        ll = ll.clone()
        ll[pos] = ll[pos] - torch.log(yp) + lw
        return ll

    def check_support(self, y, w):
        if self.var_power >= 2:
            self._check(y, w, y <= 0, f"> 0 (tweedie var_power {self.var_power:g} >= 2)")
        elif self.var_power >= 1:
            self._check(y, w, y < 0, ">= 0")


FAMILIES: dict[str, type[Family]] = {
    c.name: c for c in (Gaussian, Binomial, Poisson, Gamma, InverseGaussian, NegativeBinomial, Tweedie)
}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """The family named ``family`` (or the instance ``family``) with link ``link`` (its default when None;
    a family instance keeps its own link and parameters unless ``link`` is given); ``ConfigError``
    otherwise, listing the family names or the links the family allows."""
    if isinstance(family, Family):
        if link is not None and link != family.link.name:
            return family.with_link(link)
        return family
    if not isinstance(family, str) or family not in FAMILIES:
        raise ConfigError.unknown("family", family, FAMILIES)
    return FAMILIES[family](link)
