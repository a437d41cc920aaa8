"""Which optimizer wins after fair tuning? The protocol of Schmidt et al. 2021 ("Descending through a
Crowded Valley", ICML) and DeepOBS (Schneider et al. 2019), on the project's own experiment runner.

1. **Tune**: for every task × optimizer, one :class:`raytune_opt.Experiment` with the SAME strategy
   and budget for every optimizer (default: ASHA over ``--samples`` random configurations, max_t =
   ``--epochs``, grace 1, reduction factor 3, search seed 0, train seed 0). The space is each
   optimizer's own (``search.optimizers: [name]``: the ranges of ``raytune_opt.optim.available()``),
   except that AdamW's and Lion's ``lr`` both range over the union of their two ranges
   [1e-5, 1e-2], so that the ratio of their tuned learning rates is measured, not built into the prior.
2. **Re-run**: per task, one Experiment with the ``grid`` strategy over ``optimizer`` × ``seed``
   (``--seeds`` fresh training seeds, 1 … n) and each optimizer's tuned hyperparameters fixed
   (``"<optimizer>.<hparam>": {value: v, when: {optimizer: name}}``), each trial ``--epochs`` epochs.
   Reported: final-epoch and best-epoch validation accuracy, mean ± std over seeds.
3. **Second order on GLMs**: per GLM task, one grid Experiment over the solvers (irls, newton,
   lbfgs, lm, adam, sgd), full batch, ``--glm-epochs`` epochs; Newton, L-BFGS and LM take ONE
   iteration per epoch (``max_iter: 1``) so that epochs = iterations for every solver; Adam and SGD
   run at fixed, untuned learning rates. "Converged" = first epoch whose train loss is within
   1e-6 (relative) of the lowest train loss any solver reached on that task.
4. **lr sweep** (``--no-lr-sweep`` skips it): the tuning searches above offer AdamW and Lion the same
   few lr candidates (same range, same search seed), so they cannot resolve the seed's "Lion's lr is
   3–10× below AdamW's". Per task, one ``grid`` Experiment over ``optimizer`` ∈ {adamw, lion} × ``lr``
   on a log grid (default 13 points, quarter-decade steps, 1e-4 … 1e-1) × ``--sweep-seeds`` training
   seeds (1 … n), every other hyperparameter fixed at the optimizers' paper defaults — AdamW betas
   (0.9, 0.999), Lion betas (0.9, 0.99) — and ``weight_decay`` 0 for both (the fair setting without a
   second tuned knob: decoupled decay acts as lr·λ per step, so a common λ would not be equally strong
   for both, and matching lr·λ would tie λ to the lr being swept), ``--epochs`` epochs each.
   Best lr per optimizer = the grid point with the highest final val accuracy (mean over seeds).

Compute is counted as trial-seconds (Σ over trials of Ray's ``time_total_s``) and epochs (Σ over
trials of the epochs trained; / max_t = full-fidelity-equivalent evaluations), besides wall time.

    python benchmarks/optimizers_tuned.py                     # full (see benchmarks/README.md for time)
    python benchmarks/optimizers_tuned.py --quick             # digits-mlp, adamw + lion, tiny budget
    python benchmarks/optimizers_tuned.py --no-lr-sweep       # without the AdamW/Lion lr grid (4.)
    python benchmarks/optimizers_tuned.py --address auto      # on a Ray cluster
    python benchmarks/optimizers_tuned.py --out DIR --storage DIR   # where the table / trials go
    python benchmarks/optimizers_tuned.py --storage DIR --resume    # continue: finished ones are loaded

Writes ``<out>/optimizers_tuned.md`` (tables), ``<out>/optimizers_tuned.png`` (box plots) and
``<out>/optimizers_lr_sweep.png`` (val accuracy vs lr, AdamW and Lion, one panel per task).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raytune_opt import keys

RESULTS = Path(__file__).parent / "results"
ZOO = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw", "lion")
TASKS = ("mnist1d-mlp", "mnist1d-cnn", "digits-mlp")
GLM_TASKS = ("glm-logistic", "glm-poisson")
GLM_SOLVERS = ("irls", "newton", "lbfgs", "lm", "adam", "sgd")
#: fixed learning rates of the first-order baselines on the GLMs (full batch, standardised features)
GLM_LR = {"adam": 0.05, "sgd": 0.5}
#: one iteration per epoch for the solvers that iterate inside step()
GLM_ONE_ITER = ("newton", "lbfgs", "lm")
#: the shared lr range of AdamW and Lion (union of their registry ranges)
SHARED_LR = {"adamw": (1e-5, 1e-2), "lion": (1e-5, 1e-2)}
CONVERGED_RTOL = 1e-6
#: the lr sweep's grid: 13 points, quarter-decade steps, 1e-4 … 1e-1
SWEEP_LRS = tuple(float(f"{10 ** (-4 + k / 4):.3g}") for k in range(13))
SWEEP_OPTIMIZERS = ("adamw", "lion")
#: every other hyperparameter of the sweep, fixed: the optimizers' default betas, no weight decay
SWEEP_FIXED = {"adamw": {"betas": [0.9, 0.999]}, "lion": {"betas": [0.9, 0.99]}}
SWEEP_WEIGHT_DECAY = 0.0
#: accuracy margin of the "near-best" lrs of the sweep (≈ a seed's spread on these tasks)
NEAR_BEST = 0.01


@dataclass
class Budget:
    """What one run of the benchmark spends; the same for every optimizer."""

    tasks: tuple[str, ...] = TASKS
    optimizers: tuple[str, ...] = ZOO
    strategy: str = "asha"
    samples: int = 6
    epochs: int = 9
    batch_size: int = 128
    seeds: int = 5
    glm_tasks: tuple[str, ...] = GLM_TASKS
    glm_solvers: tuple[str, ...] = GLM_SOLVERS
    glm_epochs: int = 20
    lr_sweep: bool = True
    sweep_lrs: tuple[float, ...] = SWEEP_LRS
    sweep_seeds: int = 1
    label: str = "full"
    extra: dict[str, Any] = field(default_factory=dict)


QUICK = Budget(
    tasks=("digits-mlp",),
    optimizers=("adamw", "lion"),
    strategy="random",
    samples=2,
    epochs=2,
    seeds=2,
    glm_tasks=("glm-logistic",),
    glm_solvers=("irls", "newton", "adam"),
    glm_epochs=3,
    sweep_lrs=(1e-3, 1e-2),
    label="quick",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------- running one experiment
#: names of the experiments loaded from an earlier invocation (``--resume``) instead of run again
REUSED: list[str] = []
#: wall seconds per experiment name: measured now, or recorded by the earlier invocation when reused
WALLS: dict[str, float] = {}


def _same_config(stored: dict[str, Any] | None, exp: Any) -> bool:
    """Whether the configuration recorded in an experiment.json is ``exp``'s. The stored dict is
    re-validated with the current :class:`Experiment` model first, so a field added to the model
    since (at its default) does not make a finished experiment look different."""
    from raytune_opt.errors import ConfigError
    from raytune_opt.experiment import Experiment

    if not stored:
        return False
    if stored == exp.to_dict() or _only_new_defaults(stored, exp.to_dict(), type(exp)):
        return True
    try:
        return Experiment.from_dict(stored, source="stored").to_dict() == exp.to_dict()
    except (ConfigError, ValueError, TypeError):
        return False


def _only_new_defaults(stored: dict[str, Any], current: dict[str, Any], model: type) -> bool:
    """Whether ``current`` equals ``stored`` but for fields that ``stored`` lacks (added to the model
    since) and that ``current`` has at the model's default. Needed besides the re-validation in
    :func:`_same_config`, which rejects some stored dicts (a grid over ``seed`` next to the
    ``train.seed`` that ``to_dict`` writes)."""
    fields = {(f.alias or name): f for name, f in getattr(model, "model_fields", {}).items()}
    for key in stored.keys() | current.keys():
        if key in stored and key in current:
            a, b = stored[key], current[key]
            if a == b:
                continue
            sub = fields[key].annotation if key in fields else None
            if not (isinstance(a, dict) and isinstance(b, dict) and hasattr(sub, "model_fields")):
                return False
            if not _only_new_defaults(a, b, sub):
                return False
        elif key in current and key in fields:
            f = fields[key]
            default = f.default_factory() if f.default_factory is not None else f.default
            if current[key] != default:
                return False
        else:
            return False
    return True


def _run(raw: dict[str, Any], resume: bool = False) -> tuple[Any, dict[str, Any], float]:
    """Validate and run one Experiment through the project's runner; (Results, summary, wall s).

    With ``resume``, an experiment of the same name that already finished in the storage folder
    (its experiment.json has ``finished_at``) is loaded instead of run again (its recorded wall time
    is returned), so an interrupted benchmark continues where it stopped."""
    from raytune_opt import report
    from raytune_opt.experiment import EXPERIMENT_FILE, Experiment, run_experiment

    exp = Experiment.from_dict(raw, source=f"optimizers_tuned:{raw['name']}")
    done = Path(raw["run"]["storage_path"]) / raw["name"]
    state = json.loads((done / EXPERIMENT_FILE).read_text()) if (done / EXPERIMENT_FILE).is_file() else {}
    if resume and state.get("finished_at") and _same_config(state.get("experiment"), exp):
        REUSED.append(raw["name"])
        results = report.load(done)
        WALLS[raw["name"]] = float(state.get("wall_s") or 0.0)
        return results, results.summary(), WALLS[raw["name"]]
    t0 = time.perf_counter()
    result = run_experiment(exp, progress=False, report=False)
    wall = WALLS[raw["name"]] = time.perf_counter() - t0
    results = report.load(result.path)
    return results, results.summary(), wall


def _base(name: str, task: str, budget: Budget, storage: str, address: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "task": task,
        "train": {"epochs": budget.epochs, "batch_size": budget.batch_size, "checkpoint_every": 0},
        "run": {"storage_path": storage, "max_failures": 0, "address": address},
    }


def _epochs(results: Any) -> int:
    """Σ over trials of the epochs each trained (its last report's epoch / training_iteration)."""
    t = results.trials
    if t.empty:
        return 0
    return int(t["iterations"].fillna(0).sum())


def tune(
    task: str, opt: str, budget: Budget, storage: str, address: str | None, resume: bool = False
) -> dict[str, Any]:
    """Tune ``opt`` on ``task`` with the budget's strategy; its best hyperparameters and the cost."""
    raw = _base(f"tune-{task}-{opt}", task, budget, storage, address)
    search: dict[str, Any] = {
        "strategy": budget.strategy,
        "optimizers": [opt],
        "num_samples": budget.samples,
        "metric": "val_accuracy",
        "mode": "max",
        "seed": 0,
    }
    if opt in SHARED_LR:
        lo, hi = SHARED_LR[opt]
        search["space"] = {f"{opt}.lr": {"loguniform": [lo, hi]}}
    raw["search"] = search
    results, summary, wall = _run(raw, resume)
    best = summary.get("best_config") or {}
    hparams = {k: v for k, v in keys.active(best, opt).items() if k not in best}
    counts = summary["trials"]
    return {
        "task": task,
        "optimizer": opt,
        "best_val_accuracy": summary.get("best_metric"),
        "hparams": hparams,
        "trials": counts["total"],
        "diverged": counts["diverged"],
        "failed": counts["failed"],
        "epochs": _epochs(results),
        "trial_seconds": float(summary.get("trial_seconds") or 0.0),
        "wall_s": wall,
        "path": str(results.exp_dir),
    }


def rerun(
    task: str,
    tuned: dict[str, dict[str, Any]],
    budget: Budget,
    storage: str,
    address: str | None,
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Every optimizer's tuned configuration on ``task`` with ``budget.seeds`` fresh training seeds
    (one grid Experiment over optimizer × seed); one row per trial."""
    space: dict[str, Any] = {
        "optimizer": {"grid": list(tuned)},
        "seed": {"grid": list(range(1, budget.seeds + 1))},
    }
    for opt, hp in tuned.items():
        for k, v in hp.items():
            value = list(v) if isinstance(v, tuple) else v
            space[f"{opt}.{k}"] = {"value": value, "when": {"optimizer": opt}}
    return _grid_rows(f"seeds-{task}", "re-run", task, space, budget, storage, address, resume)


def _grid_rows(
    name: str,
    label: str,
    task: str,
    space: dict[str, Any],
    budget: Budget,
    storage: str,
    address: str | None,
    resume: bool,
    floats: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Run the grid experiment ``name`` over ``space`` on ``task``; one row per trial: its optimizer,
    the config keys ``floats``, seed, status, final and best val accuracy, epochs, trial-seconds."""
    from raytune_opt.report.results import CONFIG_PREFIX

    raw = _base(name, task, budget, storage, address)
    raw["search"] = {"strategy": "grid", "space": space, "metric": "val_accuracy", "mode": "max"}
    results, summary, wall = _run(raw, resume)
    rows = []
    for _, r in results.trials.iterrows():
        final = r.get("val_accuracy")
        rows.append(
            {
                "task": task,
                "optimizer": str(r[f"{CONFIG_PREFIX}optimizer"]),
                **{k: float(r[f"{CONFIG_PREFIX}{k}"]) for k in floats},
                "seed": int(r[f"{CONFIG_PREFIX}seed"]),
                "status": r["status"],
                "final": float(final) if final is not None and not _nan(final) else math.nan,
                "best": float(r["best_val_accuracy"]),
                "epochs": int(r["iterations"] or 0),
                "trial_seconds": float(r["time_total_s"] or 0.0),
            }
        )
    log(
        f"{label} {task}: {len(rows)} trials, {summary['trials']['diverged']} diverged, "
        f"{summary.get('trial_seconds', 0):.0f} trial-s, {wall:.0f} s wall"
    )
    return rows


def glm(
    task: str, budget: Budget, storage: str, address: str | None, resume: bool = False
) -> list[dict[str, Any]]:
    """The second-order solvers against Adam/SGD on a GLM task: one grid Experiment over the solvers."""
    import numpy as np

    from raytune_opt.report.results import CONFIG_PREFIX

    space: dict[str, Any] = {"optimizer": {"grid": list(budget.glm_solvers)}}
    for opt in budget.glm_solvers:
        if opt in GLM_LR:
            space[f"{opt}.lr"] = {"value": GLM_LR[opt], "when": {"optimizer": opt}}
        if opt in GLM_ONE_ITER:
            space[f"{opt}.max_iter"] = {"value": 1, "when": {"optimizer": opt}}
    raw = {
        "name": f"glm-{task}",
        "task": task,
        "train": {"epochs": budget.glm_epochs, "batch_size": "full", "checkpoint_every": 0},
        "search": {"strategy": "grid", "space": space, "metric": "val_loss", "mode": "min"},
        "run": {"storage_path": storage, "max_failures": 0, "address": address},
    }
    results, summary, wall = _run(raw, resume)
    h = results.history
    opt_col = f"{CONFIG_PREFIX}optimizer"
    target = float(np.nanmin(h["train_loss"].astype(float))) if len(h) else math.nan
    tol = CONVERGED_RTOL * max(1.0, abs(target))
    rows = []
    for tid, g in h.groupby("trial_id"):
        g = g.sort_values("epoch")
        opt = str(g[opt_col].iloc[0])
        loss = g["train_loss"].astype(float).to_numpy()
        t_epoch = g["time_this_epoch_s"].astype(float).to_numpy()
        hit = np.flatnonzero(np.isfinite(loss) & (loss - target <= tol))
        conv = int(g["epoch"].iloc[hit[0]]) if len(hit) else None
        if conv is None:
            t_conv = None
        elif opt.startswith("irls"):  # epoch k refits k iterations from the start: that epoch alone
            t_conv = float(t_epoch[hit[0]])
        else:
            t_conv = float(t_epoch[: hit[0] + 1].sum())
        last = g.iloc[-1]
        metric = next((c for c in ("val_deviance", "val_accuracy") if c in g), None)
        rows.append(
            {
                "task": task,
                "optimizer": opt,
                "epochs": int(last["epoch"]),
                "converged_epoch": conv,
                "time_to_converge_s": t_conv,
                "time_total_s": float(g["time_this_epoch_s"].astype(float).sum()),
                "train_loss": float(last["train_loss"]),
                "val_loss": float(last["val_loss"]),
                "metric": metric,
                "metric_value": float(last[metric]) if metric else None,
                "diverged": bool(last.get("diverged", False)),
                "trial_id": tid,
            }
        )
    rows.sort(key=lambda r: budget.glm_solvers.index(r["optimizer"]))
    log(f"glm {task}: {len(rows)} solvers, lowest train loss {target:.6g}, {wall:.0f} s wall")
    return rows


def lr_sweep(
    task: str, budget: Budget, storage: str, address: str | None, resume: bool = False
) -> list[dict[str, Any]]:
    """AdamW and Lion on ``task`` over the lr grid × ``budget.sweep_seeds`` seeds, everything else
    fixed (:data:`SWEEP_FIXED`, weight decay 0): one grid Experiment; one row per trial."""
    space: dict[str, Any] = {
        "optimizer": {"grid": list(SWEEP_OPTIMIZERS)},
        "lr": {"grid": [float(v) for v in budget.sweep_lrs]},
        "seed": {"grid": list(range(1, budget.sweep_seeds + 1))},
        "weight_decay": {"value": SWEEP_WEIGHT_DECAY},
    }
    for opt, hp in SWEEP_FIXED.items():
        for k, v in hp.items():
            space[f"{opt}.{k}"] = {"value": v, "when": {"optimizer": opt}}
    return _grid_rows(f"lrsweep-{task}", "lr sweep", task, space, budget, storage, address, resume, ("lr",))


def sweep_curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[float, float, float]]]:
    """(task, optimizer) → [(lr, mean final val acc, std over seeds)] sorted by lr; a diverged or
    failed trial (no final accuracy) counts as 0 accuracy, so a grid point never looks better for it."""
    acc: dict[tuple[str, str], dict[float, list[float]]] = {}
    for r in rows:
        v = 0.0 if _nan(r["final"]) else r["final"]
        acc.setdefault((r["task"], r["optimizer"]), {}).setdefault(r["lr"], []).append(v)
    return {key: [(lr, *_mean_std(v)) for lr, v in sorted(d.items())] for key, d in acc.items()}


