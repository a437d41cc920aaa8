"""Sample efficiency and compute of every search strategy, side by side, against the papers' claims.

Problems (minimised, known optimum, a fidelity in (0, 1] whose cost is proportional to it):

* ``counting-ones`` — 4 binary + 4 continuous parameters (Falkner et al. 2018, BOHB):
  ``f(x) = −(Σ c_i + Σ mean of b Bernoulli(x_j) draws)`` at budget ``b = 9 … 729``
  (fidelity ``b / 729``); optimum −8.
* ``hartmann`` — botorch's ``AugmentedHartmann`` 6-d function with its fidelity ``s`` as the data
  fraction (Fabolas' setting: train on a share ``s`` of the data, cost ∝ ``s``); optimum −3.32237
  at ``s = 1``.
* ``mnist1d-mlp`` — a *tabular* benchmark over real learning curves (as HPOBench, LCBench and
  NAS-Bench do): the project's mnist1d-mlp task trained for real with AdamW (constant lr, seed 0)
  once per configuration of a grid — lr 1e-4 … 1e-1 (7 half-decades) × weight decay 1e-4 … 1e-1
  (4 decades) × batch size {64, 256, 1024} — recording the validation error after each of 81 epochs
  (``results/hpo_mnist1d_table.json``, ``--build-mnist1d-table`` remakes it). Search space: lr and
  weight decay loguniform, batch size a choice; a configuration is evaluated as its nearest grid
  configuration (nearest on the log scale) and fidelity ``t / 81`` reads that curve at epoch ``t``
  (cost ∝ epochs, whatever the batch size). Objective: validation error; optimum: the table's
  lowest error at 81 epochs. The strategies' decisions are real; the training is looked up.

Under the multi-fidelity schedulers and PBT/PB2 a trial reports at the rungs ``t = 1, 3, 9, 27,
81`` (fidelity ``t / 81``, checkpointed: a resumed trial pays only the increment), under Fabolas
once at its ``data_fraction``, otherwise once at full fidelity. Every strategy gets the same
budget in full-fidelity evaluations and stops once it is spent.

**Compute, three ways.** ``cost`` = full-fidelity-equivalent evaluations reported (Σ fidelity
added; the x axis and the budget); ``trial-s`` = trial-seconds, the time the workers spent running
trials, with one full-fidelity evaluation taking one second (so ``trial-s − cost`` is work cut off
by the budget stop, plus ``--start-overhead`` per trial start or resume); ``wall`` = elapsed time
on ``--workers`` workers (idle workers of synchronous schedulers show up here); and, apart from
those, the measured CPU seconds of the strategy itself (searcher + scheduler), which a real run
adds to its wall time.

**Incumbent.** What the strategy would return now: the lowest loss among the results at the
highest fidelity seen so far (BOHB/Hyperband's rule, the plain best for full-fidelity methods);
for Fabolas the evaluated configuration of lowest *predicted* loss at ``s = 1`` (its paper's
incumbent). Regret = the incumbent's true full-fidelity value − the optimum (evaluated offline,
not charged).

**Engines.** ``sim`` (default): the very objects ``make_tune_config`` builds — our searchers,
hyperopt's TPE, hpbandster's BOHB, Ray's HyperBand/ASHA/BOHB/PBT/PB2 schedulers (ours add
restore and seeds) — driven by :class:`SimLoop`, a discrete-event replica of Ray Tune's trial
loop (2 workers by default, no Ray cluster): minutes instead of hours for 12 strategies × 2
problems × 10 seeds on 2 cores. ``ray``: the same on a real Ray Tune run (``--address`` for a
cluster; far slower per trial, the strategies' decisions the same; Fabolas's incumbent there is
the generic rule).

Rows: every strategy of ``make_tune_config`` and ``hyperband-ray-order`` (``hyperband`` with
``bracket_order="ray"``: Ray's own bracket order, ``s = 0`` first, against the paper's default).
Prints per problem the median regret [25 %, 75 %] at 10/25/50/100 % of the budget, the compute
columns, the speed-up against random search (its cost to reach random's final median regret /
the strategy's), and a table putting each paper's claim beside the measured speed-up; saves the
anytime plot. ``--quick``: 2 seeds, budget 4. ``--cache DIR`` keeps every simulated run and
reuses it (rerun one strategy: delete its files).

    nice -n 10 python benchmarks/hpo_strategies.py --seeds 10 --budget 20 --jobs 2
    nice -n 10 python benchmarks/hpo_strategies.py --build-mnist1d-table --jobs 2   # 12 min loaded
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import math
import os
import sys
import tempfile
import time
import types
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray import cloudpickle, tune

from raytune_opt.search import STRATEGIES, SearchSpace, make_tune_config

cloudpickle.register_pickle_by_value(sys.modules[__name__])

RUNGS = (1, 3, 9, 27, 81)
MAX_T = 81
MULTI_FIDELITY = {"hyperband", "asha", "bohb", "pbt", "pb2"}
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
#: extra rows: label → (strategy, its options)
VARIANTS = {"hyperband-ray-order": ("hyperband", {"bracket_order": "ray"})}
#: Fabolas' trials: 10 per unit of budget, at most this many (besides its ``cost_budget``, the
#: budget). Most of its trials are at the smallest data fraction (1/64 on hartmann), so the budget
#: could take hundreds of them and a GP over as many points per suggestion; the cap may end its
#: run first (then it evaluates its incumbent at s = 1 and stops)
FABOLAS_TRIALS = 200


# ---------------------------------------------------------------------- problems
def counting_ones(config: dict, fidelity: float, seed: int) -> float:
    b = int(round(729 * fidelity))
    key = hash((tuple(round(config[f"x{j}"], 9) for j in range(4)), b, seed)) % 2**32
    rng = np.random.default_rng(key)
    draws = sum(rng.binomial(b, config[f"x{j}"]) / b for j in range(4))
    return -(sum(config[f"c{i}"] for i in range(4)) + draws)


def counting_ones_true(config: dict) -> float:
    return -(sum(config[f"c{i}"] for i in range(4)) + sum(config[f"x{j}"] for j in range(4)))


_HARTMANN: list = []


def hartmann(config: dict, fidelity: float, seed: int = 0) -> float:
    import torch
    from botorch.test_functions.multi_fidelity import AugmentedHartmann

    if not _HARTMANN:
        _HARTMANN.append(AugmentedHartmann())
    x = torch.tensor([[config[f"x{j}"] for j in range(6)] + [fidelity]], dtype=torch.float64)
    return float(_HARTMANN[0](x))


# mnist1d-mlp: a tabular benchmark over real learning curves (HPOBench / LCBench style)
#: the committed table: real mnist1d-mlp runs on a grid, val error per epoch (``--build-mnist1d-table``)
MNIST1D_TABLE = Path(__file__).resolve().parent / "results" / "hpo_mnist1d_table.json"
#: the grid of the committed table: lr and weight decay log-spaced, three batch sizes (84 runs of
#: 81 epochs: 12 min on 2 loaded cores)
MNIST1D_GRID = {
    "lr": [round(10 ** (-4 + k / 2), 8) for k in range(7)],  # 1e-4 … 1e-1, half-decades
    "weight_decay": [10.0**-k for k in range(4, 0, -1)],  # 1e-4 … 1e-1
    "batch_size": [64, 256, 1024],
}


def _train_curve(job: tuple) -> tuple:
    """One real run of the project's training loop: (indices, val errors per epoch, seconds)."""
    import torch

    from raytune_opt import train

    torch.set_num_threads(1)
    idx, lr, wd, bs, epochs = job
    t0 = time.time()
    config = {"task": "mnist1d-mlp", "optimizer": "adamw", "lr": lr, "weight_decay": wd}
    config.update(batch_size=bs, epochs=epochs, schedule="constant", seed=0, checkpoint_every=0)
    session = train.run_local(config)
    errors = [round(1.0 - float(r["val_accuracy"]), 4) for r in session.results]
    errors += [errors[-1]] * (epochs - len(errors))  # a diverged run stops: it stays at its worst
    return idx, errors, time.time() - t0


