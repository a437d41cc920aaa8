"""The driver's memory in runs of thousands of trials: finished trials compacted, freed memory returned.

Ray Tune keeps every trial in the driver until ``Tuner.fit`` returns (Ray #64231): 10 000 trials are
10 000 ``Trial`` objects with their last result and metric statistics. :class:`DriverMemory`, a Tune
callback the runner always adds, does two things as trials finish:

- it drops the part of a finished trial that only a running one needs — Tune's window of the last 5
  and 10 values of every metric (:func:`raytune_opt._compat.ray_tune.drop_metric_windows`; the
  trial's last result and its max/min/avg/last statistics stay, so ``ResultGrid`` is unchanged);
- every :data:`TRIM_EVERY` finished trials it asks glibc's allocator to return freed memory to the
  system (``malloc_trim(0)``). Each report and each experiment-state snapshot allocates and frees
  many small objects in several threads' malloc arenas; without a trim the freed pages stay in the
  process, and the driver's RSS grows with the number of trials even when the live objects do not.

Where there is no glibc (macOS, musl), the trim is skipped, logged once at INFO; ``trims`` counts the
trims made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

from ray.tune import Callback

from raytune_opt._compat import ray_tune as _compat

__all__ = ["TRIM_EVERY", "DriverMemory", "malloc_trim"]

log = logging.getLogger(__name__)

#: finished trials between two ``malloc_trim`` calls (one takes milliseconds on a driver of ~1 GB)
TRIM_EVERY = 100


def _libc_trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _libc_trim()


def malloc_trim() -> bool:
    """Return the allocator's freed memory to the system (glibc ``malloc_trim(0)``); False where the
    C library has no such call."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class DriverMemory(Callback):
    """Compacts each finished trial and trims the allocator every ``every`` finished trials."""

    def __init__(self, every: int = TRIM_EVERY) -> None:
        self.every = every
        self.finished = 0
        self.trims = 0
        self._told = False

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _compat.drop_metric_windows(trial)
        self._count()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count()  # a failed trial may be retried: its windows stay

    def _count(self) -> None:
        self.finished += 1
        if self.finished % self.every:
            return
        if malloc_trim():
            self.trims += 1
        elif not self._told:
            self._told = True
            log.info("raytune_opt: no glibc malloc_trim here; the driver's freed memory is not trimmed")
