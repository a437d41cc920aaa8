"""Sample efficiency of every search strategy, side by side, on the real local Ray.

Problems (both minimised, known optimum, fidelity in (0, 1]):

* ``counting-ones`` — 4 binary + 4 continuous parameters (Falkner et al. 2018, BOHB):
  ``f(x) = −(Σ c_i + Σ mean of b Bernoulli(x_j) draws)`` at budget ``b = 9 … 729``
  (fidelity ``b / 729``); optimum −8.
* ``hartmann`` — botorch's ``AugmentedHartmann`` 6-d function with its fidelity ``s`` as the data
  fraction; cost ∝ ``s``; optimum −3.32237 at ``s = 1``.

Each trial reports at the rungs ``t = 1, 3, 9, 27, 81`` (fidelity ``t / 81``) under the
multi-fidelity schedulers and PBT/PB2, once at ``t = 81`` otherwise, or once at its
``data_fraction`` under Fabolas. Every strategy gets the same budget in *full-fidelity
evaluations*: cost accrues as the fidelity a trial adds, and the run stops when it is spent.
The incumbent at any time is the configuration with the lowest observed loss among those seen
at the highest fidelity so far; its regret is its true full-fidelity value minus the optimum.

Prints, per problem, the median regret (with the 25–75 % spread) at 10/25/50/100 % of the budget
and the time-to-target speedup against random search (target: random's final median regret),
and saves an anytime plot. ``--quick``: 2 seeds, a budget of 4 (the test runs it on a subset).

    python benchmarks/hpo_strategies.py --seeds 10 --budget 30
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ray import cloudpickle, tune

from raytune_opt.search import STRATEGIES, SearchSpace, make_tune_config

cloudpickle.register_pickle_by_value(sys.modules[__name__])

RUNGS = (1, 3, 9, 27, 81)
MAX_T = 81
MULTI_FIDELITY = {"hyperband", "asha", "bohb", "pbt", "pb2"}
FRACTIONS = (0.1, 0.25, 0.5, 1.0)


# ---------------------------------------------------------------------- problems
def counting_ones(config: dict, fidelity: float, seed: int) -> float:
    b = int(round(729 * fidelity))
    key = hash((tuple(round(config[f"x{j}"], 9) for j in range(4)), b, seed)) % 2**32
    rng = np.random.default_rng(key)
    draws = sum(rng.binomial(b, config[f"x{j}"]) / b for j in range(4))
    return -(sum(config[f"c{i}"] for i in range(4)) + draws)


def counting_ones_true(config: dict) -> float:
    return -(sum(config[f"c{i}"] for i in range(4)) + sum(config[f"x{j}"] for j in range(4)))


def hartmann(config: dict, fidelity: float, seed: int = 0) -> float:
    import torch
    from botorch.test_functions.multi_fidelity import AugmentedHartmann

    x = torch.tensor([[config[f"x{j}"] for j in range(6)] + [fidelity]], dtype=torch.float64)
    return float(AugmentedHartmann()(x))


PROBLEMS = {
    "counting-ones": (
        {
            **{f"c{i}": {"choice": [0, 1]} for i in range(4)},
            **{f"x{j}": {"uniform": [0, 1]} for j in range(4)},
        },
        counting_ones,
        counting_ones_true,
        -8.0,
    ),
    "hartmann": (
        {f"x{j}": {"uniform": [0, 1]} for j in range(6)},
        hartmann,
        lambda c: hartmann(c, 1.0),
        -3.32237,
    ),
}


def bench_trainable(config: dict) -> None:
    """Reports ``loss`` at its rungs; ``spent`` is the fidelity added since the last report."""
    _, value, _, _ = PROBLEMS[config["problem"]]
    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "t.json")) as fh:
            start = json.load(fh)["t"]
    if "data_fraction" in config:
        s = config["data_fraction"]
        tune.report({"loss": value(config, s, config["seed"]), "iter": MAX_T, "fidelity": s, "spent": s})
        return
    rungs = RUNGS if config["rungs"] else (MAX_T,)
    prev = start / MAX_T
    for t in rungs:
        if t <= start:
            continue
        fid = t / MAX_T
        metrics = {
            "loss": value(config, fid, config["seed"]),
            "iter": t,
            "fidelity": fid,
            "spent": fid - prev,
        }
        prev = fid
        if config["rungs"]:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "t.json"), "w") as fh:
                    json.dump({"t": t}, fh)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)


#: results of the running experiment, by name: the Tuner copies its callbacks and stoppers, the
#: driver process is one, so the ledger lives here
LEDGERS: dict[str, list] = {}


def spent(name: str) -> float:
    return LEDGERS[name][-1][0] if LEDGERS.get(name) else 0.0


class Ledger(tune.Callback):
    """Records every result in arrival order with the cumulative cost."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        cost = spent(self.name) + float(result.get("spent", 0.0))
        event = (cost, float(result["fidelity"]), float(result["loss"]), dict(trial.config))
        LEDGERS.setdefault(self.name, []).append(event)


class Budget(tune.Stopper):
    """Stops the experiment once ``budget`` full-fidelity evaluations are spent."""

    def __init__(self, name: str, budget: float) -> None:
        self.name, self.budget = name, budget

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return spent(self.name) >= self.budget


def trace(events, true_value, optimum) -> list[tuple[float, float]]:
    """(cost, regret of the incumbent) after each result."""
    out, top, best, inc = [], -1.0, math.inf, None
    for cost, fid, loss, config in events:
        if fid > top + 1e-12:
            top, best, inc = fid, math.inf, None
        if fid >= top - 1e-12 and math.isfinite(loss) and loss < best:
            best, inc = loss, config
        if inc is not None:
            out.append((cost, true_value(inc) - optimum))
    return out


