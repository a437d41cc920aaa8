"""Ray Tune internals that :mod:`raytune_opt.search` and :mod:`raytune_opt.experiment` need (tested
against Ray 2.60).

Functions for the privates of objects we do not own (a bracket, a trial, an experiment list);
tuples naming the inherited private attributes and hooks that our scheduler and searcher
subclasses read or override (``self._trial_state`` ...: the subclass API Ray's own subclasses
use), so that ``tests/compat/test_compat.py`` proves each still exists with the signature we call.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Any

import raytune_opt._compat  # noqa: F401 - the tested-version check

__all__ = [
    "BRACKET_MEMBERS",
    "BRACKET_PRIVATES",
    "HYPERBAND_HOOKS",
    "bracket_class",
    "HYPERBAND_PRIVATES",
    "ASHA_PRIVATES",
    "ASHA_BRACKET_PRIVATES",
    "PBT_PRIVATES",
    "PB2_PRIVATES",
    "SEARCHER_PRIVATES",
    "bracket_counters",
    "bracket_members",
    "convert_to_experiment_list",
    "drop_metric_windows",
    "STATE_PERIOD_S",
    "LARGE_RUN_TRIALS",
    "kill_trial_actor",
    "named_function_trainable",
    "job_placement_groups",
    "remove_placement_groups",
    "result_grid_trials",
    "restored_tune_config",
    "tune_run_environment",
    "latest_checkpoint_result",
    "new_bracket",
    "saving_checkpoint",
    "set_bracket_members",
]

# ------------------------------------------------------------------ Hyperband's brackets
#: the members of a ``ray.tune.schedulers.hyperband._Bracket``: every trial in rank order, the live
#: ones with their last result, the ones to unpause after the halving
BRACKET_MEMBERS = ("_all_trials", "_live_trials", "trials_to_unpause")


def bracket_counters(bracket: Any) -> dict[str, Any]:
    """A bracket's counters and settings (its ``vars`` less its members): picklable, no trial."""
    # workaround https://github.com/ray-project/ray/issues/30838: Tune saves no scheduler state
    return {k: v for k, v in vars(bracket).items() if k not in BRACKET_MEMBERS}


def bracket_class() -> type:
    """Ray's private ``_Bracket``, which ``schedulers._PaperBracket`` subclasses: Ray's bracket keeps
    ``ceil(n/η)`` trials per rung and counts only its live members, so finished trials reopen it and
    it is halved before it is filled; the subclass keeps Li et al.'s counts (no upstream issue found
    for either; ``HyperBandScheduler`` has no hook to choose another bracket but ``_create_bracket``)."""
    from ray.tune.schedulers.hyperband import _Bracket

    return _Bracket


#: the private attributes of ``_Bracket`` that ``schedulers._PaperBracket`` reads and writes
BRACKET_PRIVATES = ("_n", "_n0", "_r", "_r0", "_cumul_r", "_halves", "_eta", "_max_t_attr")


def new_bracket(counters: dict[str, Any], cls: type | None = None) -> Any:
    """A bracket (of ``cls``, default Ray's ``_Bracket``) with the saved ``counters`` and no member
    yet (Ray's ``_Bracket`` computes its counters in ``__init__``; restoring them needs an instance
    made without it)."""
    cls = cls or bracket_class()
    # workaround https://github.com/ray-project/ray/issues/30838: Tune saves no scheduler state
    bracket = cls.__new__(cls)
    vars(bracket).update(counters)
    bracket._all_trials, bracket._live_trials, bracket.trials_to_unpause = [], {}, set()
    return bracket


def bracket_members(bracket: Any) -> tuple[list[Any], dict[Any, dict | None], set[Any]]:
    """``(all trials in rank order, live trial → its last result or None, trials to unpause)``:
    the containers themselves (a bracket has no public accessor for them)."""
    # workaround https://github.com/ray-project/ray/issues/30838: Tune saves no scheduler state
    return bracket._all_trials, bracket._live_trials, bracket.trials_to_unpause


def set_bracket_members(bracket: Any, all_trials: list[Any], live_trials: dict[Any, dict | None]) -> None:
    """Put the members of a restored bracket back, in rank order."""
    # workaround https://github.com/ray-project/ray/issues/30838: Tune saves no scheduler state
    bracket._all_trials = all_trials
    bracket._live_trials = live_trials


#: inherited attributes of ``HyperBandScheduler`` / ``HyperBandForBOHB`` that ``ResumableHyperBand``
#: reads and writes to save and load its brackets (ray-project/ray#30838)
HYPERBAND_PRIVATES = (
    "_hyperbands",
    "_state",
    "_trial_info",
    "_num_stopped",
    "_time_attr",
    "_metric",
    "_eta",
    "_s_max_1",
    "_max_t_attr",
    "_get_n0",
    "_get_r0",
    "_stop_last_trials",
)
#: ``HyperBandScheduler``'s private hooks that ``ResumableHyperBand`` overrides, with their parameters:
#: ``_create_bracket`` builds Li et al.'s brackets, ``_unpause_trial`` tells the searcher that a paused
#: trial runs again (as Ray's ``HyperBandForBOHB`` does; no upstream issue found)
HYPERBAND_HOOKS = {
    "_create_bracket": ("self", "s"),
    "_unpause_trial": ("self", "tune_controller", "trial"),
}

