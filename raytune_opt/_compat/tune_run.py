"""Ray Tune internals the experiment runner relies on (``raytune_opt.experiment.run``), one function each.

Tested against Ray 2.60; ``tests/compat`` checks each against the installed Ray.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["kill_trial_actor", "result_grid_trials", "tune_quiet_run"]


def result_grid_trials(grid: Any) -> list[Any]:
    """Every ``Trial`` of a ``ResultGrid``, with its status (RUNNING/PENDING after an interrupted fit).

    The public ``ResultGrid`` holds only ``Result`` objects, which carry no status: the private
    ``_experiment_analysis.trials`` is the only place that says a trial was left running or pending
    when ``Tuner.fit`` returned on SIGINT (no upstream accessor; ``ResultGrid`` has no ``trials``).
    """
    analysis = getattr(grid, "_experiment_analysis", None)
    return list(getattr(analysis, "trials", None) or [])


#: seconds between Tune's saves of its experiment state while trials run (Tune's "auto" default is
#: at least 10 s). A driver killed between two saves leaves a state that names older checkpoints, and
#: ``resume`` re-runs the epochs since them: 2 s bounds that work (a save of a few hundred trials'
#: state takes milliseconds); the report counts each epoch once. ``TUNE_GLOBAL_CHECKPOINT_S`` set by
#: the user wins.
STATE_PERIOD_S = 2


@contextlib.contextmanager
def tune_quiet_run() -> Iterator[None]:
    """While ``Tuner.fit`` runs: Tune adds only the loggers the run asked for
    (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``, read when Tune builds its callbacks; without it Tune
    adds CSV, JSON and TensorBoard loggers of its own), and does not warn about the frequency of
    experiment-state syncs (``TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S``: with
    ``run.keep_checkpoints`` = n Tune forces a state snapshot after every n checkpoints, and short
    epochs make the warning noise), and saves its experiment state every :data:`STATE_PERIOD_S`
    (``TUNE_GLOBAL_CHECKPOINT_S``). All are environment switches Tune reads, restored afterwards."""
    switches = {
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TUNE_GLOBAL_CHECKPOINT_S": str(STATE_PERIOD_S),
    }
    before = {k: os.environ.get(k) for k in switches}
    for k, v in switches.items():
        if k == "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" or before[k] is None:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kill_trial_actor(trial: Any) -> bool:
    """Stop a running trial's actor so that Tune sees the trial fail (and retries it per
    ``FailureConfig``); ``False`` when it has none. Tune offers no public way for a callback to fail a
    trial: its actor handle is ``trial.temporary_state.ray_actor`` (private, Ray 2.60)."""
    import ray

    actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
    if actor is None:
        return False
    ray.kill(actor, no_restart=True)
    return True
