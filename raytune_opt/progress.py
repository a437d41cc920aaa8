"""The live status of a running experiment: one compact line, as trials start, finish, fail or improve.

    [ 0:00:42] 24 trials: 2 running, 1 pending, 5 finished, 1 failed, 1 diverged, 14 to go
               | best val_accuracy 0.912 (lion, lr=3.10e-04)   (on one line)

A ``ray.tune.Callback`` (it runs in the driver, beside Ray Tune's own loop): the line is printed when
the counts or the best value change, and at least every ``interval`` seconds while trials run.
*Pending* trials wait for resources: Tune's ``PENDING`` ones, and the distributed trials that Tune
started but whose workers still wait (``waiting``: :mod:`raytune_opt.train.resource_wait`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from ray.tune import Callback

from raytune_opt import keys

__all__ = ["LiveStatus", "format_config"]


def format_config(config: dict[str, Any], limit: int = 4) -> str:
    """``"lion, lr=3.1e-04, weight_decay=0.1"``: the optimizer and its searched hyperparameters."""
    name = config.get("optimizer")
    parts = [str(name)] if name else []
    for key, value in keys.active(config, name).items():
        if key == "optimizer" or value is None or isinstance(value, (dict, list)):
            continue
        if isinstance(value, float):
            parts.append(
                f"{key}={value:.2e}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{key}={value:.3g}"
            )
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts[: limit + 1])


class LiveStatus(Callback):
    """Prints the experiment's status line to ``stream`` (default stdout).

    Args:
        metric, mode: the metric the search optimises, ``"min"`` or ``"max"``.
        total: the number of trials the strategy will run (``TuneConfig.num_samples``), if known.
        interval: at most this many seconds between two lines while nothing changes.
        searched: the config keys shown with the best value (default: the optimizer and its keys).
        waiting: returns the ids of the started trials whose workers wait for resources (asked at
            most every ``poll`` seconds while trials run).
    """

    def __init__(
        self,
        metric: str,
        mode: str,
        *,
        total: int | None = None,
        interval: float = 15.0,
        searched: list[str] | None = None,
        stream: TextIO | None = None,
        waiting: Callable[[], Iterable[str]] | None = None,
        poll: float = 1.0,
    ) -> None:
        self.metric, self.mode, self.total, self.interval = metric, mode, total, interval
        self.searched = searched
        self.stream = stream
        self.start = time.monotonic()
        self.last_line = ""
        self.last_time = 0.0
        self.best: float | None = None
        self.best_config: dict[str, Any] = {}
        self.diverged: set[str] = set()
        self.waiting, self.poll = waiting, poll
        self.waiting_ids: set[str] = set()
        self.last_poll = -math.inf
        #: the trials of the experiment's earlier fits (:mod:`raytune_opt.experiment.fits`), by status
        #: (``TERMINATED``, ``ERROR``, ``diverged``: those that finished diverged)
        self.earlier: dict[str, int] = {"TERMINATED": 0, "ERROR": 0, "diverged": 0}

    # ------------------------------------------------------------------ Tune hooks
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if result.get("diverged"):
            self.diverged.add(trial.trial_id)
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        if finite and (self.best is None or (value > self.best if self.mode == "max" else value < self.best)):
            self.best, self.best_config = float(value), dict(trial.config)
        self._maybe_print(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._maybe_print(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._maybe_print(trials)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._maybe_print(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._maybe_print(trials)
        # a run of several fits goes on with another fit's trials: these are counted from now on
        self.carry(t.status for t in trials if t.trial_id not in self.diverged)
        self.earlier["diverged"] += sum(1 for t in trials if t.trial_id in self.diverged)

    def carry(self, statuses: Iterable[str]) -> None:
        """Counts trials of an earlier fit (their Tune statuses) in every line from now on."""
        for status in statuses:
            if status in self.earlier:
                self.earlier[status] += 1

    # ------------------------------------------------------------------ the line
    def line(self, trials: list) -> str:
        """The status line for ``trials`` (Ray's ``Trial`` objects)."""
        before = self.earlier
        counts = {"RUNNING": 0, "PENDING": 0, "TERMINATED": before["TERMINATED"], "ERROR": before["ERROR"]}
        waiting = self._waiting(trials)
        for t in trials:
            status = "PENDING" if t.status == "RUNNING" and t.trial_id in waiting else t.status
            counts[status] = counts.get(status, 0) + 1
        diverged = before["diverged"] + sum(1 for t in trials if t.trial_id in self.diverged)
        finished = counts["TERMINATED"] - sum(
            1 for t in trials if t.trial_id in self.diverged and t.status == "TERMINATED"
        )
        total = max(self.total or 0, len(trials) + sum(before.values()))
        ended = counts["TERMINATED"] + counts["ERROR"] + before["diverged"]
        to_go = total - ended - counts["RUNNING"] - counts["PENDING"]
        elapsed = int(time.monotonic() - self.start)
        parts = [
            f"{counts['RUNNING']} running",
            *([f"{counts['PENDING']} pending"] if counts["PENDING"] else []),
            f"{finished} finished",
            f"{counts['ERROR']} failed",
            f"{diverged} diverged",
        ]
        if to_go > 0:
            parts.append(f"{to_go} to go")
        text = (
            f"[{elapsed // 3600:2d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {total} trials: "
            + ", ".join(parts)
        )
        if self.best is not None:
            config = self.best_config
            if self.searched is not None:
                config = {k: config[k] for k in self.searched if k in config}
            text += f" | best {self.metric} {self.best:.4g} ({format_config(config)})"
        return text

    def _waiting(self, trials: list) -> set[str]:
        """The started trials whose workers wait for resources (refreshed at most every ``poll`` s)."""
        if self.waiting is None:
            return set()
        if not any(t.status == "RUNNING" for t in trials):
            self.waiting_ids = set()
        elif time.monotonic() - self.last_poll >= self.poll:
            self.waiting_ids, self.last_poll = set(self.waiting()), time.monotonic()
        return self.waiting_ids

    def _maybe_print(self, trials: list) -> None:
        text = self.line(trials)
        now = time.monotonic()
        state = text.split("] ", 1)[-1]
        if state != self.last_line or now - self.last_time >= self.interval:
            print(text, file=self.stream or sys.stdout, flush=True)
            self.last_line, self.last_time = state, now
