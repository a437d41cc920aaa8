"""The final, held-out evaluation of an experiment: its best configuration on the task's test split.

    >>> test = evaluate("results/random", seeds=2)      # raytune-opt evaluate results/random --seeds 2
    evaluate: retraining trial ...'s configuration over 2 seed(s), 1 epochs each, then testing on ...
    test test_accuracy over 2 seed(s): ...
    >>> len(test["values"]), test["mean"] == sum(test["values"]) / 2, len(test["ci"])
    (2, True, 2)

The search tuned on the validation split; the test split was held out from every trial
(``TaskSpec.test``). :func:`evaluate` takes the best trial's configuration (the report's best: its best
report, among trials that neither failed nor diverged) and

- with ``seeds = k ≥ 2`` retrains it from scratch k times, train seeds ``0 … k-1`` (model
  initialisation and shuffling; the data split stays the task's), each for the configuration's full
  ``epochs``, as Ray tasks on the experiment's Ray (one CPU and one torch thread each, as a trial: on
  2 cores two seeds at once; the same 4 seeds retrained one after the other in the driver, with
  torch's default threads, took 14x longer on the shared 2-core machine), and evaluates each final
  model once on the test split: mean, sample standard deviation and a Student's t confidence
  interval (:func:`raytune_opt.report.stats.seed_summary`);
- with ``seeds = 1`` evaluates the best trial's last checkpoint when it holds the full ``epochs``
  (``torch.load(weights_only=True)``), else retrains it once; one seed has no interval.

The result goes to ``test.json`` (:data:`TEST_FILE`, written atomically: a temporary file, then a
rename); the report (``summary.json``'s ``test``, ``report.md``'s "Test" section) is written again
from it, so ``raytune-opt report`` keeps it. Nothing else in the folder changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytune_opt.errors import ConfigError
from raytune_opt.experiment.run import connect, load_experiment
from raytune_opt.storage import ExperimentFolder

__all__ = ["TEST_FILE", "DEFAULT_SEEDS", "evaluate", "evaluate_many", "check_seeds", "check_test_split"]

#: the evaluation's file in the experiment folder (``raytune_opt.report.results.TEST_FILE``)
TEST_FILE = "test.json"
#: seeds of a retraining when none are asked for
DEFAULT_SEEDS = 5
#: the most seeds one evaluation may ask for
MAX_SEEDS = 1000


def check_seeds(seeds: Any, confidence: Any = None, interval: bool = True) -> float | None:
    """The confidence level the evaluation reports (``None``: no interval) for ``seeds`` seeds: by
    default 0.95 with 2 or more seeds and none with one (or with ``interval=False``). A
    ``ConfigError`` for a seed count that is not an integer in [1, 1000], a level outside (0, 1), an
    interval asked of one seed (a ``confidence`` given), or a ``confidence`` with ``interval=False``."""
    from raytune_opt.report.stats import check_confidence

    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError.invalid("seeds", seeds, f"an integer in [1, {MAX_SEEDS}]")
    if not interval:
        if confidence is not None:
            raise ConfigError.invalid("confidence", confidence, "no level when no interval is asked for")
        return None
    if confidence is None:
        return 0.95 if seeds >= 2 else None
    return check_confidence(confidence, seeds)


def check_test_split(exp: Any) -> Any:
    """The task's spec; a ConfigError when it has no test split (before anything is trained)."""
    from raytune_opt.tasks import get_task

    spec = get_task(exp.task.name).build(**exp.task.args)
    if spec.test is None:
        raise ConfigError.invalid(
            "task",
            exp.task.name,
            "a task with a test split to evaluate on (its TaskSpec.test is None: every built-in data "
            "set task has one; give your own task test=(X, y), held out from the search)",
        )
    return spec


def _last_checkpoint(trial_dir: Path) -> Path | None:
    found = sorted(p for p in trial_dir.glob("checkpoint_*") if p.is_dir())
    return found[-1] if found else None


