"""The comparison of optimizers (``search.compare: optimizers``) measured: is its ranking stable, and
does a tuned MNIST-1D model reach the published test accuracy?

``stability``: the same comparison run twice, search seeds 0 and 1 (everything else equal: task,
optimizers, strategy, ``num_samples``, ``max_t``, the train seeds of the retraining), each ending in
its ranking by mean test metric and Welch's t-tests between every pair (Holm-corrected, 5 %;
:mod:`raytune_opt.report.comparison`). ``--repeats r`` (``search.compare_repeats``): each run
searches every optimizer r times and its intervals and tests are over those searches; the two runs'
searches then share no search seed (0 + 11 j against 1 + 11 j) and no train seed of their trials
(0 … r-1 against r … 2r-1). Printed: both rankings, each pair's difference and
significance in both runs, and the headline — whether every significant difference agrees (a pair
significant in either run is significant in the other, in the same direction) and whether any is
reversed (significant in both, opposite directions).

``mnist1d``: per model (``mnist1d-mlp``, ``mnist1d-cnn``), one search (default ASHA over AdamW's
ranges, max_t ``--epochs`` 150 at batch 100: 4800 steps on the 3200 training signals, near the
paper's 6000) of the recipe :data:`RECIPE` — the paper's models (100-100 MLP, 25-channel CNN)
trained with random-translation augmentation (task arg ``shift``, training batches only) and a
cosine learning-rate schedule; ``--paper-recipe``: no augmentation, constant lr — stopped by
``search.time_budget_s`` (default 1800 s: 30 minutes of tuning on this machine's cores), then the
best configuration retrained over 5 train seeds and tested once on the held-out test split
(:func:`raytune_opt.experiment.evaluate.evaluate`). Printed beside the published numbers (Greydanus
2020, "Scaling down deep learning", MNIST-1D: MLP 68 %, CNN 94 % test accuracy) and this project's
targets (MLP ≥ 72 %, CNN ≥ 95 %): printed, not asserted. A run with a smaller ``--budget-s`` or
``--epochs`` says "reduced".

    python benchmarks/comparison.py stability                 # the quickstart's comparison, twice
    python benchmarks/comparison.py stability --samples 8 --epochs 9
    python benchmarks/comparison.py stability --optimizers adamw momentum sgd adagrad --epochs 3 \
        --repeats 6 --seeds 1                                 # searches as the replicates
    python benchmarks/comparison.py mnist1d                   # 30 min tuning per model, then 5 seeds
    python benchmarks/comparison.py mnist1d --models mlp --budget-s 600
    python benchmarks/comparison.py mnist1d --paper-recipe      # no augmentation, constant lr
    python benchmarks/comparison.py stability --quick         # digits-mlp, tiny (the test runs it)
    python benchmarks/comparison.py mnist1d --quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from typing import Any

#: Greydanus 2020, "Scaling down deep learning" (MNIST-1D), test accuracy of the paper's models
PUBLISHED = {"mlp": 0.68, "cnn": 0.94}
#: this project's targets for a tuned model (issue 16): printed beside, never asserted
TARGET = {"mlp": 0.72, "cnn": 0.95}
#: the recipe tuned (model → task args, train schedule): the paper's architectures, their training
#: signals randomly translated by up to ``shift`` positions (MNIST-1D's own nuisance), cosine lr.
#: Single plain-loop runs (AdamW lr 1e-2, wd 0.1, batch 100, 4800 steps, cosine, seed 0; test):
#: MLP 80.8 % (no shift, constant lr, 6000 steps: 66.9 %), CNN 96.4 % (no shift: 89.3 % with
#: the paper's Adam, constant lr 1e-2) — mnist1d.py's docstring has the rest
RECIPE = {"mlp": ({"shift": 4}, "cosine"), "cnn": ({"shift": 5}, "cosine")}
PAPER_RECIPE = {"mlp": ({}, "constant"), "cnn": ({}, "constant")}
FULL_BUDGET_S = 1800.0
FULL_EPOCHS = 150


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------ stability


def _comparison(args: argparse.Namespace, seed: int, storage: str) -> dict[str, Any]:
    from raytune_opt import Experiment

    exp = Experiment.from_dict(
        {
            "name": f"stability-seed{seed}",
            "task": args.task,
            "train": {
                "epochs": args.epochs,
                "batch_size": 128,
                "checkpoint_every": 0,
                "seed": 0 if args.repeats == 1 else seed * args.repeats,
            },
            "search": {
                "strategy": args.strategy,
                "optimizers": list(args.optimizers),
                "num_samples": args.samples,
                "seed": seed,
                "compare": "optimizers",
                "compare_seeds": args.seeds,
                "compare_repeats": args.repeats,
            },
            "run": {"storage_path": storage, "address": args.address},
        }
    )
    t0 = time.time()
    result = exp.run(progress=False)
    log(f"search seed {seed}: {time.time() - t0:.0f} s, {result.path}")
    return result.summary


def _pairs(summary: dict[str, Any]) -> dict[tuple[str, str], tuple[float, bool | None]]:
    """``(a, b)`` with a < b by name → (mean a - mean b, significant)."""
    out = {}
    for p in summary["pairs"]:
        a, b, d = p["a"], p["b"], p["diff"]
        if a > b:
            a, b, d = b, a, -d if d is not None else None
        out[(a, b)] = (d, p["significant"])
    return out


def agreement(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Pairs significant in either run; those that agree (significant in both, the same sign) and
    those reversed (significant in both, opposite signs)."""
    pa, pb = _pairs(first), _pairs(second)
    rows = []
    for key in sorted(set(pa) | set(pb)):
        (da, sa), (db, sb) = pa.get(key, (None, None)), pb.get(key, (None, None))
        same_sign = da is not None and db is not None and (da > 0) == (db > 0)
        rows.append(
            {
                "a": key[0],
                "b": key[1],
                "diff": [da, db],
                "significant": [sa, sb],
                "agree": (not sa and not sb) or bool(sa and sb and same_sign),
                "reversed": bool(sa and sb and not same_sign),
            }
        )
    significant = [r for r in rows if any(r["significant"])]
    return {
        "pairs": rows,
        "significant": len(significant),
        "agree": sum(r["agree"] for r in significant),
        "reversed": sum(r["reversed"] for r in rows),
        "all_agree": all(r["agree"] for r in significant),
    }


