"""Trials that hang are failed, with the reason, and the experiment goes on.

A trial that sleeps forever (a deadlocked data loader, a collective waiting on a dead peer) would keep
an experiment running indefinitely: Tune has no per-trial timeout. :class:`TrialWatchdog`, a Tune
callback the runner adds when ``run.trial_timeout_s`` or ``run.stall_factor`` is set, checks every
running trial at each step of Tune's loop:

- ``trial_timeout_s``: the trial has run longer than this since it (re)started;
- ``stall_factor``: no report for ``stall_factor`` × the median time between reports seen so far
  (over all trials, once at least :data:`MIN_INTERVALS` were seen).

Such a trial's actor is stopped (``ray.kill``): Tune sees the trial fail and retries it from its last
checkpoint ``run.max_failures`` times, then records it as failed. The reason is written to
``watchdog.json`` in the experiment folder (``{trial_id: reason}``), which the report shows as the
trial's error. A trial waiting for resources has not started: its wait is not counted.

:class:`BudgetStop` records the trials that ``search.time_budget_s`` cut short: Tune stops every
running trial when the budget is spent and marks it TERMINATED, as it does a trial that ran its
epochs; their ids go to ``stopped.json``, and the report counts them "stopped", not "finished".
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raytune_opt._compat import ray_tune as _compat
from raytune_opt.report.results import STOPPED_FILE, WATCHDOG_FILE

__all__ = ["TrialWatchdog", "BudgetStop", "REASONS_FILE", "STOPPED_FILE", "MIN_INTERVALS"]

#: the file in the experiment folder that names why the watchdog stopped a trial
REASONS_FILE = WATCHDOG_FILE
#: reports between which the median interval is taken before the stall test applies
MIN_INTERVALS = 3


class TrialWatchdog(Callback):
    """Fails running trials past ``timeout_s`` or stalled for ``stall_factor`` × the median report
    interval; reasons go to ``folder / REASONS_FILE``. ``clock`` is injectable for tests."""

    def __init__(
        self,
        folder: str | Path | None,
        timeout_s: float | None = None,
        stall_factor: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.timeout_s = timeout_s
        self.stall_factor = stall_factor
        self.clock = clock
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.intervals: list[float] = []
        self.reasons: dict[str, str] = {}
        self._stopped: set[tuple[str, float]] = set()

    def _begin(self, trial: Any) -> None:
        now = self.clock()
        self.started[trial.trial_id] = self.last[trial.trial_id] = now

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._begin(trial)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._begin(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        now = self.clock()
        before = self.last.get(trial.trial_id)
        if before is not None:
            self.intervals.append(now - before)
        self.last[trial.trial_id] = now

    def reason(self, trial_id: str, now: float) -> str | None:
        """Why the trial should be stopped now, or ``None``."""
        started = self.started.get(trial_id)
        if started is None:
            return None
        if self.timeout_s is not None and now - started > self.timeout_s:
            return f"timed out: ran {now - started:.0f} s, past run.trial_timeout_s = {self.timeout_s:g}"
        if self.stall_factor is not None and len(self.intervals) >= MIN_INTERVALS:
            median = statistics.median(self.intervals)
            quiet = now - self.last[trial_id]
            if median > 0 and quiet > self.stall_factor * median:
                return (
                    f"stalled: no report for {quiet:.0f} s, past run.stall_factor = {self.stall_factor:g} "
                    f"x the median {median:.2f} s between reports"
                )
        return None

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = self.clock()
        for trial in trials:
            if trial.status != "RUNNING":
                continue
            why = self.reason(trial.trial_id, now)
            attempt = (trial.trial_id, self.started.get(trial.trial_id, 0.0))
            if why is None or attempt in self._stopped:
                continue
            self._stopped.add(attempt)
            self.reasons[trial.trial_id] = why
            self._save()
            _compat.kill_trial_actor(trial)

    def _save(self) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / REASONS_FILE).write_text(json.dumps(self.reasons, indent=2))


class BudgetStop(Callback):
    """Writes ``folder / STOPPED_FILE``: the trials still running (or pending, paused) when the time
    budget ``budget_s`` ended the experiment. ``start`` is the clock's reading before ``Tuner.fit``
    (Tune's own budget clock starts later, so a budget Tune enforced has always elapsed here)."""

    def __init__(
        self,
        folder: str | Path | None,
        budget_s: float,
        start: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.budget_s = budget_s
        self.clock = clock
        self.start = clock() if start is None else start
        self.live: set[str] = set()
        self.stopped: list[str] = []

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # before this step's stop of every trial (Tune stops them inside the step the budget ends)
        self.live = {t.trial_id for t in trials if t.status in ("RUNNING", "PENDING", "PAUSED")}

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.clock() - self.start < self.budget_s:
            return  # every trial ended on its own before the budget was spent
        self.stopped = sorted(t.trial_id for t in trials if t.trial_id in self.live and t.status != "ERROR")
        if self.folder is not None and self.stopped:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / STOPPED_FILE).write_text(json.dumps(self.stopped))