def sweep_best(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: each optimizer's best grid lr (highest mean final val accuracy; ties → the
    smaller lr), its accuracy, whether it sits at an edge of the grid, the lowest and highest grid lr
    within :data:`NEAR_BEST` accuracy of the best (``near``: how flat the top is), and AdamW's / Lion's
    best lr (``ratio``) with the range of ratios between their near-best lrs (``ratio_range``)."""
    out: dict[str, dict[str, Any]] = {}
    for (task, opt), curve in sweep_curves(rows).items():
        lr, m, s = max(curve, key=lambda c: (c[1], -c[0]))
        edge = lr in (curve[0][0], curve[-1][0])
        near = [c[0] for c in curve if c[1] >= m - NEAR_BEST]
        out.setdefault(task, {})[opt] = {
            "lr": lr,
            "acc": m,
            "std": s,
            "edge": edge,
            "near": (min(near), max(near)),
        }
    for d in out.values():
        if "adamw" in d and "lion" in d:
            a, b = d["adamw"], d["lion"]
            d["ratio"] = a["lr"] / b["lr"]
            d["ratio_range"] = (a["near"][0] / b["near"][1], a["near"][1] / b["near"][0])
    return out


def _nan(x: Any) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return True


# ---------------------------------------------------------------------- tables and figure
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = [x for x in values if not _nan(x)]
    if not v:
        return math.nan, math.nan
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def _fmt(x: Any, spec: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def _hp_text(hp: dict[str, Any]) -> str:
    parts = []
    for k, v in sorted(hp.items()):
        if isinstance(v, list | tuple):
            v = "(" + ", ".join(_fmt(float(x), ".3g") for x in v) + ")"
        elif isinstance(v, float):
            v = _fmt(v, ".3g")
        parts.append(f"{k}={v}")
    return ", ".join(parts) or "—"


def lr_ratios(tuned: list[dict[str, Any]]) -> dict[str, float]:
    """Per task, AdamW's tuned lr / Lion's tuned lr (the seed: Lion's is 3–10× smaller)."""
    out = {}
    by = {(t["task"], t["optimizer"]): t for t in tuned}
    for task in dict.fromkeys(t["task"] for t in tuned):
        a, b = by.get((task, "adamw")), by.get((task, "lion"))
        if a and b and "lr" in a["hparams"] and "lr" in b["hparams"]:
            out[task] = float(a["hparams"]["lr"]) / float(b["hparams"]["lr"])
    return out


def table(tuned: list[dict[str, Any]], seeds: list[dict[str, Any]], budget: Budget) -> str:
    """One row per task × optimizer, best mean final accuracy first within a task."""
    lines = [
        "| task | optimizer | final val acc, mean ± std | best-epoch val acc, mean ± std | tuning best | "
        "tuned hyperparameters | tuning trials (div.) | tuning epochs (full-fid. eq.) | tuning trial-s | "
        "re-run trial-s |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for task in budget.tasks:
        rows = []
        for t in (t for t in tuned if t["task"] == task):
            s = [r for r in seeds if r["task"] == task and r["optimizer"] == t["optimizer"]]
            fm, fs = _mean_std([r["final"] for r in s])
            bm, bs = _mean_std([r["best"] for r in s])
            rows.append((fm, t, s, fs, bm, bs))
        rows.sort(key=lambda r: -r[0] if not _nan(r[0]) else math.inf)
        for fm, t, s, fs, bm, bs in rows:
            eq = t["epochs"] / budget.epochs
            lines.append(
                f"| {task} | {t['optimizer']} | {_fmt(fm, '.3f')} ± {_fmt(fs, '.3f')} (n={len(s)}) | "
                f"{_fmt(bm, '.3f')} ± {_fmt(bs, '.3f')} | {_fmt(t['best_val_accuracy'], '.3f')} | "
                f"{_hp_text(t['hparams'])} | {t['trials']} ({t['diverged']}) | {t['epochs']} ({eq:.1f}) | "
                f"{t['trial_seconds']:.0f} | {sum(r['trial_seconds'] for r in s):.0f} |"
            )
    return "\n".join(lines)


def glm_table(rows: list[dict[str, Any]], budget: Budget) -> str:
    lines = [
        "| task | solver | epochs = iterations run | converged at epoch | time to converge s | "
        "time total s | final train loss | final val loss | final val metric |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        metric = f"{r['metric']} {_fmt(r['metric_value'], '.5g')}" if r["metric"] else "—"
        conv = r["converged_epoch"] if r["converged_epoch"] is not None else f"not in {r['epochs']}"
        lines.append(
            f"| {r['task']} | {r['optimizer']}{' (diverged)' if r['diverged'] else ''} | {r['epochs']} | "
            f"{conv} | {_fmt(r['time_to_converge_s'], '.3g')} | {r['time_total_s']:.3g} | "
            f"{r['train_loss']:.8g} | {r['val_loss']:.8g} | {metric} |"
        )
    return "\n".join(lines)


def box_plot(seeds: list[dict[str, Any]], budget: Budget, path: Path) -> Path:
    """Per task, final validation accuracy over the seeds, one box per optimizer (best median first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(budget.tasks)
    fig, axes = plt.subplots(1, n, figsize=(max(4.2 * n + 0.6, 7.0), 4.2), squeeze=False)
    for ax, task in zip(axes[0], budget.tasks, strict=True):
        data = {}
        for opt in budget.optimizers:
            v = [r["final"] for r in seeds if r["task"] == task and r["optimizer"] == opt]
            data[opt] = [x for x in v if not _nan(x)]
        order = sorted(data, key=lambda o: -statistics.median(data[o]) if data[o] else math.inf)
        ax.boxplot([data[o] or [math.nan] for o in order], showmeans=True)
        ax.set_xticks(range(1, len(order) + 1), order, rotation=45, ha="right")
        for i, o in enumerate(order, start=1):
            ax.scatter([i] * len(data[o]), data[o], s=10, alpha=0.6, color="k", zorder=3)
        ax.set_title(task)
        ax.set_ylabel("final validation accuracy")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"Tuned optimizers ({budget.strategy}, {budget.samples} samples each, {budget.epochs} epochs), "
        f"{budget.seeds} seeds"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep_plot(rows: list[dict[str, Any]], budget: Budget, path: Path) -> Path:
    """Final validation accuracy vs lr (log axis), one line per optimizer (mean ± std over seeds),
    one panel per task; each optimizer's best lr marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, best = sweep_curves(rows), sweep_best(rows)
    tasks = [t for t in budget.tasks if any((t, o) in curves for o in SWEEP_OPTIMIZERS)]
    n = max(len(tasks), 1)
    fig, axes = plt.subplots(1, n, figsize=(max(4.2 * n + 0.6, 6.0), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=False):
        for opt, color in zip(SWEEP_OPTIMIZERS, ("tab:blue", "tab:orange"), strict=True):
            c = curves.get((task, opt))
            if not c:
                continue
            lr, m, s = (list(x) for x in zip(*c, strict=True))
            ax.plot(lr, m, "o-", color=color, label=opt, ms=4)
            if budget.sweep_seeds > 1:
                ax.fill_between(
                    lr,
                    [a - b for a, b in zip(m, s, strict=True)],
                    [a + b for a, b in zip(m, s, strict=True)],
                    color=color,
                    alpha=0.15,
                )
            b = best[task][opt]
            ax.axvline(b["lr"], color=color, ls=":", lw=1)
        ratio = best[task].get("ratio")
        ax.set_xscale("log")
        ax.set_title(f"{task}" + (f" (AdamW/Lion best lr {ratio:.2g}×)" if ratio else ""), fontsize=9)
        ax.set_xlabel("lr")
        ax.set_ylabel("final validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"lr sweep: {len(budget.sweep_lrs)} lrs, {budget.epochs} epochs, {budget.sweep_seeds} seed(s); "
        "betas AdamW (0.9, 0.999), Lion (0.9, 0.99), weight decay 0",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(
    tuned: list[dict[str, Any]],
    seeds: list[dict[str, Any]],
    glm_rows: list[dict[str, Any]],
    budget: Budget,
    timing: dict[str, float],
    command: str,
    png: str,
    sweep: list[dict[str, Any]] | None = None,
    sweep_png: str | None = None,
) -> str:
    ratios = lr_ratios(tuned)
    cost = {}
    for t in tuned:
        c = cost.setdefault(t["optimizer"], {"epochs": 0, "trial_seconds": 0.0, "trials": 0})
        c["epochs"] += t["epochs"]
        c["trial_seconds"] += t["trial_seconds"]
        c["trials"] += t["trials"]
    for r in seeds:
        c = cost[r["optimizer"]]
        c["epochs"] += r["epochs"]
        c["trial_seconds"] += r["trial_seconds"]
        c["trials"] += 1
    out = [
        "# Tuned optimizers (benchmarks/optimizers_tuned.py)",
        "",
        f"`{command}` — **{budget.label} mode**. Protocol of Schmidt et al. 2021 / DeepOBS: every optimizer "
        f"tuned with the same strategy (**{budget.strategy}**, {budget.samples} samples, max_t "
        f"{budget.epochs} epochs, batch {budget.batch_size}, search seed 0, train seed 0) on its own "
        f"search space (`raytune_opt.optim.available()` ranges; AdamW's and Lion's lr both over "
        f"[1e-5, 1e-2]), then its best configuration re-run with {budget.seeds} fresh seeds "
        f"(train.seed 1…{budget.seeds}) for {budget.epochs} epochs.",
        "",
        "Caveats: the tasks have one held-out split (`val`; for MNIST-1D it is the generator's test "
        "split), used both to pick the configuration and to report the re-runs, so accuracies are "
        "validation, not untouched test, accuracies; the seed spread is honest (fresh seeds). "
        "A small budget (DeepOBS's 'small budget' is 25 random samples of full training): the "
        "ranking among close optimizers is within noise.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, 1 CPU per trial, run under "
        f"`nice -n 10` on a machine shared with other jobs (load average at start "
        f"{timing.get('load_start', math.nan):.1f}, at end {timing.get('load_end', math.nan):.1f}): "
        "times are noisy and inflated; trial-seconds count the compute each trial used (its own clock, "
        f"also inflated by the load). Total wall time **{timing['total_s'] / 60:.1f} min** "
        f"(tuning {timing['tune_s'] / 60:.1f}, re-runs {timing['rerun_s'] / 60:.1f}, GLM "
        f"{timing['glm_s'] / 60:.1f}, lr sweep {timing.get('sweep_s', 0.0) / 60:.1f}; "
        f"this invocation {timing.get('invocation_s', math.nan) / 60:.1f}).",
        "",
    ]
    if REUSED:
        out += [
            f"Resumed (`--resume`): {len(REUSED)} experiments had finished, with the same configuration, in "
            "an earlier invocation that was stopped; they were loaded, not rerun, and their recorded wall "
            f"times are counted in the totals above: {', '.join(REUSED)}.",
            "",
        ]
    out += [
        "## Accuracy after tuning, mean ± std over seeds",
        "",
        table(tuned, seeds, budget),
        "",
        f"![box plot]({png})",
        "",
        "## Is Lion's best lr 3–10× below AdamW's?",
        "",
        "| task | AdamW lr | Lion lr | AdamW / Lion | within 3–10×? |",
        "|---|---:|---:|---:|---|",
    ]
    by = {(t["task"], t["optimizer"]): t for t in tuned}
    for task, ratio in ratios.items():
        a, b = by[(task, "adamw")]["hparams"]["lr"], by[(task, "lion")]["hparams"]["lr"]
        out.append(f"| {task} | {a:.3g} | {b:.3g} | {ratio:.2f} | {'yes' if 3 <= ratio <= 10 else 'no'} |")
    if ratios:
        inside = sum(3 <= r <= 10 for r in ratios.values())
        gm = math.exp(statistics.fmean(math.log(r) for r in ratios.values()))
        out += [
            "",
            f"Answer: {inside} of {len(ratios)} tasks inside 3–10×; geometric mean ratio {gm:.2f}. "
            f"Each tuned lr comes from {budget.samples} samples over a 3-decade range (and the other "
            "hyperparameters searched at the same time), so one ratio is resolved to about a factor of "
            "2–3 at best. Both searches use search seed 0 over the same lr range, so AdamW and Lion are "
            "offered the same lr candidates (common random numbers): the ratio is one of those values over "
            "another, and 1.00 means both picked the same candidate.",
        ]
    if sweep:
        best = sweep_best(sweep)
        lrs = budget.sweep_lrs
        n = budget.sweep_seeds
        seeds_text = f"{n} training seeds (train.seed 1…{n})" if n > 1 else "1 training seed (train.seed 1)"
        step = f"Grid step {lrs[1] / lrs[0]:.2f}×: a ratio is resolved to one step." if len(lrs) > 1 else ""
        out += [
            "",
            "### lr sweep: AdamW and Lion on the same lr grid",
            "",
            f"The tuned ratios above cannot answer the question (same candidates for both). The sweep: per "
            f"task one `grid` Experiment over optimizer ∈ {{adamw, lion}} × lr ∈ {len(lrs)} log-spaced "
            f"values {lrs[0]:.3g} … {lrs[-1]:.3g} × {seeds_text}, {budget.epochs} epochs each (as the "
            "re-runs), batch "
            f"{budget.batch_size}; every other hyperparameter fixed: AdamW betas (0.9, 0.999), Lion betas "
            "(0.9, 0.99) (their papers' defaults), weight decay 0 for both (decoupled decay shrinks by "
            "lr·λ per step, so a common λ is not equally strong at the two optimizers' lrs; 0 is the "
            "setting that is fair without tuning a second knob). Best lr = grid point with the highest "
            f"final val accuracy (mean over seeds; a diverged trial counts as 0). {step}",
            "",
            f"Near-best = the grid lrs within {NEAR_BEST:g} val accuracy of the optimizer's best (a seed's "
            "spread is about that size here); the ratio range is the lowest and highest AdamW/Lion ratio "
            "between near-best lrs.",
            "",
            "| task | AdamW best lr | val acc | AdamW near-best lrs | Lion best lr | val acc | "
            "Lion near-best lrs | AdamW / Lion | ratio range (near-best) | within 3–10×? |",
            "|---|---:|---:|---|---:|---:|---|---:|---|---|",
        ]
        for task, d in best.items():
            if "ratio" not in d:
                continue
            a, b, r = d["adamw"], d["lion"], d["ratio"]
            cell = [
                f"{x['lr']:.3g}{' (grid edge)' if x['edge'] else ''} | {x['acc']:.3f}"
                + (f" ± {x['std']:.3f}" if budget.sweep_seeds > 1 else "")
                for x in (a, b)
            ]
            near = [f"{x['near'][0]:.3g} – {x['near'][1]:.3g}" for x in (a, b)]
            edge_note = " (a best lr at the grid edge: the ratio is only a bound)"
            lo, hi = d["ratio_range"]
            out.append(
                f"| {task} | {cell[0]} | {near[0]} | {cell[1]} | {near[1]} | {r:.2f} | {lo:.2g} – {hi:.2g} | "
                f"{'yes' if 3 <= r <= 10 else 'no'}{edge_note if a['edge'] or b['edge'] else ''} |"
            )
        rs = [d["ratio"] for d in best.values() if "ratio" in d]
        interior = [
            d["ratio"]
            for d in best.values()
            if "ratio" in d and not (d["adamw"]["edge"] or d["lion"]["edge"])
        ]
        if rs:
            gm = math.exp(statistics.fmean(math.log(r) for r in rs))
            out += [
                "",
                f"Sweep answer: {sum(3 <= r <= 10 for r in rs)} of {len(rs)} tasks inside 3–10× "
                f"({sum(3 <= r <= 10 for r in interior)} of {len(interior)} with both best lrs inside the "
                f"grid); geometric mean ratio {gm:.2f}.",
            ]
        if sweep_png:
            out += ["", f"![lr sweep]({sweep_png})"]
    out += [
        "",
        "## Compute per optimizer (all tasks; tuning + re-runs)",
        "",
        "| optimizer | trials | epochs | full-fidelity-equivalent evals | trial-seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for opt, c in cost.items():
        out.append(
            f"| {opt} | {c['trials']} | {c['epochs']} | {c['epochs'] / budget.epochs:.1f} | "
            f"{c['trial_seconds']:.0f} |"
        )
    if glm_rows:
        lr = ", ".join(f"{k} lr={v:g}" for k, v in GLM_LR.items() if k in budget.glm_solvers)
        out += [
            "",
            "## Second order on GLMs",
            "",
            f"Full batch, {budget.glm_epochs} epochs; newton, lbfgs and lm take one iteration per epoch "
            f"(`max_iter: 1`), IRLS's epoch k is its k-th iterate (refitted from the start, so its time "
            f"to converge is that one epoch's time); {lr} (fixed, untuned). Converged = train loss within "
            f"{CONVERGED_RTOL:g} (relative) of the lowest train loss of any solver on the task. `lm` "
            "minimises the squared residuals Σ(μ − y)², not the likelihood, so its loss need not reach "
            "the MLE's.",
            "",
            glm_table(glm_rows, budget),
        ]
    out += [
        "",
        "Every record (each experiment's budget used, best config, each seed's accuracy) is in "
        "`optimizers_tuned.json` in the `--storage` folder, beside the experiments' trials.",
        "",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------------- main
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny: digits-mlp, adamw + lion, 2 samples, 2 epochs, lr sweep at 2 lrs",
    )
    p.add_argument("--address", default=None, help="Ray cluster address (auto, ray://host:10001)")
    p.add_argument("--out", default=str(RESULTS), help="folder for optimizers_tuned.md/.png")
    p.add_argument("--storage", default=None, help="folder for the experiments' trials (default: a temp dir)")
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--optimizers", nargs="+", default=None)
    p.add_argument(
        "--strategy", default=None, help="any of raytune_opt.search.available_strategies() (default asha)"
    )
    p.add_argument("--samples", type=int, default=None, help="configurations per optimizer and task")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--glm-epochs", type=int, default=None)
    p.add_argument("--no-glm", action="store_true")
    p.add_argument("--no-lr-sweep", action="store_true", help="skip the AdamW/Lion lr grid")
    p.add_argument("--sweep-seeds", type=int, default=None, help="training seeds per lr-sweep point")
    p.add_argument(
        "--resume",
        action="store_true",
        help="load the experiments that already finished in --storage (same name, same config)",
    )
    return p.parse_args(argv)


def _budget(args: argparse.Namespace) -> Budget:
    b = Budget(**asdict(QUICK)) if args.quick else Budget()
    over = {
        "tasks": tuple(args.tasks) if args.tasks else None,
        "optimizers": tuple(args.optimizers) if args.optimizers else None,
        "strategy": args.strategy,
        "samples": args.samples,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "glm_epochs": args.glm_epochs,
        "glm_tasks": () if args.no_glm else None,
        "lr_sweep": False if args.no_lr_sweep else None,
        "sweep_seeds": args.sweep_seeds,
    }
    changed = {k: v for k, v in over.items() if v is not None}
    for k, v in changed.items():
        setattr(b, k, v)
    if changed and not args.quick:
        b.label = "reduced (" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"
    return b


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return math.nan


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the records (tuned, seeds, glm, lr_ratios, timing, files)."""
    import torch

    args = _parse(argv)
    budget = _budget(args)
    REUSED.clear()
    WALLS.clear()
    storage = args.storage or tempfile.mkdtemp(prefix="optimizers_tuned-")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    timing: dict[str, float] = {"load_start": _load()}
    t0 = time.perf_counter()
    n_tune = len(budget.tasks) * len(budget.optimizers)
    log(
        f"{budget.label}: {n_tune} tuning experiments ({budget.strategy}, {budget.samples} samples, "
        f"{budget.epochs} epochs), {len(budget.tasks)} re-run experiments ({budget.seeds} seeds), "
        f"{len(budget.glm_tasks)} GLM experiments; trials in {storage}"
    )
    tuned: list[dict[str, Any]] = []
    for task in budget.tasks:
        for opt in budget.optimizers:
            t = tune(task, opt, budget, storage, args.address, args.resume)
            tuned.append(t)
            log(
                f"tuned [{len(tuned)}/{n_tune}] {task} × {opt}: best val_accuracy "
                f"{_fmt(t['best_val_accuracy'], '.3f')} with {_hp_text(t['hparams'])}; {t['trials']} trials "
                f"({t['diverged']} diverged), {t['epochs']} epochs, {t['trial_seconds']:.0f} trial-s, "
                f"{t['wall_s']:.0f} s wall"
            )
    timing["tune_s"] = sum(t["wall_s"] for t in tuned)  # reused experiments: their recorded wall time
    seeds: list[dict[str, Any]] = []
    for task in budget.tasks:
        best = {t["optimizer"]: t["hparams"] for t in tuned if t["task"] == task}
        seeds += rerun(task, best, budget, storage, args.address, args.resume)
    timing["rerun_s"] = sum(WALLS[f"seeds-{task}"] for task in budget.tasks)
    glm_rows: list[dict[str, Any]] = []
    for task in budget.glm_tasks:
        glm_rows += glm(task, budget, storage, args.address, args.resume)
    timing["glm_s"] = sum(WALLS[f"glm-{task}"] for task in budget.glm_tasks)
    sweep: list[dict[str, Any]] = []
    sweep_tasks = budget.tasks if budget.lr_sweep and set(SWEEP_OPTIMIZERS) <= set(budget.optimizers) else ()
    for task in sweep_tasks:
        sweep += lr_sweep(task, budget, storage, args.address, args.resume)
    timing["sweep_s"] = sum(WALLS[f"lrsweep-{task}"] for task in sweep_tasks)
    # the experiments' wall times (reused ones: as recorded) and this invocation's own
    timing["total_s"] = timing["tune_s"] + timing["rerun_s"] + timing["glm_s"] + timing["sweep_s"]
    timing["invocation_s"] = time.perf_counter() - t0
    timing["load_end"] = _load()

    command = "python benchmarks/optimizers_tuned.py" + (" " + " ".join(argv) if argv else "")
    if argv is None:
        import sys

        command = "python benchmarks/optimizers_tuned.py " + " ".join(sys.argv[1:])
    png = box_plot(seeds, budget, out / "optimizers_tuned.png")
    sweep_png = sweep_plot(sweep, budget, out / "optimizers_lr_sweep.png") if sweep else None
    md = markdown(
        tuned,
        seeds,
        glm_rows,
        budget,
        timing,
        command.strip(),
        png.name,
        sweep,
        sweep_png.name if sweep_png else None,
    )
    md_path = out / "optimizers_tuned.md"
    md_path.write_text(md, encoding="utf-8")
    print(md, flush=True)
    ratios = lr_ratios(tuned)
    headline = ", ".join(f"{k} {v:.2f}×" for k, v in ratios.items()) or "—"
    best = sweep_best(sweep)
    swept = ", ".join(f"{k} {v['ratio']:.2f}×" for k, v in best.items() if "ratio" in v) or "—"
    print(
        f"headline: AdamW/Lion tuned lr = {headline}; lr sweep best lr = {swept}; "
        f"total {timing['total_s'] / 60:.1f} min",
        flush=True,
    )
    record = {
        "budget": asdict(budget),
        "tuned": tuned,
        "seeds": seeds,
        "glm": glm_rows,
        "lr_ratios": ratios,
        "lr_sweep": sweep,
        "lr_sweep_best": best,
        "timing": timing,
        "files": {"md": str(md_path), "png": str(png), "sweep_png": str(sweep_png) if sweep_png else None},
    }
    (Path(storage) / "optimizers_tuned.json").write_text(json.dumps(record, indent=1, default=str))
    return record


if __name__ == "__main__":
    main()
