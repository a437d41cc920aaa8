"""Per-trial overhead of ``raytune-opt run`` against raw ``ray.tune.Tuner``, side by side in one run.

Both run N no-op trials that report 3 times, on the same local Ray, with ``reuse_actors=True``:

- raw Tune: a function trainable that calls ``tune.report`` 3 times, random search over one float
  (Tune's ``BasicVariantGenerator``), ``verbose=0``; and the same trainable whose last report carries a
  checkpoint (a 1-weight model's state, as raytune-opt's trial saves at its end: the round trip Tune makes
  for every checkpoint — persist in the trial, register in the driver — is then on both sides);
- raytune-opt: an :class:`raytune_opt.Experiment` (random strategy over ``lr``) on a registered
  no-op task (one sample, a 1-weight linear model: the training loop runs, the work is nil), 3 epochs —
  validation, our searcher, the trial's loop and ``experiment.json``; with no checkpoint
  (``checkpoint_every: 0, checkpoint_at_end: false``: the same work as raw Tune) and with the final
  checkpoint that trials save by default (against raw Tune + checkpoint); the report (plots) is timed
  separately.

Each side runs ``--repeats`` times, interleaved, in an order that rotates from repeat to repeat (no
side always first or last); the table has the median wall time (``Tuner.fit`` start to end), trials/s
and the ratio. The last line is the headline: ratio of the run (target ≤ 1.1) and raytune-opt's
trials/s (target ≥ 10 on 2 cores).

    python benchmarks/overhead.py            # 200 trials, 3 repeats
    python benchmarks/overhead.py --quick    # 10 trials, 1 repeat (the test suite runs this)
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


def run_raw(n: int, storage: str, checkpoint: bool = False) -> float:
    from ray import tune

    tuner = tune.Tuner(
        raw_noop,
        param_space={"lr": tune.loguniform(1e-4, 1e-1), "checkpoint": checkpoint},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", num_samples=n, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name=f"raw-{time.monotonic_ns()}", verbose=0),
    )
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
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


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 trials, 1 repeat")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"markdown table (default {RESULTS}, not --quick)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.repeats = 10, 1
    import ray

    from raytune_opt.tasks import available_tasks, register_task

    if "noop" not in available_tasks():
        register_task("noop", noop_task)
    from raytune_opt.experiment import connect

    if not ray.is_initialized():
        connect(None, progress=False)  # the runner's own local Ray (workers preload torch)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    raw, raw_ckpt, ours, ours_ckpt, rep = [], [], [], [], []
    with tempfile.TemporaryDirectory() as storage:

        def ours_side() -> None:
            wall, report_s = run_ours(args.trials, storage)
            ours.append(wall)
            rep.append(report_s)

        sides = [
            lambda: raw.append(run_raw(args.trials, storage)),
            lambda: raw_ckpt.append(run_raw(args.trials, storage, checkpoint=True)),
            ours_side,
            lambda: ours_ckpt.append(run_ours(args.trials, storage, checkpoint=True)[0]),
        ]
        for i in range(args.repeats):
            for k in range(len(sides)):  # the order rotates, so no side always runs first or last
                sides[(i + k) % len(sides)]()
            print(f"repeat {i + 1}/{args.repeats}: raw {raw[-1]:.1f} s,", end="")
            print(f" raw + checkpoint {raw_ckpt[-1]:.1f} s,", end="")
            print(f" raytune-opt {ours[-1]:.1f} s (+ report {rep[-1]:.1f} s),", end="")
            print(f" raytune-opt + checkpoint {ours_ckpt[-1]:.1f} s")
    r, rc, o, oc, p = (statistics.median(x) for x in (raw, raw_ckpt, ours, ours_ckpt, rep))
    n = args.trials
    rows = [
        "| side | median wall (s) | trials/s | ratio to raw | ratio to raw + checkpoint |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| raw ray.tune.Tuner | {r:.2f} | {n / r:.1f} | 1.00 | {r / rc:.2f} |",
        f"| raw ray.tune.Tuner + final checkpoint | {rc:.2f} | {n / rc:.1f} | {rc / r:.2f} | 1.00 |",
        f"| raytune-opt run | {o:.2f} | {n / o:.1f} | {o / r:.2f} | {o / rc:.2f} |",
        f"| raytune-opt run + final checkpoint | {oc:.2f} | {n / oc:.1f} | {oc / r:.2f} | {oc / rc:.2f} |",
        f"| raytune-opt run + report | {o + p:.2f} | {n / (o + p):.1f} | {(o + p) / r:.2f} "
        f"| {(o + p) / rc:.2f} |",
    ]
    headline = (
        f"headline: raytune-opt/raw = {o / r:.2f} (target <= 1.1), {n / o:.1f} trials/s (target >= 10); "
        f"with a final checkpoint on both sides {oc / rc:.2f}"
    )
    text = "\n".join(rows)
    print(text)
    print(headline)
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            f"# overhead ({n} no-op trials x 3 reports, median of {args.repeats}, {os.cpu_count()} CPUs)\n\n"
            f"{text}\n\n{headline}\n"
        )
    return {
        "raw_s": r,
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
