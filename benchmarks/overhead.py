"""Per-trial overhead of ``raytune-opt run`` against raw ``ray.tune.Tuner``, side by side in one run.

Both run N no-op trials that report 3 times, on the same local Ray, with ``reuse_actors=True``:

- raw Tune: a function trainable that calls ``tune.report`` 3 times, random search over one float
  (Tune's ``BasicVariantGenerator``), ``verbose=0``, with

  * ``raw``: Tune's JSON and CSV loggers only — the files raytune-opt writes (``result.json``,
    ``progress.csv``); the reference of the headline;
  * ``raw_defaults``: Tune's default loggers, which (tensorboardX being installed) also write TensorBoard
    event files for every report — raytune-opt writes them only with ``run.tensorboard: true``;
  * ``raw_checkpoint``: JSON + CSV, and the last report carries a checkpoint (a 1-weight model's state,
    as raytune-opt's trial saves at its end: the round trip Tune makes for every checkpoint — persist in
    the trial, register in the driver — is then on both sides);
- raytune-opt: an :class:`raytune_opt.Experiment` (random strategy over ``lr``) on a registered
  no-op task (one sample, a 1-weight linear model: the training loop runs, the work is nil), 3 epochs —
  validation, our searcher, the trial's loop and ``experiment.json``; ``ours`` with no checkpoint
  (``checkpoint_every: 0, checkpoint_at_end: false``: the same work as raw Tune) and
  ``ours_checkpoint`` with the final checkpoint that trials save by default (against
  ``raw_checkpoint``); the report (plots) is timed separately.

Each side runs ``--repeats`` times, interleaved, in an order that rotates from repeat to repeat (no
side always first or last); the table has the median wall time (``Tuner.fit`` start to end), trials/s
and the ratios. The last line is the headline: raytune-opt against raw Tune with the same loggers, as a
ratio of medians and as the median of the per-repeat ratios (target ≤ 1.1), and raytune-opt's trials/s
(target ≥ 10 on 2 cores). A full run puts its section (per-repeat times, table, headline, load average)
on top of ``benchmarks/results/overhead.md``, above the older ones.

    python benchmarks/overhead.py                    # 200 trials, 3 repeats, all sides
    python benchmarks/overhead.py --quick            # 10 trials, 1 repeat (the test suite runs this)
    python benchmarks/overhead.py --sides raw,ours   # a subset (profiling): medians only, nothing written
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "overhead.md"


def noop_task():
    """One training sample, a 1-weight linear model: the loop's own cost, nothing else."""
    from raytune_opt.tasks import TaskSpec

    x, y = torch.zeros(1, 1), torch.zeros(1)
    return TaskSpec(
        train=(x, y),
        val=(x, y),
        model=torch.nn.Linear(1, 1, bias=False),
        loss=lambda out, t: ((out.squeeze(-1) - t) ** 2).mean(),
        metric=_metric(),
    )


def _metric():
    from raytune_opt.tasks.registry import Metric

    return Metric("mse", "min", lambda out, t: ((out.squeeze(-1) - t) ** 2).sum())


