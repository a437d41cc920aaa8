"""Training state ⇄ ``ray.train.Checkpoint`` (also ``ray.tune.Checkpoint``: the same class).

A checkpoint is a directory with one ``state.pt`` holding the model's and optimizer's state
dicts, the lr scheduler's state, the RNG states of every worker (torch CPU and CUDA, NumPy,
Python), the epoch, the samples seen and the optimizer hyperparameters the state was made with.
Restoring applies the *current* config's hyperparameters where they differ from the saved ones
(PBT mutations, Ray issue #36660), and re-derives the scheduler's base learning rates from them.
"""

from __future__ import annotations

import os
import pickle
import random
from typing import Any

import numpy as np
import torch

__all__ = ["STATE_FILE", "save_state", "load_state", "rng_state", "set_rng_state", "apply_hparams"]

STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    """This process's RNG states: torch CPU (and CUDA when present), NumPy and Python."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        # one bytes object rather than a tuple of 625 ints: torch.save pickles it in one go
        "python": pickle.dumps(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    py = state["python"]
    random.setstate(pickle.loads(py) if isinstance(py, bytes) else py)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(directory: str, state: dict[str, Any]) -> str:
    """Write ``state`` to ``directory/state.pt``; returns the directory."""
    os.makedirs(directory, exist_ok=True)
    torch.save(state, os.path.join(directory, STATE_FILE))
    return directory


def load_state(checkpoint: Any) -> dict[str, Any]:
    """Read the state of a ``ray.train.Checkpoint`` (or a directory path) onto the CPU."""
    if hasattr(checkpoint, "as_directory"):
        with checkpoint.as_directory() as d:
            return torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=False)
    return torch.load(os.path.join(checkpoint, STATE_FILE), map_location="cpu", weights_only=False)


def apply_hparams(
    optimizer: torch.optim.Optimizer,
    fresh_groups: list[dict[str, Any]],
    saved_hparams: dict[str, Any],
    hparams: dict[str, Any],
) -> list[str]:
    """After ``optimizer.load_state_dict``, put back the hyperparameters that the config changed.

    ``fresh_groups`` are the param groups as the current config built them (before loading).
    A hyperparameter whose configured value differs from the one saved with the checkpoint is
    copied from the fresh groups (so a bias group keeps ``weight_decay = 0``); unchanged ones
    keep the checkpoint's values, bit for bit. Returns the names of the changed hyperparameters.
    """
    changed = sorted(k for k in set(hparams) | set(saved_hparams) if hparams.get(k) != saved_hparams.get(k))
    for group, fresh in zip(optimizer.param_groups, fresh_groups, strict=False):
        for key in changed:
            if key in fresh:
                group[key] = fresh[key]
    return changed
