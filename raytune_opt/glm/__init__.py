"""Generalized and robust regression and non-linear least squares by the seed's second-order methods.

- :func:`fit` — GLMs (gaussian, binomial, poisson, gamma, inverse_gaussian, negative_binomial, tweedie;
  links in ``LINKS``) by ``irls``, ``newton``, ``irls-lm``, ``lm``,
  ``bfgs``, ``lbfgs``; robust linear regression (``robust=`` huber, bisquare, l1, cauchy, seed,
  hampel, andrew, trimmed); an L2
  penalty ``alpha``; rows sharded over Ray actors with ``num_workers``.
- :func:`curve_fit` — non-linear least squares with the model written in torch.
- :func:`free_buffers` — release the scratch buffer that CPU fits keep for the next fit.

Imports point down the architecture: this package uses ``raytune_opt.optim``, torch and (lazily) Ray.
"""

from raytune_opt.glm.curve_fit import CURVE_FIT_METHODS, CurveFitResult, curve_fit
from raytune_opt.glm.families import (
    FAMILIES,
    LINKS,
    Binomial,
    Family,
    Gamma,
    Gaussian,
    InverseGaussian,
    Link,
    NegativeBinomial,
    Poisson,
    Tweedie,
    get_family,
)
from raytune_opt.glm.fit import COV_TYPES, METHODS, GLMConvergenceWarning, GLMResult, fit
from raytune_opt.glm.robust import (
    L1,
    NORMS,
    AndrewWave,
    Cauchy,
    Hampel,
    HuberScale,
    HuberT,
    Norm,
    Seed,
    TrimmedMean,
    TukeyBiweight,
    get_norm,
)
from raytune_opt.glm.shard import free_buffers

__all__ = [
    "fit",
    "curve_fit",
    "CurveFitResult",
    "CURVE_FIT_METHODS",
    "GLMResult",
    "GLMConvergenceWarning",
    "METHODS",
    "COV_TYPES",
    "FAMILIES",
    "LINKS",
    "Family",
    "Link",
    "get_family",
    "Gaussian",
    "Binomial",
    "Poisson",
    "Gamma",
    "InverseGaussian",
    "NegativeBinomial",
    "Tweedie",
    "NORMS",
    "Norm",
    "HuberT",
    "TukeyBiweight",
    "Cauchy",
    "L1",
    "Seed",
    "Hampel",
    "AndrewWave",
    "TrimmedMean",
    "HuberScale",
    "get_norm",
    "free_buffers",
]
