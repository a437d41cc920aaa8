"""Your data on disk, your model and your own training loop: raytune_opt gives the loop its optimizer,
fidelities, checkpoints and reporting (:class:`raytune_opt.train.user.Trial`).

The same files and model as ``signals.yaml`` (``signals.py``), without the task registry: a Ray Tune
function trainable with the user's own DataLoader (one loader worker reading the files) and epoch.
``@capabilities`` declares what PBT / PB2 (checkpoints) and Fabolas (a data fraction) need.

    python examples/own_data/write_data.py
    python examples/own_data/own_training_function.py [--strategy asha|pbt|fabolas] [--samples 8] [--epochs 6]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from raytune_opt.capabilities import capabilities
from raytune_opt.train.session import Session
from raytune_opt.train.user import Trial, tune_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
import signals  # noqa: E402  (this folder's module: the user's Dataset and model)


@capabilities(checkpoints=True, data_fraction=True)
def train_fn(config: dict[str, Any], session: Session | None = None) -> None:
    """The user's training function (``session``: a ``LocalSession`` runs it without Ray)."""
    trial = Trial(config, session)
    torch.manual_seed(config.get("seed", 0))
    model = signals.SignalNet(config.get("channels", 16))
    opt = trial.optimizer(model)  # config["optimizer"], "adamw.lr" → lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.9**epoch)
    trial.restore(model, opt, sched)  # a PBT clone's donor, or this trial's own checkpoint
    root = config.get("root") or signals.DEFAULT_ROOT
    train = trial.subset(signals.SignalFolder(root, "train"))  # data_fraction: stratified by targets
    workers = config.get("loader_workers", 1)
    loader = DataLoader(
        train, batch_size=64, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    val = DataLoader(signals.SignalFolder(root, "val"), batch_size=256)
    for _ in trial.epochs():
        model.train()
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            outs, ys = zip(*((model(xb), yb) for xb, yb in val), strict=True)
            out, y = torch.cat(outs), torch.cat(ys)
            val_loss = float(nn.functional.cross_entropy(out, y))
            accuracy = float((out.argmax(-1) == y).float().mean())
        metrics = {"val_loss": val_loss if math.isfinite(val_loss) else math.inf, "val_accuracy": accuracy}
        trial.report({**metrics, "lr": opt.param_groups[0]["lr"]}, model, opt, sched)


def tune_own_function(
    strategy: str = "asha",
    num_samples: int = 8,
    epochs: int = 6,
    root: str = "",
    storage: str | None = None,
    loader_workers: int = 1,
    **options: Any,
):
    """Tune ``train_fn``'s AdamW learning rate with ``strategy``; returns Ray's ``ResultGrid``."""
    from ray import cloudpickle

    # the workers get the code of signals.py and of this file with train_fn (they need not import them)
    for module in {signals, sys.modules[train_fn.__module__]}:
        if module.__name__ != "__main__":  # a script's own functions travel by value anyway
            cloudpickle.register_pickle_by_value(module)
    return tune_function(
        train_fn,
        strategy,
        {"adamw.lr": {"loguniform": [1e-4, 1e-1]}},
        {"optimizer": "adamw", "epochs": epochs, "root": root, "loader_workers": loader_workers},
        metric="val_accuracy",
        mode="max",
        num_samples=num_samples,
        name=f"own-data-{strategy}",
        storage=storage,
        **options,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="asha")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--root", default="", help="the data folder (default: examples/own_data/data)")
    parser.add_argument("--storage", default=None)
    args = parser.parse_args()
    results = tune_own_function(args.strategy, args.samples, args.epochs, args.root, args.storage)
    best = results.get_best_result(metric="val_accuracy", mode="max")
    print(f"best adamw.lr {best.config['adamw.lr']:.3g}: val_accuracy {best.metrics['val_accuracy']:.3f}")


if __name__ == "__main__":
    main()
