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

from typing import Any

from raytune_opt.errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "Experiment", "run_experiment", "resume_experiment", "__version__"]

_EXPERIMENT = ("Experiment", "run_experiment", "resume_experiment")


def __getattr__(name: str) -> Any:
    """``raytune_opt.Experiment`` and friends, imported on first use (Ray workers that only train never
    pay for pydantic and the runner)."""
    if name in _EXPERIMENT:
        from raytune_opt import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module 'raytune_opt' has no attribute {name!r}")
