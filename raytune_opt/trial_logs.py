"""Tune's per-trial result files — ``result.json`` and ``progress.csv`` — kept whole when a trial restarts.

The driver writes every report of a trial to these files in a local staging folder
(``/tmp/ray/session_*/artifacts/<run>/<experiment>/driver_artifacts/<trial>``), which Tune copies to the
experiment's storage from time to time. Whenever a trial with a checkpoint (re)starts — PBT's pauses and
exploits, Hyperband's rungs, a restart after a failure — Ray 2.60's ``JsonLoggerCallback`` and
``CSVLoggerCallback`` first copy the stored file over the local one (``LoggerCallback._restore_from_remote``).
Within one run the local file is the newest: the copy drops every report made since the last upload. A
synchronous PBT trial paused at its last perturbation step lost its last two epochs that way.

:class:`JsonLogger` and :class:`CSVLogger` copy the stored file only when there is no local one yet — a
trial's first start in this driver run, e.g. after ``Tuner.restore`` from another process or machine, which
stages into a fresh folder — and otherwise append to the local file as it is. A continued progress.csv
keeps the columns of its header (Ray's writer takes the column order of the first new report and writes
no header, so a report with other keys shifted the values under the wrong names).

:class:`OwnPlaceholder` keeps a trial that never reported from showing another trial's config. Until
its first report, Ray 2.60 gives a trial the placeholder result ``get_auto_filled_metrics`` of its actor
(``Trial.last_result``: trial id, pid, host and ``config``, what ``Result.config`` reads). A reused actor
(``reuse_actors``) is asked for it before Tune's ``reset`` to the new trial has run on the actor
(``_maybe_reuse_cached_actor``: ``Trial.set_ray_actor``, then ``reset``), so it carries the id and config
of the trial that ran on the actor before; Tune asks again once the reset is done, but a run
interrupted in between (Ctrl-C, a time budget) ends with the stale one. Its ``ResultGrid`` named such a
trial by the previous trial's config (a grid trial's ``mom`` 0.0 shown as 0.5, as if re-sampled after
``Tuner.restore``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ray.air.constants import EXPR_PROGRESS_FILE
from ray.tune import Callback
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

__all__ = ["CSVLogger", "JsonLogger", "OwnPlaceholder", "loggers"]


class _KeepLocal:
    """Restore a result file from storage only when this driver run has no local copy of it."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        local = Path(trial.local_path, file_name)
        if local.exists() and local.stat().st_size > 0:
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class JsonLogger(_KeepLocal, JsonLoggerCallback):
    """Tune's ``result.json`` writer that never loses a report when a trial restarts."""


class CSVLogger(_KeepLocal, CSVLoggerCallback):
    """Tune's ``progress.csv`` writer that never loses a report when a trial restarts, and continues a
    file under its own header (keys the header lacks are dropped, missing ones left empty)."""

    def _setup_trial(self, trial: Any) -> None:
        super()._setup_trial(trial)
        if not self._trial_continue[trial]:
            return
        with open(Path(trial.local_path, EXPR_PROGRESS_FILE), newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
        if header:
            self._trial_csv[trial] = csv.DictWriter(self._trial_files[trial], header, extrasaction="ignore")


class OwnPlaceholder(Callback):
    """At the end of a run (an interrupted one included), a trial that never reported gets a
    placeholder result with its own id and config, in place of Ray's from a reused actor."""

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in trials:
            own_placeholder(trial)


def own_placeholder(trial: Any) -> None:
    """Give ``trial``, when it never reported, a placeholder result naming its own id and config (the
    rest of Ray's placeholder, pid and host, kept); nothing for a trial that reported."""
    # workaround (no upstream issue found): Trial.set_ray_actor asks a reused actor for the
    # placeholder before Tune's reset task; Trial._default_result_or_future is Ray 2.60's attribute
    if {k for k in trial.run_metadata.last_result if k != "trial_id"}:
        return
    get = getattr(trial, "_get_default_result_or_future", None)
    placeholder = get() if get is not None else None  # Ray's own: None when the actor is gone
    if isinstance(placeholder, dict):
        trial._default_result_or_future = {**placeholder, "trial_id": trial.trial_id, "config": trial.config}


def loggers(tensorboard: bool = False) -> list[Any]:
    """The per-trial result files of a run: result.json and progress.csv (what the report reads), and
    TensorBoard event files only when ``tensorboard`` asks for them; with them :class:`OwnPlaceholder`
    (a trial's config before its first report). Tune adds none of its own loggers of a kind given here."""
    return [JsonLogger(), CSVLogger(), OwnPlaceholder()] + ([TBXLoggerCallback()] if tensorboard else [])
