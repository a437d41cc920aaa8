"""raytune_opt: tune PyTorch training at scale with Ray.

Packages, one concept each (imports point down this list only):

- ``raytune_opt.optim``  the optimizer zoo (torch only)
- ``raytune_opt.glm``    regression models fitted by IRLS, Newton, LM, BFGS, L-BFGS (optionally over Ray)
- ``raytune_opt.tasks``  datasets and models behind names
- ``raytune_opt.train``  the training loop on Ray Train
- ``raytune_opt.search`` search spaces and strategies on Ray Tune
"""

from raytune_opt.errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__"]
