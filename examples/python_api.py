"""The Python API: the same experiment as a YAML file, built in a script.

Which learning-rate schedule suits Lion on the MNIST-1D CNN? ASHA over Lion's own ranges and the
schedule, on a local Ray (or ``--address auto`` on a cluster); prints the plan, the live status and
the best configuration, and writes the report (summary.json, trials.csv, plots, report.md).

    python examples/python_api.py [--samples 12] [--epochs 9] [--address auto] [--dry-run]
    ray submit clusters/aws.yaml examples/python_api.py -- --address auto
"""

from __future__ import annotations

import argparse

from raytune_opt import Experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--address", default=None, help="Ray cluster to join ('auto'); default: local")
    parser.add_argument("--storage", default="results")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()

    exp = Experiment.from_dict(
        {
            "name": "lion-schedules",
            "task": "mnist1d-cnn",
            "train": {"epochs": args.epochs, "batch_size": 128},
            "search": {
                "strategy": "asha",
                "optimizers": ["lion"],
                "space": {"schedule": {"choice": ["constant", "cosine", "warmup_cosine"]}},
                "num_samples": args.samples,
                "metric": "val_accuracy",
            },
            "run": {"storage_path": args.storage, "address": args.address},
        }
    )
    print(exp.plan())
    if not args.dry_run:
        result = exp.run()
        print(f"best {result.summary.get('metric')}: {result.summary.get('best_metric')}")


if __name__ == "__main__":
    main()
