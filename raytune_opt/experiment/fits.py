"""A search of many trials run as several ``Tuner.fit`` s in turn, one searcher carried through them.

Ray Tune keeps every trial of a ``Tuner.fit`` in the driver until the fit returns (Ray #64231, open):
10 000 trials are 10 000 ``Trial`` objects with their results, every experiment-state snapshot
serialises all of them, and the fit's ``ResultGrid`` reads every trial's results back, so the
driver's memory grows with the number of trials. With ``run.trials_per_fit: n`` (default
:data:`TRIALS_PER_FIT`) a search of more than n trials runs as fits of at most n trials each, into the
same experiment folder:

- the searcher is the same object in every fit (its observations, random streams, a sequence's
  position), so the search suggests what one fit would; only the trial ids' prefixes differ;
- each fit writes its own ``experiment_state-<time>.json`` beside the earlier ones (the report reads
  them all, :mod:`raytune_opt.report.results`), and ``resume`` continues the newest and then runs
  the fits still to come;
- between two fits, the finished fit's trials are dropped and the allocator trimmed
  (:func:`raytune_opt.experiment.driver_memory.malloc_trim`): the driver holds at most n trials.

What it costs: each fit ends once its last trial has ended (the trials of one fit do not overlap
those of the next), and a fit's start and end take Tune a few seconds; with thousands of short
trials per fit that is a few per cent of the run.

Only a search whose whole state is its searcher's is split: a ``ray.tune.search.Searcher`` (random,
sobol, halton, bo, tpe, the optuna samplers …) under Tune's FIFO scheduler. A trial scheduler's
brackets, rungs or population (Hyperband, ASHA, BOHB, PBT, PB2) live in one fit, as do the grid and
Fabolas (``Strategy.fixed_budget``): those always run as one fit.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

from raytune_opt.experiment.driver_memory import malloc_trim
from raytune_opt.storage import ExperimentFolder

__all__ = [
    "TRIALS_PER_FIT",
    "STATE_PATTERN",
    "splittable",
    "next_fit",
    "trial_states",
    "between_fits",
    "result_grid",
    "saved_fit_total",
    "saved_statuses",
]

#: the most trials one ``Tuner.fit`` runs by default (``run.trials_per_fit``): at ~50–70 KB of driver
#: memory a finished trial (benchmarks/results/overhead.md), 2000 trials hold ~0.1 GB
TRIALS_PER_FIT = 2000
#: Tune's saved state of one fit (``TuneController.CKPT_FILE_TMPL``); ``<time>`` is the fit's start
STATE_PATTERN = "experiment_state-*.json"
#: Tune's saved state of one fit's search (``SearchGenerator.CKPT_FILE_TMPL``)
_GENERATOR_PATTERN = "search_gen_state-*.json"
#: the format of ``<time>``: the second the fit started (``TuneController._session_str``)
_STATE_TIME = "%Y-%m-%d_%H-%M-%S"


def splittable(tune_config: Any, fixed_budget: str) -> bool:
    """Whether a search with this ``TuneConfig`` can run as several fits: its search is a
    ``Searcher`` (the whole state there), its scheduler Tune's FIFO one (none of its own), and its
    strategy's budget is not fixed at the start (``fixed_budget`` empty)."""
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import Searcher

    scheduler = tune_config.scheduler
    return (
        not fixed_budget
        and isinstance(tune_config.search_alg, Searcher)
        and (scheduler is None or type(scheduler) is FIFOScheduler)
    )


def next_fit(total: int, created: int, per_fit: int | None) -> int:
    """How many trials the next fit runs, ``created`` of ``total`` made already: up to ``per_fit``
    (``None``: all that are left)."""
    left = max(total - created, 0)
    return left if per_fit is None else min(left, per_fit)


def trial_states(folder: ExperimentFolder, newest_only: bool = False) -> dict[str, dict[str, Any]]:
    """Every trial Tune saved in ``folder``, over all its ``experiment_state-*.json`` (one per fit, and
    one more per restore of a fit; ``newest_only``: the newest file's, what ``Tuner.restore`` reads):
    ``trial_id -> the trial's saved JSON state`` (``status``, ``config`` …), the newest file winning
    for a trial that several name. A file that does not read whole (a copy cut short) is skipped."""
    states: dict[str, dict[str, Any]] = {}
    names = sorted(folder.names(STATE_PATTERN))
    for name in names[-1:] if newest_only else names:
        try:
            data = json.loads(folder.read_text(name) or "")
        except ValueError:
            continue
        for item in data.get("trial_data", []) if isinstance(data, dict) else []:
            try:
                trial = json.loads(item[0])
                states[str(trial["trial_id"])] = trial
            except (TypeError, ValueError, KeyError, IndexError):
                continue
    return states


def saved_statuses(folder: ExperimentFolder) -> dict[str, str]:
    """``trial_id -> status`` in Tune's newest saved state. After a fit that ran to its end every
    trial that ended on its own is saved ``TERMINATED`` (Tune saves once more when all have ended; a
    trial that failed may still read ``RUNNING``: Tune does not save a trial's state again when it
    fails); after an interrupted fit, the trials it stopped are saved as they were before it stopped
    them (``RUNNING``: ``resume`` continues them), though its grid has them ``TERMINATED``."""
    return {k: t.get("status", "") for k, t in trial_states(folder, newest_only=True).items()}


def saved_fit_total(folder: ExperimentFolder) -> int | None:
    """The trials the newest fit was to run, as Tune saved its search (``search_gen_state-*.json``, a
    cloudpickle despite its name: ``total_samples``); ``None`` for a remote folder or when there is
    none. ``Tuner.restore`` runs that fit to this total, whatever the restored
    ``TuneConfig.num_samples`` says."""
    if folder.remote:
        return None
    names = sorted(Path(folder.path).glob(_GENERATOR_PATTERN))
    if not names:
        return None
    import ray.cloudpickle as cloudpickle

    with open(names[-1], "rb") as f:
        total = cloudpickle.load(f).get("total_samples")
    return total if isinstance(total, int) else None


def between_fits(folder: ExperimentFolder) -> None:
    """After a fit, before the next: the finished fit's objects collected and the freed memory
    returned to the system; then, when the newest saved state was started in this second, a wait for
    the next one — each fit's state file is named after the second it started, and ``resume`` reads
    the greatest name."""
    gc.collect()
    malloc_trim()
    names = folder.names(STATE_PATTERN)
    newest = max(names) if names else ""
    while STATE_PATTERN.replace("*", time.strftime(_STATE_TIME)) <= newest:
        time.sleep(0.05)


def result_grid(folder: ExperimentFolder, metric: str | None, mode: str | None) -> Any:
    """Ray's ``ResultGrid`` of every trial of every fit in ``folder`` (a trial that several states name
    as the newest of them has it), as ``Tuner.fit`` returns for one fit: read from the folder (every
    trial's results), so it costs what one fit of all the trials would hold in memory."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    trials: dict[str, Any] = {}
    for name in sorted(folder.names(STATE_PATTERN)):
        analysis = ExperimentAnalysis(f"{folder.path}/{name}", default_metric=metric, default_mode=mode)
        trials.update((t.trial_id, t) for t in analysis.trials)
    return ResultGrid(
        ExperimentAnalysis(
            folder.path, trials=list(trials.values()), default_metric=metric, default_mode=mode
        )
    )
