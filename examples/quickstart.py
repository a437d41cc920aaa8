"""The main job: which optimizer of the zoo trains a digits MLP best, after tuning its learning rate?

For each optimizer, ASHA (Ray Tune) searches its learning rate over the recommended range from
``raytune_opt.optim.available()`` on a local Ray; the script prints a table of each optimizer's
best validation accuracy and saves a bar chart. Runs in about two minutes on 2 cores.

    python examples/quickstart.py [--optimizers sgd momentum adam adamw lion] [--samples 6]
                                  [--epochs 6] [--out results/quickstart] [--address auto]

Also a ``ray submit clusters/<cloud>.yaml examples/quickstart.py -- --address auto`` target.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import ray
from ray import tune

from raytune_opt import optim
from raytune_opt.search import SearchSpace, make_tune_config
from raytune_opt.train import trainable


def tune_optimizer(name: str, args: argparse.Namespace, storage: Path) -> dict:
    """ASHA over ``name``'s recommended lr range; returns the best trial's summary."""
    h = optim.available()[name].hparams["lr"]
    space = SearchSpace({"lr": {"loguniform": [h.low, h.high]}})
    fixed = {"task": "digits-mlp", "optimizer": name, "epochs": args.epochs, "batch_size": 64}
    tune_config = make_tune_config(
        "asha", space, metric="val_accuracy", mode="max", num_samples=args.samples, max_t=args.epochs, seed=0
    )
    start = time.perf_counter()
    grid = tune.Tuner(
        trainable(fixed),
        param_space=fixed,
        tune_config=tune_config,
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0),
    ).fit()
    best = grid.get_best_result()
    return {
        "optimizer": name,
        "best_val_accuracy": best.metrics["val_accuracy"],
        "best_lr": best.config["lr"],
        "trials": len(grid),
        "failed": sum(r.error is not None for r in grid),
        "wall_s": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ["sgd", "momentum", "nesterov", "adam", "adamw", "lion"]
    parser.add_argument("--optimizers", nargs="+", default=default)
    parser.add_argument("--samples", type=int, default=6, help="trials per optimizer")
    parser.add_argument("--epochs", type=int, default=6, help="max epochs per trial (ASHA's max_t)")
    parser.add_argument("--out", type=Path, default=Path("results/quickstart"))
    parser.add_argument("--address", default=None, help="Ray cluster to join ('auto'); default: local")
    args = parser.parse_args()
    for name in args.optimizers:
        optim.spec(name)  # bad names fail here, before Ray starts
    args.out.mkdir(parents=True, exist_ok=True)
    storage = args.out.resolve() / "ray"
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)

    rows = []
    for i, name in enumerate(args.optimizers, 1):
        print(f"[{i}/{len(args.optimizers)}] tuning {name} ({args.samples} trials, ASHA) ...", flush=True)
        rows.append(tune_optimizer(name, args, storage))
        r = rows[-1]
        acc, lr, secs = r["best_val_accuracy"], r["best_lr"], r["wall_s"]
        print(f"    best val_accuracy {acc:.3f} at lr {lr:.2e} ({secs:.0f} s)")

    table = [
        "| optimizer | best val_accuracy | best lr | trials | failed |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(rows, key=lambda r: -r["best_val_accuracy"]):
        table.append(
            f"| {r['optimizer']} | {r['best_val_accuracy']:.3f} | {r['best_lr']:.2e} "
            f"| {r['trials']} | {r['failed']} |"
        )
    (args.out / "table.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r["optimizer"] for r in rows], [r["best_val_accuracy"] for r in rows], color="tab:blue")
    ax.set_ylabel("best validation accuracy")
    ax.set_ylim(min(r["best_val_accuracy"] for r in rows) - 0.05, 1.0)
    ax.set_title("digits-mlp: each optimizer after ASHA over its lr")
    fig.tight_layout()
    fig.savefig(args.out / "optimizers.png", dpi=120)
    print(f"wrote {args.out / 'table.md'} and {args.out / 'optimizers.png'}")
    ray.shutdown()


if __name__ == "__main__":
    main()
