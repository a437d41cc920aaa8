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
    python benchmarks/overhead.py --sizes 1000,5000,10000   # scaling mode (issue 20)
    python benchmarks/overhead.py --sizes 1000,5000 --fresh # ... each side and size in a fresh process

Scaling mode (``--sizes``): at each size, raw Tune (JSON + CSV, ``raw``) and raytune-opt (``ours``) run
once each (the order alternates from size to size; 2 unmeasured trials of each side first), and the table
has the wall time, trials/s and the driver's RSS during the run — its peak (sampled every 0.2 s in a
background thread, from ``/proc/self/status`` or psutil) and at the end — then, for raytune-opt, the
peak while its report is written (apart: raw Tune writes none), and the process's ``ru_maxrss``
(monotone over the whole process, the report included, so only the first row it grows in is that
side's own). The ratios:
ours/raw trials/s at each size (target within 10 %) and RSS(largest)/RSS(smallest) per side, peak and end
(target <= 1.2 from 1000 to 10 000 trials; Ray #64231: the driver keeps every finished trial; the
raytune-opt side runs ``run.trials_per_fit`` trials a ``Tuner.fit``, ``--trials-per-fit``, 0: one fit,
:mod:`raytune_opt.experiment.fits`). A run
writes its section on top of ``benchmarks/results/overhead.md`` (``--out`` elsewhere); ``--quick`` with
``--sizes`` writes nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from raytune_opt.experiment import fits
from raytune_opt.experiment.fits import TRIALS_PER_FIT
from raytune_opt.storage import ExperimentFolder

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
    from raytune_opt import report

    wall, path = run_ours_experiment(n, storage, checkpoint)
    start = time.perf_counter()
    report.write(path)
    return wall, time.perf_counter() - start


def run_ours_experiment(n: int, storage: str, checkpoint: bool = False) -> tuple[float, Path]:
    """(wall time, folder) of ``n`` no-op trials through the experiment runner, without the report."""
    from raytune_opt import Experiment
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
            "run": {"storage_path": storage, "trials_per_fit": PER_FIT[0]},
        }
    )
    start = time.perf_counter()
    result = run_experiment(exp, progress=False, report=False)
    wall = time.perf_counter() - start
    # from Tune's saved states: result.grid of a run of several fits reads every trial back
    states = fits.trial_states(ExperimentFolder(storage, exp.name))
    assert len(states) == n and all(t["status"] == "TERMINATED" for t in states.values())
    return wall, Path(result.path)


#: ``run.trials_per_fit`` of the raytune-opt side (``--trials-per-fit``; None: one fit)
PER_FIT: list[int | None] = [TRIALS_PER_FIT]


def rss_mb() -> float:
    """The driver's current resident set size in MB (``/proc/self/status``, else psutil)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class RssSampler:
    """Samples :func:`rss_mb` every ``interval`` s in a daemon thread between ``__enter__`` and ``__exit__``;
    ``peak`` the largest sample, ``end`` the RSS after the block (after a ``gc.collect()``)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self.end = interval, 0.0, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self.peak = rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        gc.collect()
        self.end = rss_mb()
        self.peak = max(self.peak, self.end)


