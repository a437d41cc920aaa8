"""Training state ⇄ ``ray.train.Checkpoint`` (also ``ray.tune.Checkpoint``: the same class).

A checkpoint is a directory with one ``state.pt`` holding the model's and optimizer's state
dicts, the lr scheduler's state, the RNG states of every worker (torch CPU and CUDA, NumPy,
Python), the epoch, the samples seen and the optimizer hyperparameters the state was made with.
Restoring applies the *current* config's hyperparameters where they differ from the saved ones
(PBT mutations, Ray issue #36660), and re-derives the scheduler's base learning rates from them.

``state.pt`` holds tensors and plain data only (dicts, lists, tuples, str, int, float, bool,
None): the RNG states are tensors and ints (NumPy's Mersenne Twister as its key array in a
tensor plus its position and Gaussian cache; Python's ``random`` state as a tuple of ints), and
it is read back with ``torch.load(weights_only=True)``, which refuses anything that would run
code when unpickled. A forged ``state.pt`` in shared storage is refused with a
:class:`CheckpointError`; a checkpoint also loads with plain ``torch.load(path, weights_only=True)``.

Beside it, ``meta.json`` (:data:`META_FILE`, written by the Tune and Train sessions) names the
epoch, the size of ``state.pt`` and a digest of the trial's config: :func:`newest_checkpoint` finds a
trial's newest *complete* checkpoint on its storage from these alone. A driver killed between two of
Tune's state saves leaves checkpoints on storage newer than the state names; a resumed trial
continues from the newest one, not the one Tune hands it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "STATE_FILE",
    "META_FILE",
    "CheckpointError",
    "save_state",
    "load_state",
    "rng_state",
    "set_rng_state",
    "apply_hparams",
    "config_digest",
    "write_meta",
    "newest_checkpoint",
]

STATE_FILE = "state.pt"
META_FILE = "meta.json"
#: the folders Tune persists a trial's checkpoints to: ``checkpoint_<index>`` in the trial's folder
_CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored: unreadable, or holding more than tensors and plain data."""


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain data: torch CPU (and CUDA when present),
    NumPy (``np.random.get_state()`` with its key array as a tensor) and Python's ``random``."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "key": torch.from_numpy(np.array(key, dtype=np.uint32).view(np.int32)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),  # (version, tuple of 625 ints, None or a float)
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    key = n["key"].numpy().view(np.uint32)
    np.random.set_state((n["kind"], key, n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(directory: str, state: dict[str, Any]) -> str:
    """Write ``state`` to ``directory/state.pt``; returns the directory."""
    os.makedirs(directory, exist_ok=True)
    torch.save(state, os.path.join(directory, STATE_FILE))
    return directory


def _load(path: str) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to restore the checkpoint {path}: it holds more than tensors and plain data "
            f"(torch.load(weights_only=True) refused it: {str(e).splitlines()[0]}). raytune_opt writes none "
            "that does (early checkpoints with pickled RNG states are refused too); whoever can write to "
            "the experiment's storage can forge one"
        ) from None


def load_state(checkpoint: Any) -> dict[str, Any]:
    """Read the state of a ``ray.train.Checkpoint`` (or a directory path) onto the CPU, with
    ``torch.load(weights_only=True)``; a :class:`CheckpointError` if it holds anything else."""
    if hasattr(checkpoint, "as_directory"):
        with checkpoint.as_directory() as d:
            return _load(os.path.join(d, STATE_FILE))
    return _load(os.path.join(checkpoint, STATE_FILE))


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


def config_digest(config: Mapping[str, Any]) -> str:
    """A digest of a trial's config: a checkpoint made under another config (a PBT exploit's) never
    stands in for the one Tune hands the trial."""
    text = json.dumps(dict(config), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def write_meta(
    directory: str, epoch: int, config: Mapping[str, Any], reports: list[dict[str, Any]] = ()
) -> None:
    """Write ``directory/meta.json`` beside its ``state.pt``: the epoch, the state file's size (a
    checkpoint whose copy to storage was cut short has another), the config's digest, and
    ``reports``: what the trial reported for each epoch since its previous checkpoint, through this
    one (re-reported by :func:`newest_checkpoint`'s caller when the driver's results lack them)."""
    meta = {
        "epoch": int(epoch),
        "state_bytes": os.path.getsize(os.path.join(directory, STATE_FILE)),
        "config": config_digest(config),
        "reports": list(reports),
    }
    with open(os.path.join(directory, META_FILE), "w") as f:
        json.dump(meta, f, default=lambda v: v.item() if hasattr(v, "item") else repr(v))


def _index(name: str) -> int | None:
    m = _CHECKPOINT_DIR.fullmatch(name)
    return int(m.group(1)) if m else None


def _meta(filesystem: Any, path: str, digest: str) -> dict[str, Any] | None:
    """The ``meta.json`` of the checkpoint folder ``path`` when it holds a whole ``state.pt`` made
    under ``digest``; else ``None``."""
    import pyarrow.fs

    try:
        with filesystem.open_input_stream(f"{path}/{META_FILE}") as f:
            meta = json.loads(f.read())
        info = filesystem.get_file_info(f"{path}/{STATE_FILE}")
    except (OSError, ValueError):
        return None
    whole = (
        isinstance(meta, dict)
        and meta.get("config") == digest
        and info.type == pyarrow.fs.FileType.File
        and info.size == meta.get("state_bytes")
    )
    return meta if whole else None


def newest_checkpoint(
    trial_path: str, filesystem: Any, config: Mapping[str, Any], handed: Any = None
) -> tuple[Any, int, list[dict[str, Any]]] | None:
    """The newest complete ``checkpoint_<index>`` in the trial's folder ``trial_path`` (on
    ``filesystem``, a ``pyarrow.fs.FileSystem``) made under this ``config``, when it is newer than
    ``handed`` (the checkpoint Tune restores the trial from, or ``None``): ``(checkpoint, index,
    reports)``, ``reports`` being the epochs' reports from after ``handed`` through it, in order (from
    the ``meta.json`` of every complete checkpoint between them). ``None`` when ``handed`` is the one
    to use; a ``handed`` checkpoint from another trial's folder (a PBT donor's) always is."""
    import pyarrow.fs
    import ray.tune

    trial_path = trial_path.rstrip("/")
    floor = -1
    if handed is not None:
        parent, _, name = str(handed.path).rstrip("/").rpartition("/")
        index = _index(name)
        if index is None or os.path.normpath(parent) != os.path.normpath(trial_path):
            return None
        floor = index
    try:
        entries = filesystem.get_file_info(pyarrow.fs.FileSelector(trial_path, allow_not_found=True))
    except OSError:
        return None
    found = sorted(
        (index, e.path)
        for e in entries
        if e.type == pyarrow.fs.FileType.Directory and (index := _index(e.base_name)) is not None
    )
    digest = config_digest(config)
    metas = [(index, path, _meta(filesystem, path, digest)) for index, path in found if index > floor]
    whole = [(index, path, meta) for index, path, meta in metas if meta is not None]
    if not whole:
        return None
    index, path, _ = whole[-1]
    reports = [r for _, _, meta in whole for r in meta.get("reports", []) if isinstance(r, dict)]
    return ray.tune.Checkpoint(path, filesystem), index, reports