# ------------------------------------------------------------------ PBT / PB2
#: inherited attributes of ``PopulationBasedTraining`` that ``SeededPBT``/``SeededPB2`` save and load
#: (ray-project/ray#30838) or read for the synchronous mode after a restore (ray-project/ray#48616)
#: attributes of ``AsyncHyperBandScheduler`` (ASHA) that ``ResumableASHA`` saves and loads: its
#: brackets, trial id → bracket, the stop count (Ray pickles them in ``save``, which Tune never calls)
ASHA_PRIVATES = ("_brackets", "_trial_info", "_num_stopped")
#: an ASHA ``_Bracket``'s rungs: ``[(milestone, {trial_id: metric_op · metric}), ...]``, highest first
ASHA_BRACKET_PRIVATES = ("_rungs",)

PBT_PRIVATES = (
    "_trial_state",
    "_synch",
    "_next_perturbation_sync",
    "_num_checkpoints",
    "_num_perturbations",
    "_time_attr",
)
#: PBT's private hooks that ``SeededPBT`` overrides, each with the parameters it is called with:
#: the donor and explore steps run on seeded streams (no upstream issue found: Ray's PBT draws
#: from the global ``random``/``numpy.random`` streams and offers no seed)
PBT_HOOKS = {
    "_checkpoint_or_exploit": ("self", "trial", "tune_controller", "upper_quantile", "lower_quantile"),
    "_get_new_config": ("self", "trial", "trial_to_clone"),
}
#: PB2's data that ``SeededPB2`` saves with its state (ray-project/ray#30838)
PB2_PRIVATES = ("data", "current", "last_exploration_time")

# ------------------------------------------------------------------ trials


def saving_checkpoint(trial: Any) -> Any:
    """The checkpoint a trial is saving now (a future result; ``None`` when none): the donor
    checkpoint of a trial whose pause is in flight at a synchronous PBT sync."""
    # workaround https://github.com/ray-project/ray/issues/57906 (its fix, PR #61448, is not in 2.60)
    return trial.temporary_state.saving_to


def _metric_window(n_steps: tuple[int, ...]) -> dict[str, Any]:
    return {str(n): deque(maxlen=n) for n in n_steps}


def drop_metric_windows(trial: Any) -> None:
    """Free what a finished trial keeps only to report more: Tune's window of the last 5 and 10 values
    of every metric (``_TrainingRunMetadata.metric_n_steps``, two deques per metric: about half of
    a trial's Python memory in the driver in Ray 2.60, which keeps every finished trial).
    ``metric_analysis`` (max, min, avg, last, last-5/10-avg) stays. Should the trial report again, a
    metric's window starts afresh instead of raising."""
    # workaround https://github.com/ray-project/ray/issues/64231: the driver keeps every finished trial
    meta = trial.run_metadata
    meta.metric_n_steps = defaultdict(functools.partial(_metric_window, tuple(meta._n_steps)))


def latest_checkpoint_result(trial: Any) -> Any:
    """The trial's own latest reported checkpoint result (``.checkpoint``, ``.metrics``) or ``None``
    (not the checkpoint it was restored from: ``Trial.latest_checkpoint_result`` falls back to it)."""
    # workaround https://github.com/ray-project/ray/issues/30838: a restored PBT donor needs its own
    # latest checkpoint back; it is kept only by the trial's private _CheckpointManager
    return trial.run_metadata.checkpoint_manager.latest_checkpoint_result


# ------------------------------------------------------------------ searchers
#: attributes of ``ray.tune.search.Searcher`` that our searchers set in ``set_search_properties``
#: (as Ray's own searchers do; the public ``metric``/``mode`` properties are read-only)
SEARCHER_PRIVATES = ("_metric", "_mode")


def convert_to_experiment_list(experiments: Any) -> list[Any]:
    """Ray's normalisation of what ``SearchAlgorithm.add_configurations`` receives into a list of
    ``Experiment`` s."""
    # no upstream issue found: PresetGenerator overrides BasicVariantGenerator.add_configurations
    # (one trial per preset configuration) and must read its argument as Ray's own code does
    from ray.tune.experiment.experiment import _convert_to_experiment_list

    return _convert_to_experiment_list(experiments)


# ------------------------------------------------------------------ experiments (for raytune_opt.experiment)
def result_grid_trials(grid: Any) -> list[Any]:
    """The ``Trial`` objects behind a ``ResultGrid`` (with their status: ``RUNNING``/``PENDING`` ones
    tell an interrupted ``Tuner.fit``); ``[]`` when it has none."""
    # no upstream issue found: ResultGrid exposes results, not trials or their status; an
    # interrupted fit is told apart from a finished one by the trials still running or pending
    analysis = getattr(grid, "_experiment_analysis", None)
    return list(getattr(analysis, "trials", None) or [])


