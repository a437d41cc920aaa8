"""The cost of PBT's pauses and exploits with fresh actors (``reuse_actors=False``) and reused ones.

Both sides run the same ``pbt`` experiment through :func:`raytune_opt.search.make_tune_config` on the
same local Ray, interleaved: a population of ``--population`` trials of a user's own training
function (:class:`raytune_opt.train.user.Trial`: a 16 → 1 linear model on fixed data, one report and
one checkpoint per iteration), ``--max-t`` iterations, a perturbation every ``--interval`` (the
issue's "PBT reporting every iteration" case), ``--concurrent`` trials at a time, seed 0. Every
perturbation pauses a trial while others wait (a stop and a start), and a lower-quantile one clones
a donor: with fresh actors each start is a new worker process (import torch, build the model);
with reuse, Ray resets the process for the next trial and restores the checkpoint into it.

The table: median wall time (``Tuner.fit``), trial starts (first runs and resumes after pauses and
exploits), worker processes used, exploits, seconds per start; the last line is the headline, the
reuse / fresh ratio of wall time and seconds per start. Decisions are the same on both sides with
``--concurrent 1`` (a seeded sequential run); with more, the order of completion may differ.

    python benchmarks/pbt_reuse.py            # population 4, 16 iterations, interval 1, 2 at once, 3 repeats
    python benchmarks/pbt_reuse.py --quick    # population 2, 4 iterations, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import torch

from raytune_opt.capabilities import capabilities


@capabilities(checkpoints=True)
def linear_fit(config: dict[str, Any]) -> None:
    """One iteration: a pass of minibatch steps over 256 fixed samples; reports ``val_loss``."""
    from raytune_opt.train.user import Trial

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    y = x @ torch.linspace(-1, 1, 16) + 0.1 * torch.randn(256, generator=g)
    trial = Trial(config)
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 1)
    opt = trial.optimizer(model)
    trial.restore(model, opt)
    for _ in trial.epochs():
        for i in torch.randperm(256).split(32):
            opt.zero_grad()
            ((model(x[i]).squeeze(-1) - y[i]) ** 2).mean().backward()
            opt.step()
        with torch.no_grad():
            val = ((model(x).squeeze(-1) - y) ** 2).mean().item()
        trial.report({"val_loss": val}, model, opt)


def _starts_callback() -> Any:
    from ray import tune

    class Starts(tune.Callback):
        """Counts trial starts in the driver: first runs and resumes, on fresh or reused actors."""

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            _Starts.count += 1

    return Starts()


class _Starts:
    count = 0


def run(reuse: bool, args: argparse.Namespace, storage: str) -> dict[str, float]:
    """One PBT experiment: wall time, trial starts, worker processes, exploits."""
    from ray import tune

    from raytune_opt.search import SearchSpace, make_tune_config

    cfg = make_tune_config(
        "pbt",
        SearchSpace({"lr": {"loguniform": [1e-3, 0.3]}}),
        metric="val_loss",
        mode="min",
        num_samples=args.population,
        max_t=args.max_t,
        seed=0,
        max_concurrent=args.concurrent,
        trainable=linear_fit,
        perturbation_interval=args.interval,
        reuse_actors=reuse,
    )
    tuner = tune.Tuner(
        tune.with_resources(linear_fit, {"CPU": 0.5}),
        param_space={"optimizer": "sgd", "epochs": args.max_t},
        tune_config=cfg,
        run_config=tune.RunConfig(
            name=f"pbt-{reuse}-{time.monotonic_ns()}",
            storage_path=storage,
            verbose=0,
            callbacks=[_starts_callback()],
        ),
    )
    _Starts.count = 0
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    assert len(grid) == args.population and not grid.errors
    pids = {int(p) for r in grid for p in r.metrics_dataframe["pid"]}
    starts = _Starts.count
    return {"wall": wall, "starts": starts, "pids": len(pids), "exploits": cfg.scheduler._num_perturbations}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--max-t", type=int, default=16)
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="population 2, 4 iterations, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.population, args.max_t, args.repeats = 2, 4, 1
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this script
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as storage:
        for i in range(args.repeats):
            for reuse in (False, True) if i % 2 == 0 else (True, False):  # alternate which goes first
                runs[reuse].append(run(reuse, args, storage))
                r = runs[reuse][-1]
                print(
                    f"repeat {i + 1}/{args.repeats} reuse_actors={reuse}: {r['wall']:.1f} s, "
                    f"{r['starts']} starts, {r['pids']} processes, {r['exploits']} exploits",
                    flush=True,
                )
    med = {reuse: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for reuse, rs in runs.items()}
    rows = [
        "| reuse_actors | median wall (s) | starts | processes | exploits | s per start | s per exploit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for reuse in (False, True):
        m = med[reuse]
        per_exploit = m["wall"] / m["exploits"] if m["exploits"] else float("nan")
        rows.append(
            f"| {reuse} | {m['wall']:.2f} | {m['starts']:.0f} | {m['pids']:.0f} | {m['exploits']:.0f} "
            f"| {m['wall'] / m['starts']:.3f} | {per_exploit:.3f} |"
        )
    fresh, reused = med[False], med[True]
    per_start = (reused["wall"] / reused["starts"]) / (fresh["wall"] / fresh["starts"])
    headline = (
        f"headline: reuse/fresh wall time = {reused['wall'] / fresh['wall']:.2f}, seconds per start "
        f"{per_start:.2f} (population {args.population}, {args.max_t} iterations, interval "
        f"{args.interval}, {args.concurrent} at a time, {args.repeats} repeats, load "
        f"{os.getloadavg()[0]:.1f})"
    )
    print("\n".join(rows))
    print(headline)
    return {"fresh_s": fresh["wall"], "reuse_s": reused["wall"], "ratio": reused["wall"] / fresh["wall"]}


if __name__ == "__main__":
    main()