def maxrss_mb() -> float:
    """``ru_maxrss`` of this process in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SCALING_SIDES = {"raw": "raw Tune (JSON + CSV)", "ours": "raytune-opt"}


def measure(side: str, n: int, storage: str) -> dict[str, float]:
    """One scaling row: ``side`` ("raw" or "ours") with ``n`` trials, timed and its driver RSS sampled."""
    from raytune_opt import report as report_

    report = RssSampler()
    with RssSampler() as rss:  # the run only: the report's RSS is sampled apart
        wall, path = (run_raw(n, storage), None) if side == "raw" else run_ours_experiment(n, storage)
    if path is not None:
        with report:
            report_.write(path)
    return {
        "wall_s": wall,
        "trials_per_s": n / wall,
        "rss_peak_mb": rss.peak,
        "rss_end_mb": rss.end,
        "report_peak_mb": report.peak,
        "maxrss_mb": maxrss_mb(),
    }


#: the line a child process (``--one SIDE:N``) prints its row on
ONE_PREFIX = "overhead-row: "


def one(side: str, n: int) -> dict[str, float]:
    """``--one SIDE:N``: this process's warm-up (2 trials of each side, unmeasured), then one row,
    printed as :data:`ONE_PREFIX` + JSON."""
    with tempfile.TemporaryDirectory() as storage:
        run_raw(2, storage)
        run_ours(2, storage)
        row = measure(side, n, storage)
    print(ONE_PREFIX + json.dumps(row), flush=True)
    return row


def parse_one(stdout: str) -> dict[str, float]:
    """The row a ``--one`` child printed (its last :data:`ONE_PREFIX` line)."""
    lines = [x for x in stdout.splitlines() if x.startswith(ONE_PREFIX)]
    if not lines:
        raise RuntimeError(f"the child printed no row:\n{stdout[-2000:]}")
    return json.loads(lines[-1].removeprefix(ONE_PREFIX))


def measure_fresh(side: str, n: int) -> dict[str, float]:
    """:func:`measure` in a fresh Python process with its own local Ray (``--one``): no earlier run's
    memory in its RSS, no earlier run's actors or state in its Ray."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            *(sys.executable, str(Path(__file__).resolve()), "--one", f"{side}:{n}"),
            *("--trials-per-fit", str(PER_FIT[0] or 0)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"--one {side}:{n} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return parse_one(done.stdout)


def scaling(
    sizes: list[int], out: Path | None, fresh: bool = False
) -> dict[str, dict[int, dict[str, float]]]:
    """Scaling mode: each of ``SCALING_SIDES`` once at each size (``fresh``: each in its own process,
    :func:`measure_fresh`); prints (and writes to ``out``) the table."""
    rows: dict[str, dict[int, dict[str, float]]] = {k: {} for k in SCALING_SIDES}
    log: list[str] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as storage:
        if not fresh:
            run_raw(2, storage)  # warm-up, not measured: imports and the first trial actors on both sides
            run_ours(2, storage)
        for i, n in enumerate(sizes):
            order = list(SCALING_SIDES) if i % 2 == 0 else list(SCALING_SIDES)[::-1]
            for side in order:
                rows[side][n] = r = measure_fresh(side, n) if fresh else measure(side, n, storage)
                log.append(
                    f"{n} {side}: {r['wall_s']:.1f} s, {r['trials_per_s']:.1f} trials/s, RSS peak "
                    f"{r['rss_peak_mb']:.0f} MB, end {r['rss_end_mb']:.0f} MB, "
                    f"report peak {r['report_peak_mb']:.0f} MB, ru_maxrss {r['maxrss_mb']:.0f} MB"
                )
                print(log[-1], flush=True)
    table = [
        "| size | side | wall (s) | trials/s | driver RSS peak (MB) | driver RSS end (MB) "
        "| report RSS peak (MB) | ru_maxrss (MB) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:
        for side, label in SCALING_SIDES.items():
            r = rows[side][n]
            report = f"{r['report_peak_mb']:.0f}" if r["report_peak_mb"] else "-"
            table.append(
                f"| {n} | {label} | {r['wall_s']:.1f} | {r['trials_per_s']:.1f} | {r['rss_peak_mb']:.0f} "
                f"| {r['rss_end_mb']:.0f} | {report} | {r['maxrss_mb']:.0f} |"
            )
    speed = ", ".join(
        f"{n}: {rows['ours'][n]['trials_per_s'] / rows['raw'][n]['trials_per_s']:.2f}" for n in sizes
    )
    lo, hi = min(sizes), max(sizes)
    growth = "; ".join(
        f"{side} peak {rows[side][hi]['rss_peak_mb'] / rows[side][lo]['rss_peak_mb']:.2f}, "
        f"end {rows[side][hi]['rss_end_mb'] / rows[side][lo]['rss_end_mb']:.2f}"
        for side in SCALING_SIDES
    )
    ratios = (
        f"ours/raw trials/s by size (target >= 0.9): {speed}\n"
        f"driver RSS({hi})/RSS({lo}) (target <= 1.2): {growth}"
    )
    text = "\n".join(table)
    print(text)
    print(ratios)
    if out is not None:
        section = (
            f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: scaling, no-op trials x 3 reports at "
            f"sizes {', '.join(map(str, sizes))}, one run per side and size"
            f"{' (each in a fresh process)' if fresh else ''}, {os.cpu_count()} CPUs, load "
            f"average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n\n"
            "```\n" + "\n".join(log) + "\n```\n\n" + text + "\n\n" + ratios.replace("\n", "\n\n") + "\n"
        )
        _prepend(out, section)
    return rows


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
        "--sizes",
        default=None,
        help="scaling mode: comma-separated trial counts (e.g. 1000,5000,10000), raw and ours at each",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="scaling mode: each side and size in a fresh process"
    )
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # SIDE:N, a --fresh child
    parser.add_argument(
        "--trials-per-fit",
        type=int,
        default=TRIALS_PER_FIT,
        help=f"run.trials_per_fit of the raytune-opt side (default {TRIALS_PER_FIT}; 0: one Tuner.fit)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"markdown table (default {RESULTS}, not --quick)"
    )
    args = parser.parse_args(argv)
    PER_FIT[0] = args.trials_per_fit or None
    sizes = [int(x) for x in args.sizes.split(",") if x] if args.sizes else []
    if args.sizes is not None and (len(sizes) < 2 or min(sizes) < 1):
        parser.error("--sizes needs at least two positive trial counts")
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

    if not ray.is_initialized() and not (sizes and args.fresh):  # --fresh: each child has its own
        connect(None, progress=False)  # the runner's own local Ray (workers preload torch)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if args.one is not None:
        side, _, count = args.one.partition(":")
        if side not in SCALING_SIDES or not count.isdigit() or int(count) < 1:
            parser.error(f"--one takes SIDE:N with SIDE one of {list(SCALING_SIDES)}, not {args.one!r}")
        return one(side, int(count))
    if sizes:
        out = args.out if args.out is not None or args.quick else RESULTS
        return scaling(sizes, out, fresh=args.fresh)  # type: ignore[return-value]
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
