"""Generalized linear models as tasks: a linear predictor η = Xβ + b, its family's negative
log-likelihood as the loss and the residuals μ − y for least-squares solvers (``lm``).

The families are ``raytune_opt.glm.families`` (the one definition, shared with ``glm.fit`` and the
GLM solvers of the training loop): the loss is the mean of :meth:`Family.nll` (the unit deviance / 2,
softplus(η) − yη for logistic regression), the ``val_deviance`` metric Σ d(y, μ). Each task's family
and link (``TASK_FAMILIES``; gamma with the log link, not its canonical inverse) is the
``TaskSpec.glm_family`` the GLM solvers fit.

Tasks: ``glm-gaussian`` (scikit-learn's diabetes data), ``glm-logistic`` (metric ``val_accuracy``),
``glm-poisson`` and ``glm-gamma`` (generated from a known β with standard-normal features; the
others' metric is ``val_deviance``, the mean unit deviance). Features are standardised with the
training set's mean and standard deviation. (Generated rather than a bundled classification set:
scikit-learn's breast-cancer data is completely separable, so its logistic MLE does not exist.)
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from raytune_opt.glm.families import Family, get_family
from raytune_opt.tasks.models import LinearPredictor
from raytune_opt.tasks.registry import Metric, TaskSpec, register_task
from raytune_opt.tasks.subset import stratified_subset

__all__ = ["TASK_FAMILIES", "glm_task"]

#: the family and link of each GLM task
TASK_FAMILIES: dict[str, Family] = {
    "gaussian": get_family("gaussian", "identity"),
    "binomial": get_family("binomial", "logit"),
    "poisson": get_family("poisson", "log"),
    "gamma": get_family("gamma", "log"),
}


def _loss(fam: Family, eta: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood over the samples (up to terms free of η)."""
    return fam.nll(eta, y).mean()


def _residuals(fam: Family, eta: Tensor, y: Tensor) -> Tensor:
    """r = μ(η) − y (prediction − observed)."""
    return fam.link.inverse(eta) - y


def _deviance_total(fam: Family, eta: Tensor, y: Tensor) -> Tensor:
    """Σ d(y, μ(η)) over the samples."""
    return fam.unit_deviance(y, fam.link.inverse(eta)).sum()


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
    fam = TASK_FAMILIES[family]
    x, y, xv, yv = _data(family, num_samples, num_features, data_seed)
    deviance = functools.partial(_deviance_total, fam)
    metric = BINARY_ACCURACY if family == "binomial" else Metric("deviance", "min", deviance)
    return TaskSpec(
        train=(x, y),
        val=(xv, yv),
        model=LinearPredictor(x.shape[1]),
        loss=functools.partial(_loss, fam),
        metric=metric,
        num_classes=2 if family == "binomial" else None,
        residuals=functools.partial(_residuals, fam),
        glm_family=fam,
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
