"""Generalized linear models as tasks: a linear predictor η = Xβ + b, its family's negative
log-likelihood as the loss and the residuals μ − y for least-squares solvers (``lm``).

Families (link g, mean μ = g⁻¹(η), per-sample negative log-likelihood up to terms free of η,
unit deviance d(y, μ)):

- gaussian, identity:  μ = η,      ℓ = ½ (y − μ)²,            d = (y − μ)²
- binomial, logit:     μ = σ(η),   ℓ = log(1 + e^η) − y η,     d = 2 ℓ
- poisson, log:        μ = e^η,    ℓ = e^η − y η,              d = 2 (y log(y/μ) − (y − μ))
- gamma, log:          μ = e^η,    ℓ = y e^{−η} + η,           d = 2 (−log(y/μ) + (y − μ)/μ)

Tasks: ``glm-gaussian`` (scikit-learn's diabetes data), ``glm-logistic`` (metric ``val_accuracy``),
``glm-poisson`` and ``glm-gamma`` (generated from a known β with standard-normal features; the
others' metric is ``val_deviance``, the mean unit deviance). Features are standardised with the
training set's mean and standard deviation. (Generated rather than a bundled classification set:
scikit-learn's breast-cancer data is completely separable, so its logistic MLE does not exist.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from raytune_opt.tasks.models import LinearPredictor
from raytune_opt.tasks.registry import Metric, TaskSpec, register_task
from raytune_opt.tasks.subset import stratified_subset

__all__ = ["Family", "FAMILIES", "glm_task"]


def _xlogy_ratio(y: Tensor, mu: Tensor) -> Tensor:
    """y · log(y/μ) with 0 · log 0 = 0."""
    return torch.xlogy(y, y) - y * torch.log(mu)


@dataclass(frozen=True)
class Family:
    """A GLM family: inverse link μ(η), mean negative log-likelihood ℓ(η, y) and unit deviance d(y, μ)."""

    name: str
    mean: Callable[[Tensor], Tensor]
    nll: Callable[[Tensor, Tensor], Tensor]
    deviance: Callable[[Tensor, Tensor], Tensor]

    def loss(self, eta: Tensor, y: Tensor) -> Tensor:
        """Mean negative log-likelihood over the samples."""
        return self.nll(eta, y).mean()

    def residuals(self, eta: Tensor, y: Tensor) -> Tensor:
        """r = μ(η) − y (prediction − observed)."""
        return self.mean(eta) - y

    def deviance_total(self, eta: Tensor, y: Tensor) -> Tensor:
        """Σ d(y, μ(η)) over the samples."""
        return self.deviance(y, self.mean(eta)).sum()


FAMILIES: dict[str, Family] = {
    "gaussian": Family("gaussian", lambda e: e, lambda e, y: 0.5 * (y - e) ** 2, lambda y, mu: (y - mu) ** 2),
    "binomial": Family(
        "binomial",
        torch.sigmoid,
        lambda e, y: F.binary_cross_entropy_with_logits(e, y, reduction="none"),
        lambda y, mu: -2.0 * (torch.xlogy(y, mu) + torch.xlogy(1 - y, 1 - mu)),
    ),
    "poisson": Family(
        "poisson",
        torch.exp,
        lambda e, y: torch.exp(e) - y * e,
        lambda y, mu: 2.0 * (_xlogy_ratio(y, mu) - (y - mu)),
    ),
    "gamma": Family(
        "gamma",
        torch.exp,
        lambda e, y: y * torch.exp(-e) + e,
        lambda y, mu: 2.0 * (-torch.log(y / mu) + (y - mu) / mu),
    ),
}


def _binary_correct(eta: Tensor, y: Tensor) -> Tensor:
    return ((eta > 0) == (y > 0.5)).sum()


BINARY_ACCURACY = Metric("accuracy", "max", _binary_correct)


def _standardise(x: np.ndarray, train: np.ndarray) -> tuple[Tensor, Tensor]:
    mu, sd = x[train].mean(0), x[train].std(0)
    z = torch.from_numpy((x - mu) / np.where(sd > 0, sd, 1.0)).float()
    return z[torch.from_numpy(train)], z[torch.from_numpy(~train)]


@functools.lru_cache(maxsize=8)
def _data(name: str, num_samples: int, num_features: int, data_seed: int) -> tuple[Tensor, ...]:
    rng = np.random.default_rng(data_seed)
    if name == "gaussian":
        from sklearn.datasets import load_diabetes

        d = load_diabetes()
        x, y = d.data, (d.target - d.target.mean()) / d.target.std()
    else:
        x = rng.standard_normal((num_samples, num_features))
        beta = rng.normal(0.0, (3.0 if name == "binomial" else 0.5) / np.sqrt(num_features), num_features)
        eta = x @ beta + {"binomial": 0.0, "poisson": 0.5, "gamma": 1.0}[name]
        if name == "binomial":
            y = (rng.random(num_samples) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
        elif name == "poisson":
            y = rng.poisson(np.exp(eta)).astype(np.float64)
        else:
            y = rng.gamma(2.0, np.exp(eta) / 2.0)
    yt = torch.from_numpy(y).float()
    train = np.zeros(len(y), dtype=bool)
    train[stratified_subset(yt, 0.8, seed=data_seed, stratify=name == "binomial").numpy()] = True
    xtr, xva = _standardise(x, train)
    return xtr, yt[torch.from_numpy(train)], xva, yt[torch.from_numpy(~train)]


def glm_task(family: str, num_samples: int = 2000, num_features: int = 10, data_seed: int = 0) -> TaskSpec:
    """The GLM task of ``family`` (see the module docstring for its data)."""
    fam = FAMILIES[family]
    x, y, xv, yv = _data(family, num_samples, num_features, data_seed)
    metric = BINARY_ACCURACY if family == "binomial" else Metric("deviance", "min", fam.deviance_total)
    return TaskSpec(
        train=(x, y),
        val=(xv, yv),
        model=LinearPredictor(x.shape[1]),
        loss=fam.loss,
        metric=metric,
        num_classes=2 if family == "binomial" else None,
        residuals=fam.residuals,
        glm_family=family,
    )


@register_task("glm-logistic", _builtin=True)
def glm_logistic(num_samples: int = 2000, num_features: int = 10, data_seed: int = 0) -> TaskSpec:
    """Logistic regression (binomial, logit) on 0/1 outcomes generated from a known β."""
    return glm_task("binomial", num_samples, num_features, data_seed)


@register_task("glm-gaussian", _builtin=True)
def glm_gaussian(data_seed: int = 0) -> TaskSpec:
    """Linear regression (gaussian, identity) on scikit-learn's diabetes data (442 × 10)."""
    return glm_task("gaussian", data_seed=data_seed)


@register_task("glm-poisson", _builtin=True)
def glm_poisson(num_samples: int = 2000, num_features: int = 10, data_seed: int = 0) -> TaskSpec:
    """Poisson regression (log link) on counts generated from a known β."""
    return glm_task("poisson", num_samples, num_features, data_seed)


@register_task("glm-gamma", _builtin=True)
def glm_gamma(num_samples: int = 2000, num_features: int = 10, data_seed: int = 0) -> TaskSpec:
    """Gamma regression (log link, shape 2) on positive responses generated from a known β."""
    return glm_task("gamma", num_samples, num_features, data_seed)
