"""Optuna's samplers where a release changed what Ray's ``OptunaSearch`` relies on.

Tune pickles its searcher with the ``TuneConfig`` (``tuner.pkl``, when the ``Tuner`` is built) and in
each searcher checkpoint (``OptunaSearch.save``: the study and its sampler). From Optuna 5.1 the genetic
samplers' base class (``optuna.samplers._ga._base.BaseGASampler.__init__``) holds a ``threading.Lock``
(``_thread_lock``), which cannot be pickled: ``Tuner(...)`` raised ``TypeError: cannot pickle
'_thread.lock' object`` for ``optuna-nsga2``. :class:`NSGAIISampler` is Optuna's, pickled without its
lock and given a fresh one when loaded (the lock guards a cache within one process; a copy in another
process or a restored searcher needs its own).

Importing this module imports optuna (the strategies import it when one is built).
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

__all__ = ["NSGAIISampler"]


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """``optuna.samplers.NSGAIISampler``, picklable with Optuna 5.1's lock (module docstring)."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