def regret_at(tr, cost) -> float:
    vals = [r for c, r in tr if c <= cost + 1e-9]
    return vals[-1] if vals else math.nan


def time_to_target(traces: list, target: float) -> float:
    """Median over seeds of the cost at which the regret first reaches ``target`` (inf: never)."""
    return float(np.median([next((c for c, r in tr if r <= target + 1e-12), math.inf) for tr in traces]))


def run_one(strategy: str, problem: str, seed: int, budget: float, storage: str) -> list[tuple[float, float]]:
    spec, _, true_value, optimum = PROBLEMS[problem]
    space = SearchSpace(spec)
    n = {"fabolas": int(6 * budget), "grid": 1}.get(strategy, int(20 * budget))
    opts: dict = {"time_attr": "iter"}
    if strategy == "grid":
        opts["points"] = 2
    if strategy == "fabolas":
        opts.update(cost_attr="spent", n_candidates=128)
    if strategy in ("pbt", "pb2"):
        n, opts["perturbation_interval"] = 8, 9
    cfg = make_tune_config(
        strategy,
        space,
        metric="loss",
        mode="min",
        num_samples=n,
        max_t=MAX_T,
        seed=seed,
        max_concurrent=2,
        **opts,
    )
    name = f"{problem}-{strategy}-{seed}"
    LEDGERS[name] = []
    rungs = strategy in MULTI_FIDELITY
    tune.Tuner(
        bench_trainable,
        tune_config=cfg,
        param_space={"problem": problem, "seed": seed, "rungs": rungs},
        run_config=tune.RunConfig(
            name=name, storage_path=storage, stop=Budget(name, budget), callbacks=[Ledger(name)], verbose=0
        ),
    ).fit()
    return trace(LEDGERS.pop(name), true_value, optimum)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, budget 4")
    ap.add_argument("--seeds", type=int, default=None, help="default 10 (2 with --quick)")
    ap.add_argument("--budget", type=float, default=None, help="in full-fidelity evaluations (30; 4 quick)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    args.seeds = args.seeds or (2 if args.quick else 10)
    args.budget = args.budget or (4.0 if args.quick else 30.0)
    strategies = args.strategies.split(",")
    if "random" not in strategies:
        strategies.insert(0, "random")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    t0 = time.time()
    results: dict = {}
    with tempfile.TemporaryDirectory() as storage:
        for problem in args.problems.split(","):
            for strategy in strategies:
                results[(problem, strategy)] = []
                for seed in range(args.seeds):
                    tr = run_one(strategy, problem, seed, args.budget, storage)
                    results[(problem, strategy)].append(tr)
                    final = tr[-1] if tr else (math.nan, math.nan)
                    print(
                        f"[{time.time() - t0:6.0f}s] {problem} {strategy} seed {seed}: "
                        f"cost {final[0]:.2f}, regret {final[1]:.4f}",
                        flush=True,
                    )
    lines = report(results, args, time.time() - t0)
    plot(results, args, Path(args.out) / "hpo_strategies.png")
    return {"lines": lines, "results": results}


def report(results: dict, args, seconds: float) -> list[str]:
    lines = [
        f"# HPO strategies: {args.seeds} seeds, budget {args.budget:g} full-fidelity evaluations, "
        f"{seconds / 60:.1f} min",
        "",
    ]
    headline = []
    for problem in dict.fromkeys(p for p, _ in results):
        lines += [
            f"## {problem}: median regret [25%, 75%] at a share of the budget; speedup = random's time "
            "to reach its final median regret / the strategy's",
            "",
            "| strategy | "
            + " | ".join(f"{int(q * 100)}%" for q in FRACTIONS)
            + " | time-to-target speedup |",
            "|---" * (len(FRACTIONS) + 2) + "|",
        ]
        rand = results[(problem, "random")]
        target = float(np.nanmedian([regret_at(tr, args.budget) for tr in rand]))
        t_rand = time_to_target(rand, target)
        for (p, strategy), traces in results.items():
            if p != problem:
                continue
            cells = []
            for q in FRACTIONS:
                r = np.array([regret_at(tr, q * args.budget) for tr in traces])
                if np.isnan(r).all():
                    cells.append("—")
                else:
                    lo, med, hi = np.nanpercentile(r, [25, 50, 75])
                    cells.append(f"{med:.3f} [{lo:.3f}, {hi:.3f}]")
            t = time_to_target(traces, target)
            speed = t_rand / t if math.isfinite(t) and t > 0 else 0.0
            headline.append((problem, strategy, speed))
            lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {speed:.2f}× |")
        lines.append("")
    best = max((h for h in headline if h[1] != "random"), key=lambda h: h[2], default=None)
    if best:
        lines.append(
            f"headline: fastest to random's final regret: {best[1]} on {best[0]}, {best[2]:.2f}× random"
        )
    print("\n".join(lines))
    return lines


def plot(results: dict, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(p for p, _ in results))
    fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4), squeeze=False)
    grid = np.linspace(0, args.budget, 60)
    for ax, problem in zip(axes[0], problems, strict=True):
        for (p, strategy), traces in results.items():
            if p != problem:
                continue
            curves = np.array([[regret_at(tr, c) for c in grid] for tr in traces])
            with np.errstate(all="ignore"):
                med = np.nanmedian(np.where(np.isnan(curves), np.inf, curves), axis=0)
            ax.step(grid, np.where(np.isfinite(med), med, np.nan), where="post", label=strategy)
        ax.set(title=problem, xlabel="cost (full-fidelity evaluations)", ylabel="median regret", yscale="log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
