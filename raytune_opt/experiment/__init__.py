"""An experiment, described once (YAML or Python), validated up front, run on a local Ray or a cluster.

    >>> from raytune_opt import Experiment
    >>> from raytune_opt.experiment import resume_experiment
    >>> tiny = ["search.num_samples=2", "train.epochs=1"]   # --set overrides
    >>> exp = Experiment.from_yaml("examples/strategies/random.yaml", overrides=tiny)
    >>> print(exp.plan())                       # what would run; starts nothing
    experiment 'random' on task 'digits-mlp'
      strategy random: 2 trials, val_accuracy (max), max_t 1 epochs, seed 0
    ...
    >>> result = exp.run(progress=False)        # Tuner.fit on the local Ray (or run.address)
    ╭─────...
    >>> len(result.grid), sorted(result.files)[:2]
    (2, ['best_so_far.png', 'contours.png'])
    >>> result = resume_experiment(result.path, progress=False)  # after a crash, Ctrl-C or a cluster restart
    ╭─────...

One module a concept:

- :mod:`~raytune_opt.experiment.config`   the sections of the description (:class:`Experiment`)
- :mod:`~raytune_opt.experiment.source`   reading the YAML, ``--set`` overrides, errors located in it
- :mod:`~raytune_opt.experiment.plugins`  the ``imports`` (the user's own tasks and optimizers)
- :mod:`~raytune_opt.experiment.plan`     the frozen :class:`Plan`: every check, built once
- :mod:`~raytune_opt.experiment.run`      connect, run, resume, the state file ``experiment.json``
- :mod:`~raytune_opt.experiment.callbacks` ``run.callbacks``: Ray's MLflow / W&B / Comet / Aim loggers
- :mod:`~raytune_opt.experiment.export`   the best model out: its ``state_dict`` and rebuilding config
- :mod:`~raytune_opt.experiment.evaluate` the best configuration on the test split, over seeds
- :mod:`~raytune_opt.experiment.compare`  ``search.compare: optimizers``: a search per optimizer, tested

Every error is one :class:`~raytune_opt.errors.ConfigError` line that says where: the file and line,
the key path, the bad value, what is allowed (and a did-you-mean for near-miss names).
"""

from raytune_opt.experiment.config import Experiment
from raytune_opt.experiment.evaluate import evaluate
from raytune_opt.experiment.export import export_model, write_export
from raytune_opt.experiment.plan import Plan
from raytune_opt.experiment.plugins import import_plugins
from raytune_opt.experiment.run import (
    EXPERIMENT_FILE,
    ExperimentResult,
    connect,
    load_experiment,
    resume_experiment,
    run_experiment,
)
from raytune_opt.experiment.source import apply_overrides

__all__ = [
    "EXPERIMENT_FILE",
    "Experiment",
    "ExperimentResult",
    "Plan",
    "apply_overrides",
    "connect",
    "export_model",
    "evaluate",
    "import_plugins",
    "load_experiment",
    "resume_experiment",
    "run_experiment",
    "write_export",
]