def stability(args: argparse.Namespace) -> dict[str, Any]:
    from raytune_opt.report import comparison_table

    storage = args.storage or tempfile.mkdtemp(prefix="comparison-stability-")
    log(
        f"{args.task}: {', '.join(args.optimizers)}; {args.strategy}, {args.samples} samples per optimizer, "
        f"max_t {args.epochs}, {args.seeds} train seeds"
        + (f", {args.repeats} searches per optimizer" if args.repeats > 1 else "")
        + f"; search seeds 0 and 1; storage {storage}"
    )
    runs = [_comparison(args, seed, storage) for seed in (0, 1)]
    for seed, s in zip((0, 1), runs, strict=True):
        print(f"\nsearch seed {seed}:\n")
        print(comparison_table(s))
    a = agreement(*runs)
    print("\n| a | b | mean a - b (seed 0) | significant | mean a - b (seed 1) | significant | agree |")
    print("|---|---|---|---|---|---|---|")
    for r in a["pairs"]:
        d = [f"{x:+.4f}" if x is not None else "-" for x in r["diff"]]
        sig = ["undefined" if x is None else "yes" if x else "no" for x in r["significant"]]
        print(
            f"| {r['a']} | {r['b']} | {d[0]} | {sig[0]} | {d[1]} | {sig[1]} | "
            f"{'yes' if r['agree'] else 'NO'} |"
        )
    print(
        f"\nsignificant in either run: {a['significant']} pair(s); agree in both: {a['agree']}; reversed: "
        f"{a['reversed']} -> every significant difference agrees: {'yes' if a['all_agree'] else 'no'}"
    )
    return {"runs": runs, **a}


# ------------------------------------------------------------------------------------ mnist1d


def mnist1d(args: argparse.Namespace) -> list[dict[str, Any]]:
    from raytune_opt import Experiment
    from raytune_opt.experiment import evaluate

    storage = args.storage or tempfile.mkdtemp(prefix="comparison-mnist1d-")
    reduced = args.budget_s < FULL_BUDGET_S or args.epochs < FULL_EPOCHS
    log(
        f"tuning {args.strategy} over {', '.join(args.optimizers)} for {args.budget_s:g} s per model "
        f"(max_t {args.epochs}, batch {args.batch_size}); then {args.seeds} seeds on the test split; "
        f"storage {storage}" + (" [reduced budget]" if reduced else "")
    )
    recipe = PAPER_RECIPE if args.paper_recipe else RECIPE
    rows = []
    for model in args.models:
        task = f"mnist1d-{model}"
        task_args, schedule = recipe[model]
        log(f"{task}: task args {task_args or 'none (the paper model)'}, schedule {schedule}")
        exp = Experiment.from_dict(
            {
                "name": task,
                "task": {"name": task, "args": dict(task_args)},
                "train": {
                    "epochs": args.epochs,
                    "batch_size": args.batch_size,
                    "schedule": schedule,
                    "checkpoint_every": 0,
                    "seed": 0,
                },
                "search": {
                    "strategy": args.strategy,
                    "optimizers": list(args.optimizers),
                    "num_samples": args.max_trials,
                    "seed": 0,
                    "time_budget_s": args.budget_s,
                },
                "run": {"storage_path": storage, "address": args.address},
            }
        )
        t0 = time.time()
        result = exp.run(progress=False)
        tuning = time.time() - t0
        test = evaluate(result.path, args.seeds, progress=False)
        row = {
            "model": model,
            "recipe": ", ".join([*(f"{k}={v}" for k, v in task_args.items()), schedule]),
            "tuning_s": tuning,
            "trials": result.summary["trials"]["total"],
            "best_val": result.summary["best_metric"],
            "best_config": result.summary["best_config"],
            "test_mean": test["mean"],
            "test_ci": test["ci"],
            "seeds": len(test["values"]),
            "test_values": list(test["values"]),
            "published": PUBLISHED[model],
            "target": TARGET[model],
        }
        rows.append(row)
        log(f"{task}: tuned {tuning:.0f} s, {row['trials']} trials; test {test['mean']:.4f}")
    mnist1d_table(rows, args, reduced)
    return rows


