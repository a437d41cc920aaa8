"""Do the optimizers' default search ranges contain the optimum on the built-in tasks?

For every task × optimizer: one search of that optimizer alone over its registry ranges
(``search.optimizers: [name]``, the ranges of ``raytune_opt.optim.available()``), the same strategy
and budget for each (default ASHA, ``--samples`` 12, max_t ``--epochs`` 9, search seed 0). Printed,
per searched numeric hyperparameter: its range, the best trial's value and its position

    u = (log v - log low) / (log high - log low)        (u = (v - low) / (high - low) if uniform)

the positions of the top 3 trials (a best at the edge alone can be one lucky sample; three near it
is evidence), and the edge flag of the report (:func:`raytune_opt.report.edges.edge_params`:
u within 5 % of 0 or 1). With ``--widen`` (default on), each flagged range that can be widened
(:func:`raytune_opt.report.edges.widen`: 10× in log space, within the registry's hard bounds) is
searched again with the same budget over the widened range, and the best validation value and
position there are printed: a better best outside the old range says the default range excludes the
optimum. The last line counts the flagged ranges.

    python benchmarks/ranges_check.py                          # digits-mlp and mnist1d-mlp, 8 optimizers
    python benchmarks/ranges_check.py --quick                  # digits-mlp, adamw + momentum, tiny budget
    python benchmarks/ranges_check.py --tasks mnist1d-mlp --optimizers lion --samples 20
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Sequence
from typing import Any

ZOO = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw", "lion")
TASKS = ("digits-mlp", "mnist1d-mlp")
TOP = 3


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _search(
    task: str,
    opt: str,
    args: argparse.Namespace,
    storage: str,
    space: dict[str, Any] | None = None,
    tag: str = "",
) -> Any:
    """One search of ``opt`` alone on ``task``; its :class:`raytune_opt.report.Results`."""
    from raytune_opt import Experiment, report

    exp = Experiment.from_dict(
        {
            "name": f"{task}-{opt}{tag}",
            "task": task,
            "train": {"epochs": args.epochs, "batch_size": 128, "checkpoint_every": 0, "seed": 0},
            "search": {
                "strategy": args.strategy,
                "optimizers": [opt],
                "num_samples": args.samples,
                "seed": 0,
                "space": space or {},
            },
            "run": {"storage_path": storage, "address": args.address},
        }
    )
    result = exp.run(progress=False)
    return report.load(result.path)


def _position(v: float, lo: float, hi: float, log_: bool) -> float:
    return math.log(v / lo) / math.log(hi / lo) if log_ else (v - lo) / (hi - lo)


def positions(results: Any) -> list[dict[str, Any]]:
    """Per searched numeric parameter of the best trial's optimizer: range, best value, its position,
    the top trials' positions and the report's edge flag."""
    from raytune_opt.report.edges import edge_params, search_space
    from raytune_opt.report.results import CONFIG_PREFIX
    from raytune_opt.search import Float, Int

    best = results.best
    if best is None:
        return []
    search = results.info["experiment"]["search"]
    space = search_space(search)
    flagged = {e["name"]: e for e in edge_params(results.info, best["config"])}
    top = results.ranked().head(TOP)
    rows = []
    for p in space:
        if not isinstance(p.domain, Float | Int) or p.name not in best["config"]:
            continue
        lo, hi, lg = float(p.domain.low), float(p.domain.high), bool(p.domain.log)
        v = float(best["config"][p.name])
        col = f"{CONFIG_PREFIX}{p.name}"
        us = [_position(float(x), lo, hi, lg) for x in top[col]] if col in top else []
        e = flagged.get(p.name)
        rows.append(
            {
                "name": p.name,
                "low": lo,
                "high": hi,
                "log": lg,
                "value": v,
                "position": _position(v, lo, hi, lg),
                "top": us,
                "edge": e["side"] if e else None,
                "widened": e.get("widened") if e else None,
                "bounded": e.get("bounded") if e else None,
                "integer": isinstance(p.domain, Int),
                "best_val": best["value"],
            }
        )
    return rows


def _g(x: float) -> str:
    return f"{x:.3g}"


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="digits-mlp, adamw + momentum, 3 samples, 2 epochs")
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--optimizers", nargs="+", default=None)
    p.add_argument("--strategy", default="asha")
    p.add_argument("--samples", type=int, default=None, help="trials per search (default 12)")
    p.add_argument("--epochs", type=int, default=None, help="max_t (default 9)")
    p.add_argument("--no-widen", action="store_true", help="do not search the widened ranges")
    p.add_argument("--storage", default=None, help="the searches' folders (default: a temp dir)")
    p.add_argument("--address", default=None)
    args = p.parse_args(argv)
    q = args.quick
    args.tasks = tuple(args.tasks or (("digits-mlp",) if q else TASKS))
    args.optimizers = tuple(args.optimizers or (("adamw", "momentum") if q else ZOO))
    args.samples = args.samples or (3 if q else 12)
    args.epochs = args.epochs or (2 if q else 9)
    storage = args.storage or tempfile.mkdtemp(prefix="ranges_check-")
    log(
        f"{args.strategy}, {args.samples} samples, max_t {args.epochs}, search seed 0 per task x optimizer; "
        f"trials in {storage}"
    )
    from raytune_opt.report.edges import space_entry

    out: list[dict[str, Any]] = []
    for task in args.tasks:
        for opt in args.optimizers:
            t0 = time.time()
            rows = positions(_search(task, opt, args, storage))
            widen = [r for r in rows if r["widened"]] if not args.no_widen else []
            if widen:
                again = _search(
                    task, opt, args, storage, {r["name"]: space_entry(r) for r in widen}, "-widened"
                )
                after = {r["name"]: r for r in positions(again)}
                for r in widen:
                    w = after.get(r["name"])
                    r["widened_best_val"] = w["best_val"] if w else None
                    r["widened_value"] = w["value"] if w else None
                    r["widened_position"] = w["position"] if w else None
            for r in rows:
                r.update(task=task, optimizer=opt)
            out += rows
            log(f"{task} {opt}: {time.time() - t0:.0f} s")
    print()
    print(
        "| task | optimizer | parameter | range | best | u | top-3 u | edge | best val | "
        "widened range: best val, best, u |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in out:
        rng = f"[{_g(r['low'])}, {_g(r['high'])}]" + (" log" if r["log"] else "")
        edge = r["edge"] or "-"
        if r["edge"] and not r["widened"]:
            edge += f" (cannot widen: {r['bounded']})"
        if r.get("widened_best_val") is not None:
            w = r["widened"]
            after = (
                f"[{_g(w[0])}, {_g(w[1])}]: {r['widened_best_val']:.4g}, {_g(r['widened_value'])}, "
                f"{r['widened_position']:.2f}"
            )
        else:
            after = "-"
        print(
            f"| {r['task']} | {r['optimizer']} | {r['name']} | {rng} | {_g(r['value'])} | "
            f"{r['position']:.2f} | {', '.join(f'{u:.2f}' for u in r['top'])} | {edge} | "
            f"{r['best_val']:.4g} | {after} |"
        )
    flagged = [r for r in out if r["edge"]]
    better = [r for r in flagged if (r.get("widened_best_val") or -math.inf) > r["best_val"]]
    print()
    print(
        f"{len(flagged)} of {len(out)} ranges flagged at an edge; "
        f"{len(better)} of them found a better best val in the widened range"
    )
    return out


if __name__ == "__main__":
    main()