def _retrain(config: Mapping[str, Any], tasks: dict[str, Any], device: str | None) -> dict[str, Any]:
    """One seed, in a Ray worker: the user's tasks registered there, then train and test."""
    from raytune_opt.tasks import restore_user_tasks
    from raytune_opt.train.evaluate import retrain_and_evaluate

    restore_user_tasks(tasks)
    return retrain_and_evaluate(config, "test", device)


def _seed_refs(exp: Any, configs: list[dict[str, Any]]) -> list[Any]:
    """Every seed's :func:`retrain_and_evaluate` submitted as a Ray task with a trial's resource
    request (``ray.get`` of the refs waits for them)."""
    import ray

    from raytune_opt.train.trainable import shipped_tasks

    r = exp.resources
    gpu = r.use_gpu
    task = ray.remote(
        num_cpus=r.cpus_per_worker,
        num_gpus=(r.gpus_per_worker or 1) if gpu else 0,
        max_retries=max(exp.run_.max_failures, 0),
    )(_retrain)
    tasks = shipped_tasks({str(c.get("task")) for c in configs})
    return [task.remote(c, tasks, "cuda" if gpu else None) for c in configs]


@dataclass
class _Evaluation:
    """One folder's evaluation between its checks and its ``test.json``: what to retrain (``configs``)
    or what its checkpoint gave (``runs``)."""

    folder: ExperimentFolder
    local: Path
    exp: Any
    spec: Any
    results: Any
    best: dict[str, Any]
    config: dict[str, Any]
    metric: str
    mode: str
    epochs: int
    level: float | None
    configs: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    source: str = "retrained"


def _prepare(
    path: str | os.PathLike[str], seeds: int, level: float | None, address: str | None, progress: bool
) -> _Evaluation:
    """Every check of :func:`evaluate` (a ``ConfigError`` before anything is trained), and with one
    seed the best trial's full-length checkpoint evaluated; otherwise the seeds' configurations."""
    from raytune_opt import report as report_

    folder = ExperimentFolder.at(path)
    exp = load_experiment(path, address=address)
    spec = check_test_split(exp)
    local = folder.local_copy()
    results = report_.load(local)
    best = results.best
    if best is None:
        raise ConfigError.invalid(
            "experiment directory",
            folder.path,
            f"an experiment with a trial that reported a finite {results.metric} (none did)",
        )
    config = dict(best["config"])
    # the search metric's test twin: test_loss for a loss, else the task's metric on test
    loss = results.metric in ("val_loss", "train_loss")
    ev = _Evaluation(
        folder=folder,
        local=local,
        exp=exp,
        spec=spec,
        results=results,
        best=best,
        config=config,
        metric="test_loss" if loss else f"test_{spec.metric.name}",
        mode="min" if loss else spec.metric.mode,
        epochs=int(config.get("epochs", exp.train.epochs)),
        level=level,
    )
    if seeds == 1:
        row = results.trials[results.trials["trial_id"] == best["trial_id"]].iloc[0]
        ckpt = _last_checkpoint(local / str(row["path"]))
        if ckpt is not None:
            from raytune_opt.train.checkpoint import load_state
            from raytune_opt.train.evaluate import evaluate_checkpoint

            if int(load_state(str(ckpt)).get("epoch", -1)) == ev.epochs:
                out = evaluate_checkpoint(config, str(ckpt), "test")
                last = results.history[results.history["trial_id"] == best["trial_id"]].iloc[-1]
                out[results.metric] = float(last[results.metric])
                ev.runs = [{**out, "seed": int(config.get("seed", 0)), "checkpoint": ckpt.name}]
                ev.source = "checkpoint"
    if not ev.runs:
        ev.configs = [{**config, "seed": s} for s in range(seeds)]
        if progress:
            print(
                f"evaluate: retraining trial {best['trial_id']}'s configuration over {seeds} seed(s), "
                f"{ev.epochs} epochs each, then testing on {len(spec.test[1])} test examples",
                flush=True,
            )
    return ev