def mnist1d_table(rows: list[dict[str, Any]], args: argparse.Namespace, reduced: bool) -> None:
    """The printed result: one row per model beside the published number and the target."""
    print(
        "\n| model | recipe | tuning (s) | trials | best val_accuracy "
        "| test accuracy, mean over seeds [95% CI] | published (Greydanus 2020) | target | target met |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ci = r["test_ci"]
        shown = (
            f"{r['test_mean']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + f" (n={r['seeds']})"
        )
        print(
            f"| {r['model']} | {r['recipe']} | {r['tuning_s']:.0f} | {r['trials']} | "
            f"{r['best_val']:.4f} | {shown} | "
            f"{r['published']:.2f} | >= {r['target']:.2f} | "
            f"{'yes' if r['test_mean'] >= r['target'] else 'no'} |"
        )
    for r in rows:
        per_seed = ", ".join(f"{v:.4f}" for v in r.get("test_values", ()))
        print(f"\nbest configuration, {r['model']}: {r['best_config']}; test per seed: {per_seed}")
    ratios = ", ".join(f"{r['model']} {r['test_mean'] / r['published']:.3f}" for r in rows)
    print(
        f"\ntest accuracy / published: {ratios}"
        + (
            f"  [reduced budget: {args.budget_s:g} s tuning, max_t {args.epochs}, batch {args.batch_size}]"
            if reduced
            else ""
        )
    )


def main(argv: Sequence[str] | None = None) -> Any:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    st = sub.add_parser("stability", help="the comparison twice, search seeds 0 and 1")
    st.add_argument("--task", default=None, help="default mnist1d-mlp (quick: digits-mlp)")
    st.add_argument("--optimizers", nargs="+", default=None)
    st.add_argument("--strategy", default="asha")
    st.add_argument("--samples", type=int, default=None, help="per optimizer (default 16, the quickstart's)")
    st.add_argument("--epochs", type=int, default=None, help="max_t (default 30, the quickstart's)")
    st.add_argument("--seeds", type=int, default=None, help="train seeds of the retraining (default 3)")
    st.add_argument(
        "--repeats", type=int, default=1, help="searches per optimizer (search.compare_repeats; default 1)"
    )
    mn = sub.add_parser("mnist1d", help="tuned MNIST-1D test accuracy vs the published numbers")
    mn.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=None)
    mn.add_argument("--optimizers", nargs="+", default=None, help="searched (default adamw)")
    mn.add_argument("--strategy", default="asha")
    mn.add_argument(
        "--budget-s", type=float, default=None, help=f"tuning seconds per model ({FULL_BUDGET_S:g})"
    )
    mn.add_argument("--epochs", type=int, default=None, help=f"max_t (default {FULL_EPOCHS})")
    mn.add_argument("--batch-size", type=int, default=100, help="train.batch_size (default 100)")
    mn.add_argument("--max-trials", type=int, default=None, help="num_samples cap (default 1000)")
    mn.add_argument("--seeds", type=int, default=None, help="test seeds (default 5)")
    mn.add_argument(
        "--paper-recipe", action="store_true", help="no augmentation, constant lr (default: RECIPE)"
    )
    for s in (st, mn):
        s.add_argument("--quick", action="store_true", help="a tiny run (the test suite's)")
        s.add_argument("--storage", default=None, help="the experiments' folder (default: a temp dir)")
        s.add_argument("--address", default=None)
    args = p.parse_args(argv)
    q = args.quick
    if args.mode == "stability":
        args.task = args.task or ("digits-mlp" if q else "mnist1d-mlp")
        args.optimizers = tuple(
            args.optimizers or (("adamw", "momentum") if q else ("adamw", "lion", "momentum", "nesterov"))
        )
        args.samples = args.samples or (2 if q else 16)
        args.epochs = args.epochs or (2 if q else 30)
        args.seeds = args.seeds or (2 if q else 3)
        return stability(args)
    args.models = tuple(args.models or (("mlp",) if q else ("mlp", "cnn")))
    args.optimizers = tuple(args.optimizers or ("adamw",))
    args.budget_s = args.budget_s or (300.0 if q else FULL_BUDGET_S)  # quick: 2 trials end it first
    args.epochs = args.epochs or (2 if q else FULL_EPOCHS)
    args.max_trials = args.max_trials or (2 if q else 1000)
    args.seeds = args.seeds or (2 if q else 5)
    return mnist1d(args)


if __name__ == "__main__":
    main()
