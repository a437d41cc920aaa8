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

``--streaming`` adds the same two loops on a streaming ``Dataset`` (:class:`DiskRows`: rows of an
on-disk float32 array read one ``os.pread`` per item, labels in memory), each through a
``DataLoader`` with one loader worker: in-process and 2-worker DDP (the plain loop with a
``DistributedSampler``). ``--out-of-core 1 8`` trains the loop one epoch on such a file of 1 GB and
of 8 GB, each in a fresh process, and prints the peak RSS of the trainer and of its loader worker
(``getrusage``); the files are deleted afterwards. ``--streaming-only`` runs the streaming rows
alone (results in ``benchmarks/results/train_throughput_streaming.md``).

    python benchmarks/train_throughput.py            # mnist1d-cnn, 12 epochs, best of 3
    python benchmarks/train_throughput.py --quick    # tiny: a smoke run
    python benchmarks/train_throughput.py --streaming-only --out-of-core 1 8
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from raytune_opt import optim
from raytune_opt.tasks import TaskSpec, get_task, register_task
from raytune_opt.train import LocalSession, train_loop, trainable

RESULTS = Path(__file__).parent / "results" / "train_throughput.md"


class DiskRows(Dataset):
    """Rows of an on-disk ``n × d`` float32 array (``np.memmap``'s layout) with labels in memory: each
    item is one ``os.pread`` of a row into a fresh tensor, so nothing of the file stays mapped in the
    process (a memmap's touched pages would count in its RSS)."""

    def __init__(self, path: str, n: int, d: int, targets: torch.Tensor) -> None:
        self.path, self.n, self.d, self.targets = path, n, d, targets
        self.row_bytes = 4 * d
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._fd is None:  # opened in the process that reads (a loader worker)
            self._fd = os.open(self.path, os.O_RDONLY)
        row = bytearray(os.pread(self._fd, self.row_bytes, i * self.row_bytes))
        return torch.frombuffer(row, dtype=torch.float32), int(self.targets[i])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}


