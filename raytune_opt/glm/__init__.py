"""Generalized and robust regression and non-linear least squares by the seed's second-order methods.

- :func:`fit` — GLMs (gaussian, binomial, poisson, gamma, inverse_gaussian, negative_binomial, tweedie;
  links in ``LINKS``) by ``irls``, ``newton``, ``irls-lm``, ``lm``,
  ``bfgs``, ``lbfgs``; robust linear regression (``robust=`` huber, bisquare, l1, cauchy, seed,
  hampel, andrew, trimmed); an L2
  penalty ``alpha``; rows sharded over Ray actors with ``num_workers``.
- :func:`curve_fit` — non-linear least squares with the model written in torch (SciPy's signature;
  :class:`CurveFitWarning` for a covariance that cannot be estimated).
- :func:`free_buffers` — release the scratch buffer that CPU fits keep for the next fit.

Imports point down the architecture: this package uses ``raytune_opt.optim``, torch and (lazily) Ray.
"""

from raytune_opt.glm import families as _families
from raytune_opt.glm import robust as _robust
from raytune_opt.glm.curve_fit import CURVE_FIT_METHODS, CurveFitResult, CurveFitWarning, curve_fit
from raytune_opt.glm.families import *  # noqa: F403 - the names of families.__all__ (declared there once)
from raytune_opt.glm.fit import COV_TYPES, METHODS, GLMConvergenceWarning, GLMResult, fit
from raytune_opt.glm.robust import *  # noqa: F403 - the names of robust.__all__ (declared there once)
from raytune_opt.glm.shard import free_buffers

__all__ = [
    "fit",
    "curve_fit",
    "CurveFitResult",
    "CurveFitWarning",
    "CURVE_FIT_METHODS",
    "GLMResult",
    "GLMConvergenceWarning",
    "METHODS",
    "COV_TYPES",
    *_families.__all__,
    *_robust.__all__,
    "free_buffers",
]