def build_mnist1d_table(path: Path, grid: dict | None = None, epochs: int = MAX_T, jobs: int = 2) -> dict:
    """Trains mnist1d-mlp (AdamW, constant lr, seed 0, the project's ``raytune_opt.train.run_local``)
    once per grid configuration for ``epochs`` epochs and writes the validation error after every
    epoch to ``path`` (JSON): ``curves[i][j][k]`` = the curve of ``lr[i]``, ``weight_decay[j]``,
    ``batch_size[k]``. A constant learning rate makes the curve's first ``t`` epochs the same run as
    one trained for ``t`` epochs, so a rung at ``t`` epochs reads ``curve[t − 1]``."""
    grid = dict(grid or MNIST1D_GRID)
    shape = [len(grid[k]) for k in ("lr", "weight_decay", "batch_size")]
    work = [
        ((i, j, k), lr, wd, bs, epochs)
        for i, lr in enumerate(grid["lr"])
        for j, wd in enumerate(grid["weight_decay"])
        for k, bs in enumerate(grid["batch_size"])
    ]
    work.sort(key=lambda w: w[3])  # the slow small batches first, so that the jobs end together
    curves: list = [[[None] * shape[2] for _ in range(shape[1])] for _ in range(shape[0])]
    seconds: list = [[[None] * shape[2] for _ in range(shape[1])] for _ in range(shape[0])]
    t0 = time.time()
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    done = pool.map(_train_curve, work) if pool else map(_train_curve, work)
    for n, ((i, j, k), errors, took) in enumerate(done, 1):
        curves[i][j][k], seconds[i][j][k] = errors, round(took, 2)
        lr, wd, bs = grid["lr"][i], grid["weight_decay"][j], grid["batch_size"][k]
        print(
            f"[{time.time() - t0:6.0f}s] {n}/{len(work)} lr {lr:g} wd {wd:g} bs {bs}: "
            f"val error {errors[-1]:.3f} ({took:.1f}s)",
            flush=True,
        )
    if pool:
        pool.shutdown()
    table = {
        "about": "mnist1d-mlp (MNIST-1D, 4000 train / 1000 val, 40-100-100-10 ReLU MLP) trained with "
        "raytune_opt.train.run_local, optimizer adamw, constant lr schedule, seed 0, once per grid "
        "configuration; curves[i][j][k][t-1] = validation error (1 - val_accuracy) after epoch t of "
        "lr[i], weight_decay[j], batch_size[k]. A diverged run stops; its curve stays at its last value.",
        "command": f"python benchmarks/hpo_strategies.py --build-mnist1d-table --jobs {jobs}",
        "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_s": round(time.time() - t0, 1),
        "load_avg_at_end": round(os.getloadavg()[0], 1),
        "epochs": epochs,
        **grid,
        "seconds": seconds,
        "curves": curves,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, separators=(",", ":")) + "\n")
    return table


