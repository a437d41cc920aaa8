"""PBT and PB2 whose explore step draws from a seed (Ray's draws from the global streams).

**Seeds.** PBT's explore (``random.random``/``random.choice`` in Ray's ``_explore``, the donor's
``random.choice``, ``Domain.sample(None)`` = NumPy's global generator) and PB2's acquisition
restarts (``np.random.uniform``) draw from the global ``random``/``numpy.random`` streams. With
``seed``, :class:`SeededPBT`/:class:`SeededPB2` run those hooks on their own seeded copies of both
streams (swapped in for the call, the caller's streams put back afterwards; Tune calls scheduler
hooks from its one driver thread): the same seed and the same sequence of results give the same
mutations.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.pb2 import PB2

__all__ = ["SeededStreams", "SeededPBT", "SeededPB2"]


class SeededStreams:
    """Own copies of Python's ``random`` and NumPy's legacy global stream, seeded.

    ``with streams.active():`` makes them *the* global streams for the block and puts the
    caller's back afterwards (their states advance only through our draws). ``seed=None``: a
    no-op, the global streams are used as they are (Ray's behaviour).
    """

    def __init__(self, seed: int | None) -> None:
        self.py: Any = None if seed is None else random.Random(seed).getstate()
        self.np: Any = None if seed is None else np.random.RandomState(seed).get_state()
        self._depth = 0

    @contextmanager
    def active(self) -> Iterator[None]:
        if self.py is None or self._depth:  # unseeded, or already active (nested hooks)
            yield
            return
        outer_py, outer_np = random.getstate(), np.random.get_state()
        random.setstate(self.py)
        np.random.set_state(self.np)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self.py, self.np = random.getstate(), np.random.get_state()
            random.setstate(outer_py)
            np.random.set_state(outer_np)


# ------------------------------------------------------------------ PBT / PB2
class _Population:
    """PBT/PB2 mixin: the hooks that draw random numbers run on the seeded streams."""

    def _init_population(self, seed: int | None) -> None:
        self.streams = SeededStreams(seed)

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        with self.streams.active():
            super().on_trial_add(tune_controller, trial)

    def _checkpoint_or_exploit(self, *args: Any, **kwargs: Any) -> Any:
        with self.streams.active():  # the donor's random.choice and the explore step
            return super()._checkpoint_or_exploit(*args, **kwargs)

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        with self.streams.active():  # the explore step (also reached through the hook above)
            return super()._get_new_config(trial, trial_to_clone)


class SeededPBT(_Population, PopulationBasedTraining):
    """Ray's ``PopulationBasedTraining``, its explore seeded by ``seed`` (module docstring)."""

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_population(seed)


class SeededPB2(_Population, PB2):
    """Ray's ``PB2``, its donor choice and acquisition restarts seeded by ``seed``."""

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_population(seed)