def _finish(ev: _Evaluation, progress: bool, report: bool, figures: bool) -> dict[str, Any]:
    """``test.json`` from the seeds' runs, then (``report``) the report again."""
    from raytune_opt import report as report_
    from raytune_opt.report.stats import seed_summary

    runs, results, folder, local = ev.runs, ev.results, ev.folder, ev.local
    values = [float(r[ev.metric]) for r in runs]
    test = {
        "split": "test",
        "metric": ev.metric,
        "mode": ev.mode,
        "seeds": [int(r["seed"]) for r in runs],
        **seed_summary(values, ev.level),
        "losses": [float(r["test_loss"]) for r in runs],
        "val": {
            "metric": results.metric,
            "values": [float(r[results.metric]) if results.metric in r else None for r in runs],
        },
        "diverged": sum(bool(r.get("diverged")) for r in runs),
        "source": ev.source,
        "epochs": ev.epochs,
        "trial_id": ev.best["trial_id"],
        "config": ev.config,
        "test_size": len(ev.spec.test[1]),
    }
    folder.write_text(TEST_FILE, json.dumps(report_.results._json_safe(test), indent=2, default=str) + "\n")
    if folder.remote:
        (local / TEST_FILE).write_text(folder.read_text(TEST_FILE) or "")
    if report:
        files = report_.write_results(report_.load(local), local, figures=figures)
        if folder.remote:
            folder.upload(files)
    if progress:
        ci = test["ci"]
        level = ev.level
        shown = f"{test['mean']:.4g}" + (f", {level:.0%} CI [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
        print(f"test {ev.metric} over {len(values)} seed(s): {shown}", flush=True)
    return test


def evaluate_many(
    paths: Sequence[str | os.PathLike[str]],
    seeds: int = DEFAULT_SEEDS,
    *,
    confidence: float | None = None,
    interval: bool = True,
    address: str | None = None,
    progress: bool = True,
    report: bool = True,
    _figures: bool | Sequence[bool] = True,
) -> list[dict[str, Any]]:
    """:func:`evaluate` of each experiment in ``paths``, every folder checked before anything is
    trained, and every seed of every folder submitted to Ray at once: the seeds share warm worker
    processes (a fresh one imports torch first, seconds) and run side by side as the cluster allows.
    Returns each folder's ``test.json``, in the order of ``paths``. ``_figures`` (one for all, or one
    per path): ``False`` where a search has just drawn the report's figures from the same trials."""
    import ray

    level = check_seeds(seeds, confidence, interval)
    evs = [_prepare(p, seeds, level, address, progress) for p in paths]
    todo = [ev for ev in evs if ev.configs]
    if todo:
        connect(todo[0].exp.run_.address, progress)
        refs = [ref for ev in todo for ref in _seed_refs(ev.exp, ev.configs)]
        runs = iter(ray.get(refs))
        for ev in todo:
            ev.runs = [next(runs) for _ in ev.configs]
    figures = [_figures] * len(evs) if isinstance(_figures, bool) else list(_figures)
    return [_finish(ev, progress, report, f) for ev, f in zip(evs, figures, strict=True)]


def evaluate(
    path: str | os.PathLike[str],
    seeds: int = DEFAULT_SEEDS,
    *,
    confidence: float | None = None,
    interval: bool = True,
    address: str | None = None,
    progress: bool = True,
    report: bool = True,
    _figures: bool = True,
) -> dict[str, Any]:
    """Evaluate the best configuration of the experiment in ``path`` on its task's test split over
    ``seeds`` seeds (see the module docstring); ``confidence`` defaults to 0.95 (no interval with
    one seed, or with ``interval=False``). Writes ``test.json`` and, with ``report``, the report
    again; returns what ``test.json`` holds: split, metric, mode, seeds, per-seed ``values``
    (and ``losses``, ``val``),
    ``mean``, ``std``, ``ci``, ``confidence``, ``interval`` (the method), ``source`` ("retrained"
    or "checkpoint"), the trial and its ``config``.

    Bad input is a ``ConfigError`` before anything is trained: not an experiment folder, a task
    without a test split, a seed count or confidence that is not allowed (an interval of one
    seed), an experiment where no trial reported a finite metric.
    """
    (test,) = evaluate_many(
        [path],
        seeds,
        confidence=confidence,
        interval=interval,
        address=address,
        progress=progress,
        report=report,
        _figures=_figures,
    )
    return test