class Mnist1dTable:
    """Lookup in a table of real learning curves: a configuration is evaluated as its *nearest grid
    configuration* — the nearest lr and weight decay on the log scale (the grids are log-spaced, so
    each grid value owns the log-interval half-way to its neighbours), the nearest batch size — and
    fidelity ``f`` reads that configuration's validation error after ``max(1, round(f · epochs))``
    epochs. Deterministic (one training seed per configuration): a strategy's seed changes its own
    decisions, not the values. The optimum is the table's lowest full-fidelity validation error."""

    def __init__(self, path: Path) -> None:
        table = json.loads(Path(path).read_text())
        self.path, self.epochs = Path(path), int(table["epochs"])
        self.lr = np.log10(table["lr"])
        self.wd = np.log10(table["weight_decay"])
        self.bs = list(table["batch_size"])
        self.curves = np.array(table["curves"], dtype=float)  # lr × wd × bs × epochs
        self.optimum = float(self.curves[..., -1].min())

    @staticmethod
    def _edges(logs: np.ndarray) -> list[float]:
        half = (logs[1] - logs[0]) / 2 if len(logs) > 1 else 0.5
        return [float(10 ** (logs[0] - half)), float(10 ** (logs[-1] + half))]

    def space(self) -> dict:
        """lr and weight decay loguniform over the grids' outer cell edges, batch size a choice."""
        return {
            "lr": {"loguniform": self._edges(self.lr)},
            "weight_decay": {"loguniform": self._edges(self.wd)},
            "batch_size": {"choice": self.bs},
        }

    def nearest(self, config: dict) -> tuple[int, int, int]:
        i = int(np.argmin(np.abs(self.lr - math.log10(config["lr"]))))
        j = int(np.argmin(np.abs(self.wd - math.log10(config["weight_decay"]))))
        k = int(np.argmin([abs(math.log2(b) - math.log2(config["batch_size"])) for b in self.bs]))
        return i, j, k

    def value(self, config: dict, fidelity: float, seed: int = 0) -> float:
        epoch = min(self.epochs, max(1, int(round(fidelity * self.epochs))))
        return float(self.curves[self.nearest(config)][epoch - 1])

    def true_value(self, config: dict) -> float:
        return self.value(config, 1.0)

    def problem(self) -> Problem:
        return Problem(self.space(), self.value, self.true_value, self.optimum, 1 / self.epochs)


@dataclass(frozen=True)
class Problem:
    space: dict
    value: Any  # (config, fidelity, seed) -> observed loss
    true_value: Any  # config -> full-fidelity loss
    optimum: float
    s_min: float  # the smallest fidelity (Fabolas' data fraction range)


PROBLEMS = {
    "counting-ones": Problem(
        {
            **{f"c{i}": {"choice": [0, 1]} for i in range(4)},
            **{f"x{j}": {"uniform": [0, 1]} for j in range(4)},
        },
        counting_ones,
        counting_ones_true,
        -8.0,
        9 / 729,
    ),
    "hartmann": Problem(
        {f"x{j}": {"uniform": [0, 1]} for j in range(6)},
        hartmann,
        lambda c: hartmann(c, 1.0),
        -3.32237,
        1 / 64,
    ),
}
if MNIST1D_TABLE.exists():
    PROBLEMS["mnist1d-mlp"] = Mnist1dTable(MNIST1D_TABLE).problem()


# ---------------------------------------------------------------------- strategies
def tune_config(label: str, problem: str, seed: int, budget: float) -> Any:
    """The ``TuneConfig`` of the strategy (or variant) ``label`` for ``problem`` with a budget of
    ``budget`` full evaluations."""
    strategy, extra = VARIANTS.get(label, (label, {}))
    prob = PROBLEMS[problem]
    spec = dict(prob.space)
    n = int(20 * budget)  # enough trials that the budget, not num_samples, ends the run
    opts: dict = {"time_attr": "iter", **extra}
    if strategy == "grid":
        n, opts["points"] = 1, 2
    elif strategy == "bo":
        n = int(budget)
    elif strategy == "fabolas":
        spec["data_fraction"] = {"uniform": [prob.s_min, 1.0]}
        n = min(FABOLAS_TRIALS, max(10, int(10 * budget)))
        opts.update(cost_attr="spent", n_candidates=128)
        if budget >= 1 + prob.s_min:  # its own end: the incumbent evaluated at s = 1 within the budget
            opts["cost_budget"] = budget
    elif strategy in ("pbt", "pb2"):
        n, opts["perturbation_interval"] = max(4, int(budget)), 9  # a population as large as random's
    return make_tune_config(
        strategy, SearchSpace(spec), metric="loss", mode="min", num_samples=n, max_t=MAX_T, seed=seed, **opts
    )


def rungs_of(label: str) -> tuple[int, ...]:
    return RUNGS if VARIANTS.get(label, (label,))[0] in MULTI_FIDELITY else (MAX_T,)


# ---------------------------------------------------------------------- the simulated trial loop
@dataclass(frozen=True)
class Snapshot:
    """A trial's checkpoint: the rung it reached (what the trainable's checkpoint holds)."""

    t: int


@dataclass
class Run:
    """One strategy × problem × seed: the results in order and the compute counters."""

    events: list = field(default_factory=list)  # (cost, fidelity, loss, config, incumbent or None)
    trial_seconds: float = 0.0
    wall: float = 0.0
    trials: int = 0
    starts: int = 0
    strategy_cpu_s: float = 0.0
    stalled: bool = False


