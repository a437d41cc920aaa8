"""PBT and PB2 that survive ``Tuner.restore`` and explore from a seed.

**Why.** Ray 2.60 does not save a scheduler with the experiment (ray-project/ray#30838, open):
``TuneController.save_to_dir`` writes the trials, the searcher and the callbacks, and
``Tuner.restore`` rebuilds the scheduler from ``tuner.pkl`` — pickled when the ``Tuner`` was
created, so empty — then re-adds *every* trial, finished ones included, through ``on_trial_add``:

``PopulationBasedTraining`` / ``PB2`` forget every score, perturbation time and donor checkpoint
(every trial perturbs at its first report after the restore, as if it had never perturbed), and
PB2 forgets its data: its first explores after a restore find no history for the donor and copy
the donor's configuration unchanged.

**How.** Each scheduler here has ``scheduler_state() -> dict`` (picklable; trials named by id,
never by ``Trial`` object) and ``load_scheduler_state(state)``. ``make_tune_config`` pairs the
scheduler with its searcher (``searcher.companion``), and the searcher saves the scheduler's state
with its own (``_searcher.SpaceSearcher``, ``PresetGenerator``) — at the same instant as the
experiment state, so trials and scheduler agree — and hands it back on restore, before Ray
re-adds the trials. ``on_trial_add`` then puts each known trial back where it was:

its score, perturbation and train times and last result; a trial that held a donor checkpoint
(upper quantile) gets its latest checkpoint back. PB2 also keeps its data frame.

**Seeds.** PBT's explore (``random.random``/``random.choice`` in Ray's ``_explore``, the donor's
``random.choice``, ``Domain.sample(None)`` = NumPy's global generator) and PB2's acquisition
restarts (``np.random.uniform``) draw from the global ``random``/``numpy.random`` streams. With
``seed``, :class:`SeededPBT`/:class:`SeededPB2` run those hooks on their own seeded copies of both
streams (swapped in for the call, the caller's streams put back afterwards; Tune calls scheduler
hooks from its one driver thread), and save the streams' states with the rest: the same seed and
the same sequence of results give the same mutations, also across a restore.
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

__all__ = ["SeededStreams", "SeededPBT", "SeededPB2", "is_resumable"]


def is_resumable(scheduler: Any) -> bool:
    """Whether ``scheduler`` saves and loads its state through its searcher."""
    return callable(getattr(scheduler, "scheduler_state", None)) and callable(
        getattr(scheduler, "load_scheduler_state", None)
    )


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
_PBT_FIELDS = ("orig_tag", "last_score", "last_perturbation_time", "last_train_time", "last_result")


class _Population:
    """PBT/PB2 mixin: seeded hooks and the per-trial state across ``Tuner.restore``."""

    _trial_state: dict
    _restored: dict[str, dict[str, Any]]

    def _init_population(self, seed: int | None) -> None:
        self.streams = SeededStreams(seed)
        self._restored = {}

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        with self.streams.active():
            super().on_trial_add(tune_controller, trial)
        saved = self._restored.pop(trial.trial_id, None)
        if saved is None:
            return
        state = self._trial_state[trial]
        for name in _PBT_FIELDS:
            setattr(state, name, saved[name])
        if saved["exploitable"]:
            # it was in the upper quantile: a donor again, from its latest checkpoint
            latest = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
            if latest is not None and latest.checkpoint is not None:
                state.last_checkpoint = latest.checkpoint
                state.last_result = latest.metrics

    def _checkpoint_or_exploit(self, *args: Any, **kwargs: Any) -> Any:
        with self.streams.active():  # the donor's random.choice and the explore step
            return super()._checkpoint_or_exploit(*args, **kwargs)

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        with self.streams.active():  # the explore step (also reached through the hook above)
            return super()._get_new_config(trial, trial_to_clone)

    def scheduler_state(self) -> dict[str, Any]:
        """Per trial id: the PBT fields and whether it held a donor checkpoint; the streams."""
        trials = {
            trial.trial_id: {
                **{name: getattr(state, name) for name in _PBT_FIELDS},
                "exploitable": state.last_checkpoint is not None,
            }
            for trial, state in self._trial_state.items()
        }
        return {
            "trials": trials,
            "next_perturbation_sync": self._next_perturbation_sync,
            "num_checkpoints": self._num_checkpoints,
            "num_perturbations": self._num_perturbations,
            "streams": (self.streams.py, self.streams.np),
        }

    def load_scheduler_state(self, state: dict[str, Any]) -> None:
        self._restored = dict(state["trials"])
        self._next_perturbation_sync = state["next_perturbation_sync"]
        self._num_checkpoints = state["num_checkpoints"]
        self._num_perturbations = state["num_perturbations"]
        self.streams.py, self.streams.np = state["streams"]


class SeededPBT(_Population, PopulationBasedTraining):
    """Ray's ``PopulationBasedTraining``, explore seeded by ``seed``, resumable (module docstring)."""

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_population(seed)


class SeededPB2(_Population, PB2):
    """Ray's ``PB2``, its donor choice and acquisition restarts seeded by ``seed``, resumable with
    its data (the GP's training set)."""

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_population(seed)

    def scheduler_state(self) -> dict[str, Any]:
        return {
            **super().scheduler_state(),
            "data": self.data.copy(),  # trials named by str(trial): the trial name, stable
            "current": None if self.current is None else np.array(self.current),
            "last_exploration_time": self.last_exploration_time,
        }

    def load_scheduler_state(self, state: dict[str, Any]) -> None:
        super().load_scheduler_state(state)
        self.data = state["data"]
        self.current = state["current"]
        self.last_exploration_time = state["last_exploration_time"]
