"""The best model out of an experiment folder: its ``state_dict`` and the config that rebuilds it.

    >>> model, config = export_model("results/random")                 # the best trial, best epoch
    >>> model, config = export_model("results/random", epoch="last")   # ... its final model
    >>> sorted(config["best"]), config["epoch"] == config["last"]["epoch"]
    (['epoch', 'value'], True)

"Best" is honest about which model it is: the best trial is the one whose best report is best (as the
report ranks trials); that trial's *best epoch* (``epoch="best"``, the default) and its *final model*
(``epoch="last"``, its last checkpoint) differ whenever the metric went down after its peak. The config
says which one was exported, with both epochs and their values. ``raytune-opt export DIR`` writes
``<name>.pt`` — ``model.state_dict()``, tensors only: ``torch.load(path, weights_only=True)`` reads it —
and ``<name>.json`` beside it: ``task``, ``task_args`` (``raytune_opt.tasks.get_task(task).build(
**task_args).model`` rebuilds the module), ``optimizer`` and ``hparams``, the trial's config, and the
epoch facts. An epoch without a checkpoint (``train.checkpoint_every`` not 1) is one ConfigError line,
naming the epochs that have one; nothing is written then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raytune_opt.errors import ConfigError

__all__ = ["export_model", "write_export", "EPOCHS"]

#: which of a trial's checkpoints to export
EPOCHS = ("best", "last")


def _checkpoints(exp_dir: Path, folder: str, reports: Any) -> dict[int, Path]:
    """``{training_iteration: checkpoint directory}`` of one trial (Tune's ``checkpoint_dir_name`` of
    each report; else each ``checkpoint_*/state.pt``'s own ``epoch``)."""
    from raytune_opt.train.checkpoint import STATE_FILE, load_state

    out: dict[int, Path] = {}
    if "checkpoint_dir_name" in reports:
        for it, name in zip(reports["training_iteration"], reports["checkpoint_dir_name"], strict=True):
            if isinstance(name, str) and (exp_dir / folder / name / STATE_FILE).is_file():
                out[int(it)] = exp_dir / folder / name
    if not out:
        for d in sorted((exp_dir / folder).glob("checkpoint_*")):
            if (d / STATE_FILE).is_file():
                out[int(load_state(str(d))["epoch"])] = d
    return out


def export_model(
    path: str | os.PathLike[str], *, trial: str | None = None, epoch: str = "best"
) -> tuple[Any, dict[str, Any]]:
    """``(model, config)`` of ``trial`` (default: the best trial) of the experiment in ``path``, from
    its checkpoint at its ``"best"`` epoch (by the experiment's metric) or its ``"last"`` one. The
    model is the task's module (CPU, eval mode) with the checkpoint's weights; ``config`` is what
    :func:`write_export` writes as JSON (see the module docstring)."""
    import numpy as np

    from raytune_opt import report
    from raytune_opt.tasks import get_task
    from raytune_opt.train import validate
    from raytune_opt.train.checkpoint import load_state

    if epoch not in EPOCHS:
        raise ConfigError.invalid(
            "epoch", epoch, "'best' (the trial's best epoch) or 'last' (its final model)"
        )
    results = report.load(path)
    if trial is None:
        if results.best is None:
            raise ConfigError(f"{path}: no trial reported a finite {results.metric}: nothing to export")
        trial = results.best["trial_id"]
    ids = [str(t) for t in results.trials["trial_id"]]
    if trial not in ids:
        raise ConfigError.unknown("trial", trial, ids)
    row = results.trials.set_index("trial_id").loc[trial]
    h = results.history[results.history["trial_id"] == trial]
    values = h[results.metric].astype(float).to_numpy() if results.metric in h else np.array([])
    iters = h["training_iteration"].astype(int).to_numpy()
    finite = np.isfinite(values)
    if not finite.any():
        raise ConfigError(f"trial {trial} reported no finite {results.metric}: nothing to export")
    masked = np.where(finite, values, np.nan)
    k = int(np.nanargmin(masked) if results.mode == "min" else np.nanargmax(masked))
    best_epoch, last_epoch = int(iters[k]), int(iters[-1])
    ckpts = _checkpoints(results.exp_dir, str(row["path"]), h)
    if not ckpts:
        raise ConfigError(
            f"trial {trial} has no checkpoint in {results.exp_dir / str(row['path'])}: nothing to export "
            "(run with train.checkpoint_every: 1 or train.checkpoint_at_end: true)"
        )
    want = best_epoch if epoch == "best" else max(ckpts)
    if want not in ckpts:
        raise ConfigError(
            f"trial {trial}: its best epoch {best_epoch} ({results.metric} = {values[k]:.4g}) has no "
            f"checkpoint (checkpoints at epochs {sorted(ckpts)}): export --epoch last, or run with "
            "train.checkpoint_every: 1"
        )
    state = load_state(str(ckpts[want]))
    trial_config = dict(results.configs.get(trial, {}))
    cfg = validate(trial_config)
    model = get_task(cfg.task).build(**cfg.task_args).model
    model.load_state_dict(state["model"])
    model.eval()
    value_at = dict(zip(iters.tolist(), values.tolist(), strict=True))
    config = {
        "experiment": results.info.get("name", results.exp_dir.name),
        "trial_id": trial,
        "exported": epoch,
        "epoch": want,
        "metric": results.metric,
        "mode": results.mode,
        "value": value_at.get(want),
        "best": {"epoch": best_epoch, "value": float(values[k])},
        "last": {"epoch": last_epoch, "value": value_at.get(last_epoch)},
        "checkpoint": str(ckpts[want]),
        "task": cfg.task,
        "task_args": dict(cfg.task_args),
        "optimizer": cfg.optimizer,
        "hparams": dict(cfg.hparams),
        "config": trial_config,
    }
    return model, config


def write_export(
    path: str | os.PathLike[str],
    *,
    trial: str | None = None,
    epoch: str = "best",
    out: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path, Mapping[str, Any]]:
    """Export (:func:`export_model`) and write ``out`` (default ``<path>/export/<trial>-<epoch>.pt``):
    the ``state_dict``, and the config as ``out`` with a ``.json`` suffix. Returns both paths and the
    config. Each file is written to a temporary name and renamed: a failed export leaves nothing."""
    import torch

    model, config = export_model(path, trial=trial, epoch=epoch)
    out = Path(out) if out is not None else Path(path) / "export" / f"{config['trial_id']}-{epoch}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = out.with_suffix(".json")
    tmp = out.with_name(out.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp_meta = meta.with_name(meta.name + ".tmp")
    tmp_meta.write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    os.replace(tmp_meta, meta)
    return out, meta, config