class SimLoop:
    """Ray Tune's trial loop (``TuneController``), simulated in time, driving real strategy objects.

    * ``workers`` trials run at once; a step from fidelity ``f0`` to ``f1`` takes ``f1 − f0``
      seconds (one full-fidelity evaluation = 1 s); a start or resume adds ``start_overhead``.
    * New trials come from the searcher when no trial is pending (Ray's ``max_pending_trials``:
      1 for a ``Searcher``; a ``BasicVariantGenerator`` — grid, PBT's population — adds them all),
      up to ``num_samples``.
    * A free worker takes the scheduler's ``choose_trial_to_run``, else the first pending trial.
    * A result: its rung checkpoint is registered, then ``decision = scheduler.on_trial_result``,
      ``searcher.on_trial_result`` unless STOP; CONTINUE runs to the next rung (the last rung
      completes the trial: ``on_trial_complete`` of both), PAUSE parks it with its checkpoint,
      STOP completes it, NOOP leaves it to the scheduler (PBT paused it itself). A (re)started
      trial continues from its latest checkpoint — a PBT clone from its donor's.
    * The methods below are the controller calls the schedulers make (``get_trials``,
      ``pause_trial``, ``stop_trial``, ``_schedule_trial_save``, ``search_alg.searcher``).
    * The run ends when ``budget`` full-fidelity evaluations are reported (Ray's ``stop_all``),
      when every trial is done, or when nothing can run (``stalled``).
    """

    def __init__(
        self,
        cfg: Any,
        value: Any,
        rungs: tuple[int, ...],
        budget: float,
        workers: int = 2,
        start_overhead: float = 0.0,
    ) -> None:
        from ray.tune.schedulers import FIFOScheduler
        from ray.tune.search import BasicVariantGenerator

        self.value, self.rungs, self.budget = value, rungs, budget
        self.workers, self.start_overhead = workers, start_overhead
        self.scheduler = cfg.scheduler or FIFOScheduler()
        self.scheduler.set_search_properties(cfg.metric, cfg.mode)
        if hasattr(self.scheduler, "_log_config"):
            self.scheduler._log_config = False  # PBT's policy files: stub trials have no directory
        alg = cfg.search_alg
        if isinstance(alg, BasicVariantGenerator):
            self.presets = list(alg.presets)
            self.searcher = None
            self.search_alg = alg
        else:
            self.presets = None
            self.searcher = alg
            alg.set_search_properties(cfg.metric, cfg.mode, {})
            # what HyperBandForBOHB and the paper-order Hyperband call (Tune's SearchGenerator API)
            self.search_alg = types.SimpleNamespace(searcher=alg, is_finished=self._search_finished)
        self.exhausted = False  # the searcher said FINISHED
        self.num_samples = len(self.presets) if self.presets is not None else cfg.num_samples
        self.trials: list = []
        self.now = 0.0
        self.queue: list = []  # (time, seq, trial, rung index)
        self.running: dict = {}  # trial -> (started at, from fidelity)
        self.started: set = set()
        self.seq = 0
        self.run = Run()

    def _search_finished(self) -> bool:
        """Whether the search has ended (Tune's ``SearchGenerator.is_finished``): all samples
        suggested, or the searcher said FINISHED."""
        return self.exhausted or len(self.trials) >= self.num_samples

    # -- the controller API the schedulers use
    def get_trials(self) -> list:
        return self.trials

    def get_live_trials(self) -> set:
        return {t for t in self.trials if not t.is_finished()}

    def _schedule_trial_save(self, trial: Any, result: dict | None = None) -> Any:
        return copy.copy(trial.checkpoint)

    def pause_trial(self, trial: Any, should_checkpoint: bool = True) -> None:
        from ray.tune.experiment import Trial

        self._free(trial)
        trial.set_status(Trial.PAUSED)

    def stop_trial(self, trial: Any) -> None:
        from ray.tune.experiment import Trial

        if trial.status in (Trial.ERROR, Trial.TERMINATED):
            return
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self._call(self.scheduler.on_trial_remove, self, trial)
            self._searcher_done(trial.trial_id, None)
        else:
            result = dict(trial.last_result)
            self._call(self.scheduler.on_trial_complete, self, trial, result)
            self._searcher_done(trial.trial_id, result)
        self._free(trial)
        trial.set_status(Trial.TERMINATED)

    # -- bookkeeping
    def _call(self, fn: Any, *args: Any) -> Any:
        t0 = time.process_time()
        try:
            return fn(*args)
        finally:
            self.run.strategy_cpu_s += time.process_time() - t0

    def _searcher_done(self, trial_id: str, result: dict | None) -> None:
        if self.searcher is not None:
            self._call(self.searcher.on_trial_complete, trial_id, result)

    def _free(self, trial: Any) -> None:
        """Takes ``trial`` off its worker, charging the time it ran (its step is abandoned)."""
        if trial in self.running:
            started, _ = self.running.pop(trial)
            self.run.trial_seconds += self.now - started
            self.queue = [e for e in self.queue if e[2] is not trial]
            heapq.heapify(self.queue)

    def _rung_index(self, trial: Any) -> int:
        ckpt = trial.checkpoint
        return 0 if ckpt is None else self.rungs.index(ckpt.t) + 1

    def _add_trials(self) -> int:
        """Adds the trials Ray would add now; how many."""
        from ray.tune.experiment import Trial
        from ray.tune.search import Searcher

        added = 0
        while len(self.trials) < self.num_samples:
            if self.presets is not None:
                config = self.presets[len(self.trials)]
            else:
                if any(t.status == Trial.PENDING for t in self.trials):
                    return added
                trial_id = f"sim{len(self.trials):05d}"
                config = self._call(self.searcher.suggest, trial_id)
                if config == Searcher.FINISHED:
                    self.exhausted = True
                if config is None or config == Searcher.FINISHED:
                    return added
            trial = Trial(
                "bench",
                config=dict(config),
                experiment_tag=str(len(self.trials)),
                trial_id=None if self.presets is not None else trial_id,
                stub=True,
            )
            self.trials.append(trial)
            added += 1
            self._call(self.scheduler.on_trial_add, self, trial)
        return added

    def _start(self, trial: Any) -> None:
        from ray.tune.experiment import Trial

        if trial not in self.started:
            self.started.add(trial)
            self.run.trials += 1
        trial.set_status(Trial.RUNNING)
        self.run.starts += 1
        k = self._rung_index(trial)
        f0 = self._fidelity(trial, k - 1) if k else 0.0
        self.running[trial] = (self.now, f0)
        if k >= len(self.rungs):  # resumed at its last rung: the trainable returns at once
            heapq.heappush(self.queue, (self.now + self.start_overhead, self.seq, trial, None))
        else:
            step = self._fidelity(trial, k) - f0
            heapq.heappush(self.queue, (self.now + self.start_overhead + step, self.seq, trial, k))
        self.seq += 1

    def _fidelity(self, trial: Any, k: int) -> float:
        if "data_fraction" in trial.config:
            return float(trial.config["data_fraction"])
        return self.rungs[k] / MAX_T

    def _fill_workers(self) -> int:
        """Starts trials on the free workers; how many."""
        from ray.tune.experiment import Trial

        started = 0
        while len(self.running) < self.workers:
            trial = self._call(self.scheduler.choose_trial_to_run, self)
            if trial is None or trial in self.running:
                trial = next(
                    (t for t in self.trials if t.status == Trial.PENDING and t not in self.running), None
                )
            if trial is None:
                break
            self._start(trial)
            started += 1
        return started

    def _complete(self, trial: Any) -> None:
        from ray.tune.experiment import Trial

        result = dict(trial.last_result)
        self._free(trial)
        trial.set_status(Trial.TERMINATED)
        self._call(self.scheduler.on_trial_complete, self, trial, result)
        self._searcher_done(trial.trial_id, result)

    def _report(self, trial: Any, k: int) -> None:
        from ray.train._internal.session import _TrainingResult
        from ray.tune.schedulers import TrialScheduler

        _, f0 = self.running[trial]
        fid = self._fidelity(trial, k)
        loss = self.value(trial.config, fid)
        spent = fid - f0
        cost = (self.run.events[-1][0] if self.run.events else 0.0) + spent
        result = {
            "loss": loss,
            "iter": self.rungs[k] if "data_fraction" not in trial.config else MAX_T,
            "training_iteration": k + 1,
            "fidelity": fid,
            "spent": spent,
            "trial_id": trial.trial_id,
        }
        # the checkpoint comes with the result, as with tune.report(..., checkpoint=...)
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
            Snapshot(self.rungs[k]), result
        )
        self.running[trial] = (self.running[trial][0], fid)
        incumbent = getattr(self.searcher, "incumbent", None)
        self.run.events.append((cost, fid, loss, dict(trial.config), incumbent))
        flat = dict(result)  # one dict for both, as in Ray: HyperBandForBOHB adds its budget for TuneBOHB
        decision = self._call(self.scheduler.on_trial_result, self, trial, flat)
        if decision != TrialScheduler.STOP and self.searcher is not None:
            self._call(self.searcher.on_trial_result, trial.trial_id, flat)
        trial.update_last_result(result)
        if decision == TrialScheduler.STOP:
            self.stop_trial(trial)
        elif decision == TrialScheduler.PAUSE:
            self.pause_trial(trial)
        elif decision == TrialScheduler.CONTINUE:
            if k + 1 >= len(self.rungs) or "data_fraction" in trial.config:
                self._complete(trial)
            else:
                step = self._fidelity(trial, k + 1) - fid
                heapq.heappush(self.queue, (self.now + step, self.seq, trial, k + 1))
                self.seq += 1
        # NOOP: the scheduler paused the trial itself (PBT's exploit)

    def execute(self) -> Run:
        while True:
            if self.run.events and self.run.events[-1][0] >= self.budget - 1e-9:
                break
            while self._add_trials() + self._fill_workers():  # as Ray's loop: until nothing changes
                pass
            if not self.queue:
                self.run.stalled = any(not t.is_finished() for t in self.trials)
                break
            self.now, _, trial, k = heapq.heappop(self.queue)
            if k is None:
                self._complete(trial)
            else:
                self._report(trial, k)
        for trial in list(self.running):  # the budget stop: charge the abandoned steps
            self._free(trial)
        self.run.wall = self.now
        return self.run


