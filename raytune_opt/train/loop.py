"""The training loop: one function, the same for a local run, a Tune trial and each DDP worker.

Per epoch e (0-based) every worker takes its shard of a permutation seeded by ``seed + e``
(``torch.utils.data.DistributedSampler``: worker r gets positions r, r + W, …), cuts it into
batches of ``batch_size / W`` and takes one optimizer step per batch; DDP averages the gradients,
so W workers step exactly like one worker with the global batch, up to float summation order.
Second-order optimizers take one full-batch ``step(closure)`` per epoch. After each epoch the
sums of losses, metric values and counts are added over workers and reported as means.

The batches come from :mod:`raytune_opt.train.data`: tensors (the small, in-memory tasks) are
copied to the GPU once and sliced there; a ``Dataset`` streams through a ``DataLoader`` (the
``train.data`` options), pinned batches copied host → device non-blocking.
``precision="bf16"`` runs forward passes under bf16 autocast.

``strategy="fsdp"`` shards the model's parameters over the workers instead of replicating them
(:mod:`raytune_opt.train.sharding`: FSDP2, the same steps as DDP up to float rounding); its
checkpoints hold the full state, as an unsharded run's.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from raytune_opt._compat.torch import set_last_lr, without_dynamo_import
from raytune_opt.errors import ConfigError
from raytune_opt.optim.memory import state_bytes
from raytune_opt.tasks import TaskSpec, get_task
from raytune_opt.train.checkpoint import apply_hparams, load_state, rng_state, save_state, set_rng_state
from raytune_opt.train.config import SECOND_ORDER, TrainConfig, validate
from raytune_opt.train.data import EvalData, TrainData, check_data
from raytune_opt.train.glm_solvers import GLM_METHODS, GLMSolver
from raytune_opt.train.schedules import make_scheduler
from raytune_opt.train.session import Session
from raytune_opt.train.sharding import full_state, in_lockstep, load_full_state

__all__ = ["train_loop"]


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _seed(seed: int, device: torch.device) -> None:
    """``torch.manual_seed`` for the generators a run on ``device`` uses: the CPU's, and CUDA's on a
    GPU. (``torch.manual_seed`` also queues a seed for every uninitialised accelerator, formatting a
    stack trace each time: a millisecond a call, and the trial's loop seeds twice.)"""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)


@torch.no_grad()
def _evaluate(
    model: nn.Module, spec: TaskSpec, data: EvalData, cfg: TrainConfig, session: Session
) -> tuple[float, float]:
    """Mean validation loss and metric over all workers (each evaluates positions rank, rank + W, …)."""
    device = session.device
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    batches = data.batches()
    if _is_sharded(model):
        batches = in_lockstep(batches, session.all_reduce_sum, device)
    for xb, yb in batches:
        if not len(yb):  # a lockstep pass: this worker's share is done
            with _autocast(cfg, device):
                model(xb)
            continue
        with _autocast(cfg, device):
            out = model(xb)
        out = out.float()
        sums[0] += spec.loss(out, yb).double() * len(yb)
        sums[1] += spec.metric.total(out, yb).double()
        sums[2] += len(yb)
    model.train(was_training)
    sums = session.all_reduce_sum(sums)
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def _is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` is sharded by FSDP2 (``strategy="fsdp"`` with a process group)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


def _autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _closure(
    opt: torch.optim.Optimizer, model: nn.Module, spec: TaskSpec, xb: Tensor, yb: Tensor
) -> Callable[[], Tensor]:
    """The closure a second-order optimizer calls: the loss, or the residuals for least squares."""
    if getattr(opt, "closure_returns", "loss") == "residuals":
        if spec.residuals is None:
            raise ValueError("this task has no residuals: a least-squares optimizer cannot fit it")
        return lambda: spec.residuals(model(xb), yb)
    return lambda: spec.loss(model(xb), yb)


def train_loop(config: Mapping[str, Any], session: Session) -> dict[str, Any]:
    """Train one trial from ``config`` and report every epoch to ``session``; returns the last metrics.

    Stops early, reporting ``diverged=True`` with the worst metric value, when a loss is NaN or ±inf.
    """
    with without_dynamo_import():
        return _train_loop(config, session)


def _train_loop(config: Mapping[str, Any], session: Session) -> dict[str, Any]:
    cfg = validate(config)
    device = session.device
    task = get_task(cfg.task)
    _seed(cfg.seed, device)  # the model's initial weights: same on every worker
    spec = task.build(**cfg.task_args)
    check_data(spec, cfg.task, cfg, session.world_size)
    train_data = TrainData(spec, cfg.task, cfg, session)
    val_data = EvalData(spec.val, cfg.eval_batch_size, cfg.data, session, columns=spec.columns)
    _seed(cfg.seed + 1_000_003 * session.rank, device)  # augmentation/dropout streams differ per worker

    module = spec.model
    model = session.shard_model(module) if cfg.strategy == "fsdp" else session.prepare_model(module)
    module = _unwrap(model)
    sharded = _is_sharded(module)
    opt = _make_optimizer(cfg, module, spec, train_data.tensors)
    fresh_groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    second_order = cfg.kind == SECOND_ORDER
    steps_per_epoch = train_data.steps_per_epoch or 1  # None: an unsized Dataset, constant schedule only
    sched = make_scheduler(
        opt,
        cfg.schedule,
        total_steps=cfg.epochs * steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=cfg.warmup_epochs,
        step_epochs=cfg.step_epochs,
        step_gamma=cfg.step_gamma,
        pct_start=cfg.pct_start,
    )
    base_lrs = list(sched.base_lrs)

    start_epoch, samples_seen = 0, 0
    ckpt = session.get_checkpoint()
    if ckpt is not None:
        state = load_state(ckpt)
        if sharded:
            load_full_state(module, opt, state["model"], state["optimizer"])
        else:
            module.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        apply_hparams(opt, fresh_groups, state["hparams"], cfg.hparams)
        sched.load_state_dict(state["scheduler"])
        sched.base_lrs = base_lrs  # the configured lr wins (a PBT mutation), the step count is kept
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            group["initial_lr"] = base
            group["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)
        set_last_lr(sched, [g["lr"] for g in opt.param_groups])
        rngs = state["rng"]
        if len(rngs) == session.world_size:
            set_rng_state(rngs[session.rank])
        start_epoch, samples_seen = state["epoch"], state["samples_seen"]

    metric_key = f"val_{spec.metric.name}"
    metrics: dict[str, Any] = {}
    step_sched = cfg.schedule != "constant"
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        losses: list[Tensor] = []
        sizes: list[int] = []
        for xb, yb in train_data.epoch(epoch):
            if spec.augment is not None:
                xb = spec.augment(xb)
            if second_order:
                with torch.no_grad():
                    loss = spec.loss(model(xb), yb)
                opt.step(_closure(opt, model, spec, xb, yb))
            else:
                with _autocast(cfg, device):
                    loss = spec.loss(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
            if step_sched:
                sched.step()
            losses.append(loss.detach())
            sizes.append(len(yb))
        lr = opt.param_groups[0]["lr"]
        sums = torch.stack(
            [
                (
                    torch.stack(losses).double() * torch.tensor(sizes, dtype=torch.float64, device=device)
                ).sum(),
                torch.tensor(float(sum(sizes)), dtype=torch.float64, device=device),
            ]
        )
        sums = session.all_reduce_sum(sums)
        train_loss = float(sums[0] / sums[1])
        samples_seen += int(sums[1])
        val_loss, metric = _evaluate(model, spec, val_data, cfg, session)
        diverged = not all(math.isfinite(v) for v in (train_loss, val_loss, metric))
        metrics = {
            "train_loss": math.inf if diverged else train_loss,
            "val_loss": math.inf if diverged else val_loss,
            metric_key: spec.metric.worst if diverged else metric,
            "epoch": epoch + 1,
            "samples_seen": samples_seen,
            "time_this_epoch_s": time.perf_counter() - t0,
            "lr": lr,
            "diverged": diverged,
            "optimizer_state_bytes_per_param": state_bytes(opt).per_param,
        }
        last = epoch + 1 == cfg.epochs
        due = cfg.checkpoint_every > 0 and (epoch + 1) % cfg.checkpoint_every == 0
        if (due or (last and cfg.checkpoint_at_end)) and not diverged:
            rngs = session.gather(rng_state())
            model_state, opt_state = (
                full_state(module, opt) if sharded else (module.state_dict(), opt.state_dict())
            )
            state = {
                "model": model_state,
                "optimizer": opt_state,
                "scheduler": sched.state_dict(),
                "rng": rngs,
                "epoch": epoch + 1,
                "samples_seen": samples_seen,
                "hparams": dict(cfg.hparams),
                "task": cfg.task,
            }
            with tempfile.TemporaryDirectory(prefix="raytune_opt-ckpt-") as d:
                session.report(metrics, save_state(d, state) if session.rank == 0 else None)
        else:
            session.report(metrics, None)
        if diverged or session.should_stop():
            break
    return metrics


def _make_optimizer(
    cfg: TrainConfig, module: nn.Module, spec: TaskSpec, tensors: tuple[Tensor, Tensor] | None
) -> torch.optim.Optimizer:
    """``optim.create`` (biases and norms not decayed), or a GLM solver for the glm-* tasks."""
    if cfg.optimizer in GLM_METHODS:
        if tensors is None:
            raise ConfigError.invalid(
                f"task {cfg.task!r}: optimizer", cfg.optimizer, "a GLM solver only for tensors, not a Dataset"
            )
        return GLMSolver(module, cfg.optimizer, spec.glm_family, *tensors)
    from raytune_opt import optim

    return optim.create(cfg.optimizer, module, **cfg.hparams)
