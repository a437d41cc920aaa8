"""Your own training function, tuned by raytune_opt's strategies: your model, your Dataset, your loop.

No task registry and no YAML: a plain Ray Tune function trainable that takes four things from
:class:`raytune_opt.train.user.Trial` — the optimizer built from the trial's config (here
``adamw.lr``, an optimizer-aware key), the fidelities (``epochs``, ``data_fraction``), checkpoints
(model + optimizer + scheduler + RNG, so PBT / PB2 can clone trials and a resumed run continues)
and reporting. It declares what it supports with ``@capabilities``; ``make_tune_config`` checks that
for the chosen strategy (PBT needs checkpoints, Fabolas a data fraction).

    python examples/own_training_function.py [--strategy asha] [--samples 8] [--epochs 6]
    python examples/own_training_function.py --strategy pbt
    python examples/own_training_function.py --strategy fabolas --samples 10
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from raytune_opt.capabilities import capabilities
from raytune_opt.train.session import Session
from raytune_opt.train.user import Trial, tune_function


class Blobs(Dataset):
    """The user's own data set: ``n`` points around 4 class centres in 8 dimensions (with ``targets``,
    so ``Trial.subset`` draws class-stratified subsets)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        centres = torch.randn(4, 8, generator=torch.Generator().manual_seed(1234)) * 2
        self.targets = torch.arange(n) % 4
        self.x = centres[self.targets] + torch.randn(n, 8, generator=g) * 1.5

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.targets[i]


class Net(nn.Module):
    """The user's own model."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``loader``."""
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for xb, yb in loader:
        out = model(xb)
        loss += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(-1) == yb).sum())
        n += len(yb)
    model.train()
    return loss / n, correct / n


@capabilities(checkpoints=True, data_fraction=True)
def train_fn(config: dict, session: Session | None = None) -> None:
    """The user's training function: a Ray Tune function trainable (``session``: a
    ``raytune_opt.train.LocalSession`` runs it without Ray, as the tests do)."""
    trial = Trial(config, session)
    torch.manual_seed(config.get("seed", 0))
    model = Net(config.get("hidden", 32))
    opt = trial.optimizer(model)  # config["optimizer"] with "adamw.lr" → lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.9**epoch)
    trial.restore(model, opt, sched)  # a PBT clone's donor, or this trial's own checkpoint
    train = trial.subset(Blobs(2000, seed=0))  # the data_fraction share (Fabolas), stratified
    loader = DataLoader(train, batch_size=config.get("batch_size", 64), shuffle=True)
    val = DataLoader(Blobs(500, seed=1), batch_size=500)
    for _ in trial.epochs():
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        val_loss, acc = evaluate(model, val)
        if not math.isfinite(val_loss):
            val_loss = math.inf
        trial.report(
            {"val_loss": val_loss, "val_accuracy": acc, "lr": opt.param_groups[0]["lr"]}, model, opt, sched
        )


def tune_own_function(
    strategy: str = "asha",
    num_samples: int = 8,
    epochs: int = 6,
    storage: str | None = None,
    seed: int = 0,
    **options: object,
):
    """Tune ``train_fn``'s AdamW learning rate with ``strategy``; returns Ray's ``ResultGrid``."""
    return tune_function(
        train_fn,
        strategy,
        {"adamw.lr": {"loguniform": [1e-3, 0.3]}},
        {"optimizer": "adamw", "epochs": epochs, "batch_size": 64},
        metric="val_loss",
        mode="min",
        num_samples=num_samples,
        name=f"own-{strategy}",
        storage=storage,
        seed=seed,
        **options,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="asha")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--storage", default=None)
    args = parser.parse_args()
    results = tune_own_function(args.strategy, args.samples, args.epochs, args.storage)
    best = results.get_best_result(metric="val_loss", mode="min")
    print(f"best adamw.lr {best.config['adamw.lr']:.3g}: val_loss {best.metrics['val_loss']:.4f}")


if __name__ == "__main__":
    main()