def simulate(
    strategy: str, problem: str, seed: int, budget: float, workers: int = 2, start_overhead: float = 0.0
) -> Run:
    prob = PROBLEMS[problem]
    cfg = tune_config(strategy, problem, seed, budget)
    value = lambda config, fid: prob.value(config, fid, seed)  # noqa: E731
    return SimLoop(cfg, value, rungs_of(strategy), budget, workers, start_overhead).execute()


def use_table(path: str | Path | None) -> None:
    """Makes ``mnist1d-mlp`` look up the table at ``path`` (the committed one if ``None``)."""
    path = Path(path) if path else MNIST1D_TABLE
    current = PROBLEMS.get("mnist1d-mlp")
    if path.exists() and (current is None or current.value.__self__.path != path):
        PROBLEMS["mnist1d-mlp"] = Mnist1dTable(path).problem()


def _digest(path: str | Path | None) -> str:
    import hashlib

    return hashlib.sha1(Path(path or MNIST1D_TABLE).read_bytes()).hexdigest()[:8]


def _sim_job(args: tuple) -> tuple:
    import logging
    import pickle

    import torch

    torch.set_num_threads(1)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)  # PBT logs every exploit at INFO
    strategy, problem, seed, budget, workers, overhead, cache, table = args
    use_table(table)
    t0 = time.time()
    path = None
    if cache:
        tag = f"-{_digest(table)}" if problem == "mnist1d-mlp" else ""  # a run belongs to its table
        path = Path(cache) / f"{problem}{tag}-{strategy}-{seed}-b{budget:g}-w{workers}-o{overhead:g}.pkl"
        if path.exists():
            return (problem, strategy, seed), pickle.loads(path.read_bytes()), 0.0
    run = simulate(strategy, problem, seed, budget, workers, overhead)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(run))
    return (problem, strategy, seed), run, time.time() - t0