def restored_tune_config(tuner: Any) -> Any:
    """The ``TuneConfig`` a restored ``Tuner`` will run with (read from ``tuner.pkl``): its
    ``search_alg`` and ``max_concurrent_trials`` may be replaced before ``fit``. ``None`` for a
    Tuner in Ray Client mode (``ray://``), whose TunerInternal lives on the cluster."""
    # no upstream issue found: Tuner.restore takes no TuneConfig (only trainable, param_space and
    # resume flags), and a restored run's num_samples cannot be raised through any public API
    local = getattr(tuner, "_local_tuner", None)
    return None if local is None else local._tune_config


#: seconds between Tune's saves of its experiment state while trials run (Tune's "auto" default is
#: at least 10 s). A driver killed between two saves leaves a state that names older checkpoints, and
#: ``resume`` re-runs the epochs since them: 2 s bounds that work (a save of a few hundred trials'
#: state takes milliseconds); the report counts each epoch once. ``TUNE_GLOBAL_CHECKPOINT_S`` set by
#: the user wins.
STATE_PERIOD_S = 2
#: above this many trials, Tune's own "auto" period instead (at least 10 s, and 19× the last save's
#: time: saves stay under 5 % of the run). Each save writes every trial's state and the searcher's
#: history, so its time grows with the trials: at 1500 no-op trials a fixed 2 s spent a quarter of
#: the driver's loop saving (17.6 trials/s with "auto" against 13.8, raw Tune 19.3; benchmarks/overhead.py).
#: A resume after a kill still continues each trial from its newest checkpoint on disk.
LARGE_RUN_TRIALS = 500


@contextlib.contextmanager
def tune_run_environment(trials: int | None = None) -> Iterator[None]:
    """While ``Tuner.fit`` runs, three documented Tune environment switches (no API argument does
    these; each read when the run starts), put back afterwards (``trials``: the run's number of
    trials, when known):

    - ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``: Tune adds only the loggers the run asked for (it would
      add CSV, JSON and TensorBoard loggers of its own);
    - ``TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S=0`` (unless the user set it):
      ``CheckpointConfig(num_to_keep=n)`` forces a snapshot after every n checkpoints of a trial, and
      for short epochs the warning about it is noise;
    - ``TUNE_GLOBAL_CHECKPOINT_S`` = :data:`STATE_PERIOD_S`, or ``auto`` for more than
      :data:`LARGE_RUN_TRIALS` trials (unless the user set it).
    """
    period = "auto" if trials is not None and trials > LARGE_RUN_TRIALS else str(STATE_PERIOD_S)
    switches = {
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TUNE_GLOBAL_CHECKPOINT_S": period,
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
    trial (no upstream issue found): its actor handle is ``trial.temporary_state.ray_actor``."""
    import ray

    actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
    if actor is None:
        return False
    ray.kill(actor, no_restart=True)
    return True


def named_function_trainable(fn: Any, name: str) -> type:
    """``fn`` as the class Tune builds from a function trainable (``wrap_function``: its resource
    request and ``default_resource_request`` kept), named ``name``: Ray's dashboard lists actors by
    class ``__qualname__`` (Tune's own class is the anonymous ``ImplicitFunc`` for every function) and
    by ``repr``, here ``name[<experiment>]``. Trial folders keep Tune's ``<name>_<trial id>`` names."""
    # no upstream issue found: wrap_function is a DeveloperAPI, and Tune names no trial actor
    from ray.tune.trainable.function_trainable import wrap_function

    base = wrap_function(fn, name=name)

    def actor_repr(self: Any) -> str:  # computed once, when Ray starts the actor
        storage = getattr(self, "_storage", None)
        experiment = getattr(storage, "experiment_dir_name", None)
        return f"{name}[{experiment}]" if experiment else name

    return type(name, (base,), {"__repr__": actor_repr, "__qualname__": name, "__doc__": fn.__doc__})


def job_placement_groups() -> set[str]:
    """The ids (hex) of the placement groups this driver's job created that are not removed: Tune's
    trials hold their resources in them (and a trial's Ray Train workers in theirs)."""
    import ray

    # no upstream issue found: placement_group_table() names no creator; a PlacementGroupID ends
    # with the JobID of the job that created it (PlacementGroupID::Of in Ray's id.h)
    job = ray.get_runtime_context().get_job_id()
    return {
        pg_id
        for pg_id, info in ray.util.placement_group_table().items()
        if pg_id.endswith(job) and info.get("state") != "REMOVED"
    }


def remove_placement_groups(pg_ids: set[str]) -> None:
    """Remove the placement groups ``pg_ids`` (hex), which stops every actor and task in them."""
    import ray
    from ray.util.placement_group import PlacementGroup

    for pg_id in pg_ids:
        # workaround: Tune removes its trials' placement groups only when its loop ends or raises an
        # Exception; a KeyboardInterrupt (a second Ctrl-C) or another BaseException leaves them
        # reserved, with the trials' actors, until the driver exits (no upstream issue found)
        ray.util.remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id))))