def raw_noop(config: dict) -> None:
    from ray import tune

    for i in range(3):
        metrics = {"val_loss": config["lr"] * (3 - i), "epoch": i + 1}
        if i < 2 or not config["checkpoint"]:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as d:
            torch.save(torch.nn.Linear(1, 1, bias=False).state_dict(), os.path.join(d, "model.pt"))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def run_raw(n: int, storage: str, checkpoint: bool = False, loggers: str = "json+csv") -> float:
    """Wall time of ``n`` raw trials; ``loggers="json+csv"``: Tune's JSON and CSV loggers only (what
    raytune-opt writes), ``"defaults"``: Tune's defaults (JSON, CSV and, tensorboardX being installed,
    TensorBoard event files)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    given = loggers == "json+csv"
    tuner = tune.Tuner(
        raw_noop,
        param_space={"lr": tune.loguniform(1e-4, 1e-1), "checkpoint": checkpoint},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", num_samples=n, reuse_actors=True),
        run_config=tune.RunConfig(
            storage_path=storage,
            name=f"raw-{time.monotonic_ns()}",
            verbose=0,
            callbacks=[JsonLoggerCallback(), CSVLoggerCallback()] if given else None,
        ),
    )
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # read when fit() builds its callbacks
    before = os.environ.get(key)
    os.environ[key] = "1" if given else "0"
    try:
        start = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
    assert len(grid) == n and not grid.errors
    return wall


def run_ours(n: int, storage: str, checkpoint: bool = False) -> tuple[float, float]:
    """(wall time of the run, wall time of the report) through the experiment runner."""
    from raytune_opt import Experiment, report
    from raytune_opt.experiment import run_experiment

    exp = Experiment.from_dict(
        {
            "name": f"ours-{time.monotonic_ns()}",
            "task": "noop",
            "train": {
                "epochs": 3,
                "batch_size": "full",
                "checkpoint_every": 0,
                "checkpoint_at_end": checkpoint,
            },
            "optimizer": {"name": "sgd"},
            "search": {"strategy": "random", "space": {"lr": {"loguniform": [1e-4, 1e-1]}}, "num_samples": n},
            "run": {"storage_path": storage},
        }
    )
    start = time.perf_counter()
    result = run_experiment(exp, progress=False, report=False)
    wall = time.perf_counter() - start
    assert len(result.grid) == n and not result.grid.errors
    start = time.perf_counter()
    report.write(result.path)
    return wall, time.perf_counter() - start


def _prepend(path: Path, section: str) -> None:
    """Put ``section`` on top of the results file, under its title; older sections stay below."""
    title = "# overhead (no-op trials through raytune-opt and raw ray.tune.Tuner)\n"
    old = path.read_text() if path.exists() else ""
    body = old.split("\n", 1)[1].lstrip("\n") if old.startswith("# ") else old
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{title}\n{section}\n{body}".rstrip("\n") + "\n")


#: the sides: key -> (label in the table, what to run); "raw" is the reference of the headline
SIDES = {
    "raw_defaults": "raw ray.tune.Tuner (Tune defaults: JSON, CSV, TensorBoard)",
    "raw": "raw ray.tune.Tuner (JSON + CSV, as raytune-opt)",
    "raw_checkpoint": "raw ray.tune.Tuner (JSON + CSV) + final checkpoint",
    "ours": "raytune-opt run",
    "ours_checkpoint": "raytune-opt run + final checkpoint",
}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 trials, 1 repeat")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated subset of {', '.join(SIDES)} (profiling; the table needs all)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"markdown table (default {RESULTS}, not --quick)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.repeats = 10, 1
    chosen = [k for k in args.sides.split(",") if k]
    unknown = sorted(set(chosen) - set(SIDES))
    if unknown:
        parser.error(f"unknown sides {unknown}: choose from {list(SIDES)}")
    import ray

    from raytune_opt.tasks import available_tasks, register_task

    if "noop" not in available_tasks():
        register_task("noop", noop_task)
    from raytune_opt.experiment import connect

    if not ray.is_initialized():
        connect(None, progress=False)  # the runner's own local Ray (workers preload torch)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    n = args.trials
    walls: dict[str, list[float]] = {k: [] for k in chosen}
    rep: list[float] = []
    log: list[str] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as storage:

        def ours_side() -> None:
            wall, report_s = run_ours(n, storage)
            walls["ours"].append(wall)
            rep.append(report_s)

        run = {
            "raw_defaults": lambda: walls["raw_defaults"].append(run_raw(n, storage, loggers="defaults")),
            "raw": lambda: walls["raw"].append(run_raw(n, storage)),
            "raw_checkpoint": lambda: walls["raw_checkpoint"].append(run_raw(n, storage, checkpoint=True)),
            "ours": ours_side,
            "ours_checkpoint": lambda: walls["ours_checkpoint"].append(run_ours(n, storage, True)[0]),
        }
        for i in range(args.repeats):
            for k in range(len(chosen)):  # the order rotates, so no side always runs first or last
                run[chosen[(i + k) % len(chosen)]]()
            line = ", ".join(f"{key} {walls[key][-1]:.1f} s" for key in chosen)
            extra = f" (+ report {rep[-1]:.1f} s)" if rep else ""
            log.append(f"repeat {i + 1}/{args.repeats}: {line}{extra}")
            print(log[-1], flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    if set(chosen) != set(SIDES):
        print(", ".join(f"{k} median {v:.2f} s ({n / v:.1f}/s)" for k, v in med.items()))
        return med

    def paired(a: str, b: str) -> float:
        """Median over repeats of a/b within each repeat (the sides of one repeat ran back to back)."""
        return statistics.median(x / y for x, y in zip(walls[a], walls[b], strict=True))

    r, rc = med["raw"], med["raw_checkpoint"]
    p = statistics.median(rep)
    rows = [
        "| side | median wall (s) | trials/s | ratio to raw (JSON + CSV) "
        "| ratio to raw (JSON + CSV) + checkpoint |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in SIDES.items():
        w = med[key]
        rows.append(f"| {label} | {w:.2f} | {n / w:.1f} | {w / r:.2f} | {w / rc:.2f} |")
    o, oc = med["ours"], med["ours_checkpoint"]
    rows.append(
        f"| raytune-opt run + report | {o + p:.2f} | {n / (o + p):.1f} | {(o + p) / r:.2f} "
        f"| {(o + p) / rc:.2f} |"
    )
    headline = (
        f"headline: raytune-opt/raw = {o / r:.2f} (paired {paired('ours', 'raw'):.2f}; target <= 1.1) "
        f"against raw Tune with the same loggers (JSON + CSV), {n / o:.1f} trials/s (target >= 10); "
        f"with a final checkpoint on both sides {oc / rc:.2f} "
        f"(paired {paired('ours_checkpoint', 'raw_checkpoint'):.2f}); "
        f"against raw Tune's defaults {o / med['raw_defaults']:.2f}"
    )
    text = "\n".join(rows)
    print(text)
    print(headline)
    if args.out is not None or not args.quick:  # (a subset of sides returned above)
        section = (
            f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {n} no-op trials x 3 reports, "
            f"{args.repeats} repeats, rotating order, {os.cpu_count()} CPUs, load average "
            f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n\n"
            "```\n" + "\n".join(log) + "\n```\n\n" + text + "\n\n" + headline + "\n"
        )
        _prepend(args.out or RESULTS, section)
    return {
        "raw_s": r,
        "raw_defaults_s": med["raw_defaults"],
        "raw_checkpoint_s": rc,
        "ours_s": o,
        "report_s": p,
        "ratio": o / r,
        "ours_checkpoint_s": oc,
        "ratio_checkpoint": oc / rc,
        "trials_per_s": n / o,
    }


if __name__ == "__main__":
    main()