# ---------------------------------------------------------------------- the real Ray engine
def bench_trainable(config: dict) -> None:
    """Reports ``loss`` at its rungs; ``spent`` is the fidelity added since the last report."""
    prob = PROBLEMS[config["problem"]]
    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "t.json")) as fh:
            start = json.load(fh)["t"]
    if "data_fraction" in config:
        s = config["data_fraction"]
        tune.report({"loss": prob.value(config, s, config["seed"]), "iter": MAX_T, "fidelity": s, "spent": s})
        return
    rungs = RUNGS if config["rungs"] else (MAX_T,)
    prev = start / MAX_T
    for t in rungs:
        if t <= start:
            continue
        fid = t / MAX_T
        metrics = {
            "loss": prob.value(config, fid, config["seed"]),
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
        event = (cost, float(result["fidelity"]), float(result["loss"]), dict(trial.config), None)
        LEDGERS.setdefault(self.name, []).append(event)


class Budget(tune.Stopper):
    """Stops the experiment once ``budget`` full-fidelity evaluations are spent."""

    def __init__(self, name: str, budget: float) -> None:
        self.name, self.budget = name, budget

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return spent(self.name) >= self.budget


def run_ray(strategy: str, problem: str, seed: int, budget: float, storage: str) -> Run:
    """One run on a real Ray Tune: 1 CPU per trial (2 at once on a 2-CPU local Ray)."""
    cfg = tune_config(strategy, problem, seed, budget)
    name = f"{problem}-{strategy}-{seed}"
    LEDGERS[name] = []
    t0 = time.time()
    results = tune.Tuner(
        bench_trainable,
        tune_config=cfg,
        param_space={"problem": problem, "seed": seed, "rungs": len(rungs_of(strategy)) > 1},
        run_config=tune.RunConfig(
            name=name, storage_path=storage, stop=Budget(name, budget), callbacks=[Ledger(name)], verbose=0
        ),
    ).fit()
    run = Run(events=LEDGERS.pop(name), wall=time.time() - t0, trials=len(results))
    run.trial_seconds = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in results)
    return run


# ---------------------------------------------------------------------- analysis
def trace(run: Run, true_value: Any, optimum: float) -> list[tuple[float, float]]:
    """(cost, regret of the incumbent) after each result."""
    out, top, best, inc = [], -1.0, math.inf, None
    memo: dict = {}
    for cost, fid, loss, config, model_incumbent in run.events:
        if fid > top + 1e-12:
            top, best, inc = fid, math.inf, None
        if fid >= top - 1e-12 and math.isfinite(loss) and loss < best:
            best, inc = loss, config
        chosen = model_incumbent if model_incumbent is not None else inc
        if chosen is not None:
            key = tuple(sorted(chosen.items()))
            if key not in memo:
                memo[key] = true_value(chosen) - optimum
            out.append((cost, memo[key]))
    return out


def regrets(traces: list, costs: np.ndarray) -> np.ndarray:
    """seeds × costs: each seed's incumbent regret at each cost (inf before its first result)."""
    out = np.full((len(traces), len(costs)), np.inf)
    for i, tr in enumerate(traces):
        if tr:
            c, r = np.array(tr).T
            idx = np.searchsorted(c, costs + 1e-9, side="right") - 1
            out[i] = np.where(idx >= 0, r[np.maximum(idx, 0)], np.inf)
    return out


def median_regret(traces: list, cost: float) -> float:
    return float(np.median(regrets(traces, np.array([cost]))[:, 0]))


def cost_to(traces: list, target: float) -> float:
    """The cost at which the *median* regret over seeds first reaches ``target`` (inf: never)."""
    costs = np.unique([c for tr in traces for c, _ in tr])
    if not costs.size:
        return math.inf
    ok = np.median(regrets(traces, costs), axis=0) <= target + 1e-12
    return float(costs[np.argmax(ok)]) if ok.any() else math.inf


def speedup(theirs: list, mine: list, target: float) -> tuple[float, str]:
    """How many times less cost ``mine`` needs than ``theirs`` to bring the median regret to
    ``target``, and its text (``>x`` when ``theirs`` never gets there within its run)."""
    ta, tb = cost_to(theirs, target), cost_to(mine, target)
    if math.isinf(tb):
        return 0.0, "never (in budget)" if math.isfinite(ta) else "neither reaches it"
    if math.isinf(ta):
        last = max((tr[-1][0] for tr in theirs if tr), default=math.nan)
        return math.inf, f">{last / tb:.1f}×"
    return ta / tb, f"{ta / tb:.2g}×"


#: (claim, paper, strategy, comparators, kind, threshold): kind "final" — target = the
#: comparator's final median regret; "early" — the comparator's median regret at 25 % of the budget
CLAIMS = [
    ("Hyperband: over an order of magnitude faster than its competitors", "Li et al. 2018", "hyperband",
     ("random", "bo", "tpe"), "final", 10.0),
    ("… the same, brackets in Ray's order (s = 0 first)", "Li et al. 2018", "hyperband-ray-order",
     ("random", "bo", "tpe"), "final", 10.0),
    ("BOHB: 20× faster than BO early on", "Falkner et al. 2018", "bohb", ("bo",), "early", 20.0),
    ("BOHB: better than Hyperband at the end", "Falkner et al. 2018", "bohb", ("hyperband",), "end", 1.0),
    ("Fabolas: 10–100× faster than BO and Hyperband", "Klein et al. 2017", "fabolas",
     ("bo", "hyperband"), "final", 10.0),
    ("GP-BO: better than random search at equal budget", "Snoek et al. 2012", "bo", ("random",), "end", 1.0),
    ("TPE: better than random search at equal budget", "Bergstra et al. 2011", "tpe", ("random",), "end",
     1.0),
]  # fmt: skip


