"""A trained model on one split of its task: the final, held-out evaluation of a configuration.

The loop itself only ever reports the validation split (what the search tunes on). After a search,
:func:`retrain_and_evaluate` trains one configuration from scratch (the loop, :func:`run_local`) and
:func:`evaluate_checkpoint` evaluates the model of a checkpoint on ``test`` (or ``val`` / ``train``),
with the loop's own evaluation (``loop._evaluate``: the mean loss and metric over the split, in
``eval_batch_size`` chunks, under the trial's precision).

    >>> out = retrain_and_evaluate({"task": "digits-mlp", "optimizer": "adamw", "lr": 3e-3, "epochs": 2})
    >>> 0 <= out["test_accuracy"] <= 1 and 0 <= out["val_accuracy"] <= 1
    True
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

from raytune_opt.errors import ConfigError
from raytune_opt.tasks import get_task
from raytune_opt.train.checkpoint import load_state
from raytune_opt.train.config import validate
from raytune_opt.train.data import EvalData
from raytune_opt.train.loop import _evaluate, _seed
from raytune_opt.train.session import LocalSession
from raytune_opt.train.trainable import run_local

__all__ = ["SPLITS", "evaluate_checkpoint", "retrain_and_evaluate"]

SPLITS = ("train", "val", "test")


def _split(spec: Any, split: str, task: str) -> Any:
    if split not in SPLITS:
        raise ConfigError.invalid("split", split, f"one of {', '.join(SPLITS)}")
    xy = getattr(spec, split)
    if xy is None:
        raise ConfigError.invalid(
            "split",
            split,
            f"a split the task has: task {task!r} has no {split} split (its TaskSpec.{split} is None); "
            "give the task a held-out test set to evaluate on",
        )
    return xy


def evaluate_checkpoint(
    config: Mapping[str, Any], checkpoint: Any, split: str = "test", device: str | None = None
) -> dict[str, float]:
    """``{"<split>_loss", "<split>_<metric>"}`` of the model saved in ``checkpoint`` (a
    ``ray.train.Checkpoint`` or its directory, read with ``torch.load(weights_only=True)``) on the
    task's ``split``, for the trial ``config`` that trained it. A task without that split is a
    ``ConfigError``."""
    cfg = validate(config)
    session = LocalSession(device=device)
    _seed(cfg.seed, session.device)
    spec = get_task(cfg.task).build(**cfg.task_args)
    part = _split(spec, split, cfg.task)
    model = session.prepare_model(spec.model)
    model.load_state_dict(load_state(checkpoint)["model"])
    loss, metric = _evaluate(
        model,
        spec,
        EvalData(part, cfg.eval_batch_size, cfg.data, session, columns=spec.columns, name=split),
        cfg,
        session,
    )
    return {f"{split}_loss": loss, f"{split}_{spec.metric.name}": metric}


def retrain_and_evaluate(
    config: Mapping[str, Any], split: str = "test", device: str | None = None
) -> dict[str, Any]:
    """Train ``config`` from scratch for its full ``epochs`` (this process, :func:`run_local`, on
    ``device``: default the CPU; a DDP trial's global batch, which the loop steps alike), then
    evaluate the last epoch's model on ``split``. Returns the split's loss and metric, the last
    epoch's reported metrics (``val_*``, ``train_loss``, ``epoch``, ``diverged``) and ``seed``.
    A diverged run's split metrics are the metric's worst value and an infinite loss."""
    cfg = validate(config)
    spec = get_task(cfg.task).build(**cfg.task_args)
    _split(spec, split, cfg.task)  # before training: a task without the split fails at once
    run = {**config, "checkpoint_every": 0, "checkpoint_at_end": True}
    with tempfile.TemporaryDirectory(prefix="raytune_opt-eval-") as storage:
        session = run_local(run, storage=storage, device=device)
        last = dict(session.results[-1]) if session.results else {}
        if session.checkpoints:
            out = evaluate_checkpoint(run, session.checkpoints[-1], split, device)
        else:  # diverged: the loop saves no checkpoint of a NaN model
            out = {f"{split}_loss": float("inf"), f"{split}_{spec.metric.name}": spec.metric.worst}
    return {**out, **{k: v for k, v in last.items() if k != "time_this_epoch_s"}, "seed": cfg.seed}
