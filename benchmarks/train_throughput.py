"""Throughput of raytune_opt's training loop against a plain hand-written PyTorch loop.

Same task (data and seeded initial model), same optimizer object (``optim.create``), same batch
size and epochs, in the same run, in three settings:

- in-process: ``train.train_loop`` with a local session vs the plain loop called directly;
- 1 worker in a Tune trial: ``train.trainable`` vs the plain loop in a Tune function trainable;
- 2-worker DDP (gloo, CPU): ``train.trainable(num_workers=2)`` (driver + TorchTrainer) vs the plain
  loop as ``train_loop_per_worker`` of a TorchTrainer launched the documented way (Ray's
  ``TuneReportCallback``).

Both loops evaluate the validation set and report once per epoch; the loop under test also
checkpoints only at the end (``checkpoint_every=0``), as the plain loop does not checkpoint.
samples/s = training samples per epoch / the median time between consecutive epoch reports (so
process start-up and the first epoch's warm-up are left out, and a burst of load from other
processes on a shared machine does not decide the result). Ray Train V2 polls its workers'
reports every ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` (2 s) through a result queue of one, which
caps any loop at one report per interval; the script sets it to 0.05 s (for both loops) so the
DDP rows measure the loops rather than that poll. The last line is the headline (the smallest
ratio). Results go to ``benchmarks/results/train_throughput.md``.

    python benchmarks/train_throughput.py            # mnist1d-cnn, 12 epochs, best of 3
    python benchmarks/train_throughput.py --quick    # tiny: a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from raytune_opt import optim
from raytune_opt.tasks import get_task
from raytune_opt.train import LocalSession, train_loop, trainable

RESULTS = Path(__file__).parent / "results" / "train_throughput.md"


def plain_loop(
    config: dict[str, Any], report: Callable[[dict[str, Any]], None], rank: int = 0, world: int = 1
) -> None:
    """The hand-written reference: randperm, slice, forward, backward, step; evaluate and report per epoch."""
    torch.manual_seed(config["seed"])
    spec = get_task(config["task"]).build(**config["task_args"])
    model = spec.model
    if world > 1:
        import ray.train.torch

        model = ray.train.torch.prepare_model(model)
    opt = optim.create(config["optimizer"], spec.model, lr=config["lr"])
    x, y = spec.train
    xv, yv = spec.val
    batch = config["batch_size"] // world
    for epoch in range(config["epochs"]):
        g = torch.Generator().manual_seed(config["seed"] + epoch)
        perm = torch.randperm(len(y), generator=g)[rank::world]
        model.train()
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        spec.model.eval()
        with torch.no_grad():
            out = spec.model(xv)
            metrics = {
                "val_loss": F.cross_entropy(out, yv).item(),
                "val_accuracy": (out.argmax(1) == yv).float().mean().item(),
            }
        report({**metrics, "epoch": epoch + 1})


class _TimedSession(LocalSession):
    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        super().report(metrics, checkpoint_dir)
        self.stamps.append(time.perf_counter())


def _rate(n_train: int, stamps: list[float]) -> float:
    """Samples per second from report times: ``n_train`` / median epoch interval."""
    return n_train / statistics.median(b - a for a, b in zip(stamps, stamps[1:], strict=False))


def _local_plain(config: dict[str, Any], n_train: int) -> float:
    stamps: list[float] = []
    plain_loop(config, lambda m: stamps.append(time.perf_counter()))
    return _rate(n_train, stamps)


def _local_ours(config: dict[str, Any], n_train: int) -> float:
    session = _TimedSession()
    train_loop({**config, "checkpoint_every": 0}, session)
    return _rate(n_train, session.stamps)


def _plain_tune_trial(config: dict[str, Any]) -> None:
    import ray.tune

    plain_loop(config, ray.tune.report)


def _plain_ddp_worker(config: dict[str, Any]) -> None:
    import ray.train

    ctx = ray.train.get_context()
    plain_loop(config, ray.train.report, ctx.get_world_rank(), ctx.get_world_size())


def _plain_ddp_trial(config: dict[str, Any]) -> None:
    import ray.train
    from ray.train._internal.session import get_storage
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    storage = get_storage()
    TorchTrainer(
        _plain_ddp_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=config["num_workers"]),
        run_config=ray.train.RunConfig(
            name=f"plain-{uuid.uuid4().hex[:8]}",
            storage_path=storage.trial_fs_path,
            storage_filesystem=storage.storage_filesystem,
            callbacks=[TuneReportCallback()],
        ),
    ).fit()


def _tune_rate(fn: Any, config: dict[str, Any], n_train: int, storage: str) -> float:
    from ray import tune

    result = tune.Tuner(
        fn,
        param_space=config,
        run_config=tune.RunConfig(storage_path=storage, name=f"bench-{uuid.uuid4().hex[:6]}", verbose=0),
    ).fit()[0]
    if result.error is not None:
        raise result.error
    return _rate(n_train, result.metrics_dataframe["time_total_s"].tolist())


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--skip-ddp", action="store_true", help="leave out the 2-worker DDP rows")
    parser.add_argument(
        "--repeats", type=int, default=None, help="best of this many runs per row (3; quick: 1)"
    )
    parser.add_argument("--storage", default=str(Path(__file__).parent / "results" / "tmp"))
    args = parser.parse_args(argv)
    import ray
    from ray import tune

    if args.quick:
        config = {"task": "mnist1d-mlp", "task_args": {"num_samples": 1000}, "batch_size": 50, "epochs": 3}
    else:
        config = {"task": "mnist1d-cnn", "task_args": {}, "batch_size": 128, "epochs": 12}
    config.update(optimizer="adam", lr=1e-2, seed=0)
    repeats = args.repeats or (1 if args.quick else 3)
    n_train = len(get_task(config["task"]).build(**config["task_args"]).train[1])
    torch.set_num_threads(1)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.05")  # inherited by Ray's workers
    if not ray.is_initialized():
        ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
    storage = os.path.abspath(args.storage)

    rows: list[tuple[str, float, float]] = []

    def best(name: str, plain: Callable[[], float], ours: Callable[[], float]) -> None:
        """Best of ``repeats`` runs of each, alternating which goes first (warm-up and load drift)."""
        p, o = [], []
        for i in range(repeats):
            for fn, out in ((plain, p), (ours, o)) if i % 2 == 0 else ((ours, o), (plain, p)):
                out.append(fn())
        rows.append((name, max(p), max(o)))

    best("in-process, 1 worker", lambda: _local_plain(config, n_train), lambda: _local_ours(config, n_train))
    ours_cfg = {**config, "checkpoint_every": 0}
    best(
        "Tune trial, 1 worker",
        lambda: _tune_rate(tune.with_resources(_plain_tune_trial, {"CPU": 1}), config, n_train, storage),
        lambda: _tune_rate(trainable(ours_cfg), ours_cfg, n_train, storage),
    )
    if not args.skip_ddp:
        from raytune_opt.train.trainable import DRIVER_RESOURCES

        ddp, ours_ddp = {**config, "num_workers": 2}, {**ours_cfg, "num_workers": 2}
        best(
            "Tune trial, 2-worker DDP (gloo)",
            lambda: _tune_rate(
                tune.with_resources(_plain_ddp_trial, DRIVER_RESOURCES), ddp, n_train, storage
            ),
            lambda: _tune_rate(trainable(ours_ddp), ours_ddp, n_train, storage),
        )

    lines = [
        f"task {config['task']}, {n_train} training samples, batch {config['batch_size']}, "
        f"{config['epochs']} epochs, optimizer {config['optimizer']}, best of {repeats}",
        "",
        "| setting | plain loop (samples/s) | raytune_opt loop (samples/s) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {p:,.0f} | {o:,.0f} | {o / p:.3f} |" for name, p, o in rows]
    lines += [
        "",
        f"headline: raytune_opt / plain loop throughput, worst setting = "
        f"{min(o / p for _, p, o in rows):.3f}x",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            f"# Training-loop throughput ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)\n\n"
            f"`python benchmarks/train_throughput.py`\n\n{text}\n"
        )
    return rows


if __name__ == "__main__":
    main()