def report(results: dict, runs: dict, args: Any, seconds: float) -> list[str]:
    budget = args.budget
    lines = [
        f"# HPO strategies: {args.seeds} seeds, budget {budget:g} full-fidelity evaluations, engine "
        f"`{args.engine}`, {args.workers} workers, {seconds / 60:.1f} min"
        + (f" ({args.cached} of the runs from --cache)" if getattr(args, "cached", 0) else ""),
        "",
        "cost = full-fidelity-equivalent evaluations reported; trial-s = worker seconds running trials "
        f"(1 full evaluation = 1 s, start overhead {args.start_overhead:g} s); wall = elapsed seconds on "
        f"{args.workers} workers; CPU = the strategy's own measured CPU seconds (not in the other columns). "
        "Medians over seeds, [25 %, 75 %].",
        "",
    ]
    for problem in dict.fromkeys(p for p, _ in results):
        rand = results[(problem, "random")]
        target = median_regret(rand, budget)
        lines += [
            f"## {problem} (random search's final median regret: {target:.3g})",
            "",
            "| strategy | "
            + " | ".join(f"regret @{int(q * 100)}%" for q in FRACTIONS)
            + " | cost to random's final | vs random | cost | trial-s | wall | trials | CPU s |",
            "|---" * (len(FRACTIONS) + 8) + "|",
        ]
        for (p, strategy), traces in results.items():
            if p != problem:
                continue
            cells = []
            for r in regrets(traces, np.array(FRACTIONS) * budget).T:
                lo, med, hi = np.percentile(r, [25, 50, 75], method="lower")
                cells.append(f"{med:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(med) else "—")
            t = cost_to(traces, target)
            _, vs = speedup(rand, traces, target)
            rs = runs[(p, strategy)]
            med = lambda xs: float(np.median(xs))  # noqa: E731
            cost = med([tr[-1][0] if tr else 0.0 for tr in traces])
            lines.append(
                f"| {strategy} | "
                + " | ".join(cells)
                + f" | {t:.2f} | {vs} | {cost:.1f} | {med([r.trial_seconds for r in rs]):.1f}"
                f" | {med([r.wall for r in rs]):.1f} | {med([r.trials for r in rs]):.0f}"
                f" | {med([r.strategy_cpu_s for r in rs]):.1f} |"
            )
        lines.append("")
    lines += claims_table(results, budget)
    print("\n".join(lines))
    return lines


#: a speed-up below this is not counted as one ("partly" needs at least this much)
CLEARLY = 1.5


def claims_table(results: dict, budget: float) -> list[str]:
    problems = list(dict.fromkeys(p for p, _ in results))
    lines = [
        "## The papers' claims beside the measurements",
        "",
        "speed-up = the comparator's cost to bring its median regret to the target ÷ the strategy's "
        "(same target); target = the comparator's final median regret (early: its median regret at "
        "25 % of the budget). When the strategy never reaches that target, the speed-up is taken at "
        "the strategy's own final median regret instead (a looser target). reproduced: yes = the "
        "claimed factor at the comparator's target; partly = faster, by less than claimed or only at "
        "the looser target; no = less than 1.5× faster.",
        "",
        "| claim | paper | problem | vs | target regret | measured speed-up | claimed | reproduced |",
        "|---|---|---|---|---|---|---|---|",
    ]
    headline = []
    for claim, paper, strategy, comparators, kind, factor in CLAIMS:
        for problem in problems:
            if (problem, strategy) not in results:
                continue
            mine = results[(problem, strategy)]
            for other in comparators:
                if (problem, other) not in results:
                    continue
                theirs = results[(problem, other)]
                if kind == "end":
                    a, b = median_regret(mine, budget), median_regret(theirs, budget)
                    wins = np.mean(regrets(mine, np.array([budget])) < regrets(theirs, np.array([budget])))
                    verdict = "yes" if a < b else "no"
                    measured = f"final regret {a:.3g} vs {b:.3g} (lower in {wins:.0%} of seeds)"
                    target, claimed = "—", "lower final regret"
                else:
                    tgt = median_regret(theirs, (0.25 if kind == "early" else 1.0) * budget)
                    value, measured = speedup(theirs, mine, tgt)
                    target, claimed = f"{tgt:.3g}", f"≥{factor:g}×"
                    verdict = "yes" if value >= factor else "partly" if value >= CLEARLY else "no"
                    if value == 0.0:  # never reaches the comparator's target: at its own final regret
                        own = median_regret(mine, budget)
                        value, at_own = speedup(theirs, mine, own)
                        measured = f"never reaches it; {at_own} to its own final {own:.3g}"
                        verdict = "partly" if value >= CLEARLY else "no"
                    headline.append((problem, strategy, other, measured))
                cells = (claim, paper, problem, other, target, measured, claimed, verdict)
                lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if headline:
        lines.append("headline: " + "; ".join(f"{s} vs {o} on {p}: {m}" for p, s, o, m in headline))
    return lines


def plot(results: dict, budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(p for p, _ in results))
    fig, axes = plt.subplots(1, len(problems), figsize=(6.5 * len(problems), 4.5), squeeze=False)
    grid = np.linspace(0, budget, 80)
    for ax, problem in zip(axes[0], problems, strict=True):
        zero = False  # a median regret of 0 (a table's optimum found): symlog keeps it on the plot
        for (p, strategy), traces in results.items():
            if p != problem:
                continue
            med = np.median(regrets(traces, grid), axis=0)
            zero |= bool((med == 0).any())
            end = np.median([tr[-1][0] if tr else 0.0 for tr in traces])  # a run may stop early
            med = np.where(grid <= end + 1e-9, med, np.inf)
            style = "-" if len(rungs_of(strategy)) > 1 or strategy == "fabolas" else "--"
            color = plt.get_cmap("tab20")(len(ax.get_lines()) % 20)
            ax.step(
                grid,
                np.where(np.isfinite(med), med, np.nan),
                style,
                where="post",
                label=strategy,
                color=color,
            )
        ax.set(
            title=problem,
            xlabel="cost (full-fidelity-equivalent evaluations)",
            ylabel="median regret of the incumbent" + (" (symlog: 0 shown)" if zero else ""),
        )
        if zero:
            ax.set_yscale("symlog", linthresh=1e-3)
        else:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, budget 4")
    ap.add_argument("--seeds", type=int, default=None, help="default 10 (2 with --quick)")
    ap.add_argument("--budget", type=float, default=None, help="in full-fidelity evaluations (20; 4 quick)")
    ap.add_argument("--strategies", default=",".join([*STRATEGIES, *VARIANTS]))
    ap.add_argument("--problems", default=",".join(PROBLEMS))  # mnist1d-mlp once its table exists
    ap.add_argument("--engine", choices=("sim", "ray"), default="sim")
    ap.add_argument("--workers", type=int, default=2, help="concurrent trials (sim; ray: its CPUs)")
    ap.add_argument("--start-overhead", type=float, default=0.0, help="sim: seconds per trial start/resume")
    ap.add_argument("--jobs", type=int, default=1, help="sim: runs in parallel processes")
    ap.add_argument("--address", default=None, help="ray: a cluster to connect to")
    ap.add_argument("--cache", default=None, help="sim: keep each run here and reuse it")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--mnist1d-table", default=None, help=f"mnist1d-mlp's table ({MNIST1D_TABLE.name})")
    ap.add_argument(
        "--build-mnist1d-table",
        action="store_true",
        help="train the mnist1d-mlp grid (--jobs processes), write the table to --mnist1d-table, and exit",
    )
    args = ap.parse_args(argv)
    if args.build_mnist1d_table:
        build_mnist1d_table(Path(args.mnist1d_table or MNIST1D_TABLE), jobs=args.jobs)
        return {}
    use_table(args.mnist1d_table)
    args.seeds = args.seeds or (2 if args.quick else 10)
    args.budget = args.budget or (4.0 if args.quick else 20.0)
    strategies = args.strategies.split(",")
    if "random" not in strategies:
        strategies.insert(0, "random")
    problems = args.problems.split(",")
    for name, known in (("strategy", [*STRATEGIES, *VARIANTS]), ("problem", PROBLEMS)):
        bad = [x for x in (strategies if name == "strategy" else problems) if x not in known]
        if bad:
            ap.error(f"unknown {name} {bad}; choose from {list(known)}")
    t0 = time.time()
    keys = [(p, s, seed) for p in problems for s in strategies for seed in range(args.seeds)]
    runs: dict = {(p, s): [None] * args.seeds for p in problems for s in strategies}

    args.cached = 0

    def note(key: tuple, run: Run, took: float) -> None:
        p, s, seed = key
        runs[(p, s)][seed] = run
        args.cached += took == 0.0
        last = run.events[-1][0] if run.events else 0.0
        print(f"[{time.time() - t0:6.0f}s] {p} {s} seed {seed}: cost {last:.2f} ({took:.1f}s)", flush=True)

    if args.engine == "sim":
        # the slow model-based strategies first, so that parallel jobs end together
        order = {"fabolas": 0, "bo": 1, "optuna-gp": 1, "pb2": 2, "tpe": 3, "bohb": 4}
        jobs = sorted(keys, key=lambda k: order.get(k[1], 9))
        work = [
            (s, p, seed, args.budget, args.workers, args.start_overhead, args.cache, args.mnist1d_table)
            for p, s, seed in jobs
        ]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                for (p, s, seed), run, took in pool.map(_sim_job, work):
                    note((p, s, seed), run, took)
        else:
            for w in work:
                (p, s, seed), run, took = _sim_job(w)
                note((p, s, seed), run, took)
    else:
        import ray

        if not ray.is_initialized():
            kw = {"address": args.address} if args.address else {"num_cpus": args.workers}
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kw)
        with tempfile.TemporaryDirectory() as storage:
            for p, s, seed in keys:
                t1 = time.time()
                note((p, s, seed), run_ray(s, p, seed, args.budget, storage), time.time() - t1)
    results = {
        key: [trace(r, PROBLEMS[key[0]].true_value, PROBLEMS[key[0]].optimum) for r in rs]
        for key, rs in runs.items()
    }
    lines = report(results, runs, args, time.time() - t0)
    out = Path(args.out)
    plot(results, args.budget, out / "hpo_strategies.png")
    command = " ".join(["python benchmarks/hpo_strategies.py", *(argv if argv is not None else sys.argv[1:])])
    (out / "hpo_strategies.md").write_text(f"Produced by `{command}`.\n\n" + "\n".join(lines) + "\n")
    return {"lines": lines, "results": results, "runs": runs}


if __name__ == "__main__":
    main()
