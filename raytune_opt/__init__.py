"""raytune_opt: tune PyTorch training at scale with Ray.

Packages, one concept each (imports point down this list only):

- ``raytune_opt.optim``  the optimizer zoo (torch only)
- ``raytune_opt.glm``    regression models fitted by IRLS, Newton, LM, BFGS, L-BFGS (optionally over Ray)
- ``raytune_opt.tasks``  datasets and models behind names
- ``raytune_opt.train``  the training loop on Ray Train
- ``raytune_opt.search`` search spaces and strategies on Ray Tune
- ``raytune_opt.report``     reading an experiment folder: summary, tables, plots (pandas, matplotlib only)
- ``raytune_opt.experiment`` the experiment description (YAML or Python) and its run/resume
- ``raytune_opt.cli``        the ``raytune-opt`` command
"""

from raytune_opt.errors import ConfigError
from raytune_opt.experiment import Experiment, resume_experiment, run_experiment

__version__ = "0.1.0"
__all__ = ["ConfigError", "Experiment", "run_experiment", "resume_experiment", "__version__"]