def write_rows(path: str, n: int, d: int, seed: int = 0) -> None:
    """Write ``n`` random rows of ``d`` float32 to ``path`` (written in 64 MiB chunks, not mapped, and
    dropped from the page cache) and their labels to ``path + ".labels.pt"`` (10 classes: the
    arg-max of a fixed projection of each row, learnable)."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(1234).standard_normal((d, 10), dtype=np.float32)
    labels = np.empty(n, dtype=np.uint8)
    step = max(1, (64 << 20) // (4 * d))
    with open(path, "wb") as f:
        for a in range(0, n, step):
            x = rng.standard_normal((min(step, n - a), d), dtype=np.float32)
            f.write(x.tobytes())
            labels[a : a + len(x)] = (x @ proj).argmax(1)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    torch.save(torch.from_numpy(labels), path + ".labels.pt")


def disk_rows_task(path: str = "", n: int = 0, d: int = 256) -> TaskSpec:
    """A streaming task: DiskRows of the file ``path`` (see :func:`write_rows`), an MLP on it, 1024
    in-memory validation rows."""
    targets = torch.load(path + ".labels.pt")
    g = torch.Generator().manual_seed(1)
    xv = torch.randn(1024, d, generator=g)
    proj = torch.from_numpy(np.random.default_rng(1234).standard_normal((d, 10), dtype=np.float32))
    model = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 10))
    return TaskSpec(
        train=DiskRows(path, n, d, targets),
        val=(xv, (xv @ proj).argmax(1)),
        model=model,
        loss=F.cross_entropy,
        num_classes=10,
    )


def plain_loop(
    config: dict[str, Any], report: Callable[[dict[str, Any]], None], rank: int = 0, world: int = 1
) -> None:
    """The hand-written reference: randperm, slice (or a DataLoader over a Dataset's shuffled shard),
    forward, backward, step; evaluate and report per epoch."""
    register_task("bench-disk-rows", disk_rows_task, overwrite=True)  # in a Ray worker too
    torch.manual_seed(config["seed"])
    spec = get_task(config["task"]).build(**config["task_args"])
    model = spec.model
    if world > 1:
        import ray.train.torch

        model = ray.train.torch.prepare_model(model)
    opt = optim.create(config["optimizer"], spec.model, lr=config["lr"])
    xv, yv = spec.val
    batch = config["batch_size"] // world
    if isinstance(spec.train, Dataset):
        sampler = DistributedSampler(spec.train, world, rank, seed=config["seed"])
        workers = config.get("data", {}).get("num_workers", 0)
        loader = DataLoader(spec.train, batch_size=batch, sampler=sampler, num_workers=workers)
    else:
        x, y = spec.train
    for epoch in range(config["epochs"]):
        model.train()
        if isinstance(spec.train, Dataset):
            sampler.set_epoch(epoch)
            batches = iter(loader)
        else:
            g = torch.Generator().manual_seed(config["seed"] + epoch)
            perm = torch.randperm(len(y), generator=g)[rank::world]
            batches = ((x[idx], y[idx]) for idx in perm.split(batch))
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
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


def _one_epoch_peak_rss(path: str, n: int, d: int) -> tuple[float, float, float]:
    """In a fresh (spawned) process: one epoch of the loop on the file; peak RSS of the process and of
    its loader worker (MiB, getrusage) and samples/s."""
    torch.set_num_threads(1)
    register_task("bench-disk-rows", disk_rows_task, overwrite=True)
    config = {
        "task": "bench-disk-rows",
        "task_args": {"path": path, "n": n, "d": d},
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 4096,
        "epochs": 1,
        "checkpoint_every": 0,
        "checkpoint_at_end": False,
        "data": {"num_workers": 1},
    }
    t0 = time.perf_counter()
    train_loop(config, LocalSession())
    rate = n / (time.perf_counter() - t0)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_maxrss / 1024, kids.ru_maxrss / 1024, rate


def _child(queue: Any, path: str, n: int, d: int) -> None:
    queue.put(_one_epoch_peak_rss(path, n, d))


def out_of_core(sizes_gb: list[float], folder: str, d: int = 1024) -> list[str]:
    """Peak RSS of one epoch on an on-disk array of each size (GB), each file deleted after its run."""
    import multiprocessing as mp

    rows = []
    for size in sizes_gb:
        n = int(size * 1e9) // (4 * d)
        path = os.path.join(folder, f"rows-{size:g}gb.f32")
        try:
            write_rows(path, n, d)
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            child = ctx.Process(target=_child, args=(queue, path, n, d))  # not a Pool's daemon: it
            child.start()  # starts a loader worker of its own
            rss, worker, rate = queue.get()
            child.join()
        finally:
            for p in (path, path + ".labels.pt"):
                if os.path.exists(p):
                    os.remove(p)
        rows.append((size, n, rss, worker, rate))
        print(
            f"  {size:g} GB: {n:,} rows, peak RSS {rss:,.0f} MiB, loader worker {worker:,.0f} MiB", flush=True
        )
    base = rows[0]
    lines = [
        f"out of core: one epoch on an on-disk float32 array of {d} columns (batch 4096, 1 loader worker)",
        "",
        "| file | rows | peak RSS, trainer (MiB) | peak RSS, loader worker (MiB) | samples/s | RSS / first |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {s:g} GB | {n:,} | {r:,.0f} | {w:,.0f} | {v:,.0f} | {max(r, w) / max(base[2], base[3]):.2f} |"
        for s, n, r, w, v in rows
    ]
    return lines


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--skip-ddp", action="store_true", help="leave out the 2-worker DDP rows")
    parser.add_argument(
        "--repeats", type=int, default=None, help="best of this many runs per row (3; quick: 1)"
    )
    parser.add_argument("--storage", default=str(Path(__file__).parent / "results" / "tmp"))
    parser.add_argument("--streaming", action="store_true", help="add the streaming-Dataset rows")
    parser.add_argument(
        "--streaming-only", action="store_true", help="only the streaming-Dataset rows (own results file)"
    )
    parser.add_argument(
        "--out-of-core",
        type=float,
        nargs="*",
        default=None,
        metavar="GB",
        help="peak RSS for these file sizes",
    )
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
    files = tempfile.mkdtemp(prefix="bench-rows-")
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

    from raytune_opt.train.trainable import DRIVER_RESOURCES

    if not args.streaming_only:
        best(
            "in-process, 1 worker",
            lambda: _local_plain(config, n_train),
            lambda: _local_ours(config, n_train),
        )
        ours_cfg = {**config, "checkpoint_every": 0}
        best(
            "Tune trial, 1 worker",
            lambda: _tune_rate(tune.with_resources(_plain_tune_trial, {"CPU": 1}), config, n_train, storage),
            lambda: _tune_rate(trainable(ours_cfg), ours_cfg, n_train, storage),
        )
    if not args.skip_ddp and not args.streaming_only:
        ddp, ours_ddp = {**config, "num_workers": 2}, {**ours_cfg, "num_workers": 2}
        best(
            "Tune trial, 2-worker DDP (gloo)",
            lambda: _tune_rate(
                tune.with_resources(_plain_ddp_trial, DRIVER_RESOURCES), ddp, n_train, storage
            ),
            lambda: _tune_rate(trainable(ours_ddp), ours_ddp, n_train, storage),
        )

    if args.streaming or args.streaming_only:
        n, d = (4000, 64) if args.quick else (40_000, 256)
        write_rows(os.path.join(files, "rows.f32"), n, d)
        register_task("bench-disk-rows", disk_rows_task, overwrite=True)
        stream = {
            **config,
            "task": "bench-disk-rows",
            "task_args": {"path": os.path.join(files, "rows.f32"), "n": n, "d": d},
            "batch_size": 128,
            "epochs": 3 if args.quick else 6,
            "data": {"num_workers": 1},
        }
        best(
            "streaming Dataset, in-process, 1 worker",
            lambda: _local_plain(stream, n),
            lambda: _local_ours(stream, n),
        )
        if not args.skip_ddp:
            sd, ours_sd = {**stream, "num_workers": 2}, {**stream, "checkpoint_every": 0, "num_workers": 2}
            best(
                "streaming Dataset, 2-worker DDP (gloo)",
                lambda: _tune_rate(tune.with_resources(_plain_ddp_trial, DRIVER_RESOURCES), sd, n, storage),
                lambda: _tune_rate(trainable(ours_sd), ours_sd, n, storage),
            )

    described = (
        []
        if args.streaming_only
        else [
            f"task {config['task']}, {n_train} training samples, batch {config['batch_size']}, "
            f"{config['epochs']} epochs"
        ]
    )
    if args.streaming or args.streaming_only:
        described.append(
            f"streaming rows: {n:,} × {d} float32 from disk, batch 128, {stream['epochs']} epochs, "
            "1 loader worker"
        )
    lines = [
        f"{'; '.join(described)}; optimizer {config['optimizer']}, best of {repeats}",
        "",
        "| setting | plain loop (samples/s) | raytune_opt loop (samples/s) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {p:,.0f} | {o:,.0f} | {o / p:.3f} |" for name, p, o in rows]
    if args.out_of_core:
        lines += ["", *out_of_core(args.out_of_core, files)]
    shutil.rmtree(files)
    lines += [
        "",
        f"headline: raytune_opt / plain loop throughput, worst setting = "
        f"{min(o / p for _, p, o in rows):.3f}x",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        out = RESULTS.with_name("train_throughput_streaming.md") if args.streaming_only else RESULTS
        out.parent.mkdir(parents=True, exist_ok=True)
        command = " ".join(
            ["python benchmarks/train_throughput.py", *(argv if argv is not None else sys.argv[1:])]
        )
        out.write_text(
            f"# Training-loop throughput ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)\n\n"
            f"`{command}`\n\n{text}\n"
        )
    return rows


if __name__ == "__main__":
    main()
