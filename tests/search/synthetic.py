"""A cheap synthetic trainable for the search tests: a known optimum, a learning curve, checkpoints.

The space is conditional (``mom`` only under ``opt = a``, ``width`` only under ``opt = b``)::

    f(x) = (log10 lr + 2)² / 4 + { (mom − 0.7)²                      if opt = a
                                 { 0.1 + (log2 width − 3)² / 25      if opt = b

minimum 0 at ``opt = a, lr = 1e-2, mom = 0.7``. The loss reported at iteration ``t`` on the data
fraction ``s`` is ``f(x) + 0.3 (1 − s)² + 0.5 / t`` (a learning curve that keeps the ranking of
configurations, so successive halving and Fabolas' small-``s`` trials are informative).
``diverge_lr`` makes ``lr`` above it report ``NaN``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
from typing import Any

from ray import cloudpickle, tune

from raytune_opt.search import SearchSpace, capabilities

# Ray workers cannot import this test helper: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SPACE = {
    "opt": {"choice": ["a", "b"]},
    "lr": {"loguniform": [1e-4, 1.0]},
    "mom": {"uniform": [0.0, 1.0], "when": {"opt": "a"}},
    "width": {"int": [1, 32], "log": True, "when": {"opt": "b"}},
}


def space() -> SearchSpace:
    return SearchSpace(SPACE)


def objective(config: dict) -> float:
    """``f(x)`` above: the loss of a fully trained configuration on all of the data."""
    v = (math.log10(config["lr"]) + 2) ** 2 / 4
    if config["opt"] == "a":
        return v + (config["mom"] - 0.7) ** 2
    return v + 0.1 + (math.log2(config["width"]) - 3) ** 2 / 25


@capabilities(checkpoints=True, data_fraction=True)
def trainable(config: dict) -> None:
    """Reports ``loss`` for ``t = 1 .. max_t``; with ``checkpoint`` it saves ``{t, owner}`` each
    iteration and resumes from ``tune.get_checkpoint()`` (reporting whose checkpoint as ``donor``, the
    step it was saved at as ``start`` and the learning rate its owner trained with as ``donor_lr``)."""
    me = tune.get_context().get_trial_id()
    start, donor, donor_lr = 0, me, config["lr"]
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "state.json")) as fh:
            state = json.load(fh)
        start, donor, donor_lr = state["t"], state["owner"], state["lr"]
    s = config.get("data_fraction", 1.0)
    diverged = config["lr"] > config.get("diverge_lr", math.inf)
    for t in range(start + 1, config["max_t"] + 1):
        loss = math.nan if diverged else objective(config) + 0.3 * (1 - s) ** 2 + 0.5 / t
        metrics = {"loss": loss, "cost": s, "lr_used": config["lr"], "donor": donor, "start": start}
        metrics["donor_lr"] = donor_lr
        if config.get("checkpoint", False):
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as fh:
                    json.dump({"t": t, "owner": me, "lr": config["lr"]}, fh)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)


class InterruptOnce(tune.Callback):
    """Interrupts the experiment like Ctrl+C (SIGINT: Tune saves its state and returns) once
    ``n`` trials have reported — the first run only: a marker file keeps the restored run (which
    unpickles this callback afresh) going to the end."""

    def __init__(self, n: int, marker: str) -> None:
        self.n, self.marker = n, marker
        self.seen: set[str] = set()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.seen.add(trial.trial_id)
        if len(self.seen) >= self.n and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGINT)
