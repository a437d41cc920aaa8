"""The report of a comparison of optimizers (``search.compare: optimizers``).

Read from the comparison's folder: ``comparison.json`` (the optimizers and their sub-experiment
folders) and, per optimizer, its sub-experiment (:func:`raytune_opt.report.load`: trials, best
validation value, its ``test.json``). Protocol: Schmidt, Schneider & Hennig 2021, "Descending through a
crowded valley — benchmarking deep learning optimizers" (ICML), and DeepOBS (Schneider, Balles &
Hennig 2019, ICLR): equal tuning budgets, the best setting of each optimizer rerun over seeds,
compared on held-out data.

- :func:`summary` — ``ranking`` (best mean test metric first; optimizers not yet tested last) with
  each one's trials, best validation value, test mean, std, Student's t interval and per-seed
  values, and the searched parameters at their range's edge; ``pairs``: Welch's t-test between
  every two tested optimizers, Holm-corrected (:func:`raytune_opt.report.stats.pairwise_welch`).
  With repeated searches (``search.compare_repeats: r``) an optimizer's ``test`` has one value per
  search (its best configuration's mean over its seeds; ``searches`` lists each one), and the
  interval and tests are over those r values.
- :func:`table` — optimizer, trials, best val, test mean ± CI half-width [interval], as markdown.
- :func:`tuning_curves` — every optimizer's best validation value so far vs its trials ended
  (:func:`curve`), one PNG.
- :func:`write` — ``summary.json``, ``tuning_curves.png`` and ``report.md`` into the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt.errors import ConfigError
from raytune_opt.report.edges import widen_cell
from raytune_opt.report.results import COMPARISON_FILE, Results, _json_safe, _read_json, load
from raytune_opt.report.stats import (
    INTERVAL_METHOD,
    SEARCH_INTERVAL_METHOD,
    SEARCH_TEST_METHOD,
    TEST_METHOD,
    pairwise_welch,
    seed_summary,
)
from raytune_opt.report.tables import fmt, markdown

__all__ = ["PROTOCOL", "curve", "is_comparison", "pairs_table", "summary", "table", "tuning_curves", "write"]

PROTOCOL = (
    "Schmidt, Schneider & Hennig 2021, 'Descending through a crowded valley - benchmarking deep "
    "learning optimizers' (ICML); DeepOBS (Schneider, Balles & Hennig 2019, ICLR): each optimizer "
    "tuned with the same budget on the validation split, its best setting retrained over seeds and "
    "evaluated once on the held-out test split"
)


def is_comparison(exp_dir: str | os.PathLike[str]) -> bool:
    """Whether ``exp_dir`` is a comparison's folder (it has ``comparison.json``)."""
    return (Path(exp_dir) / COMPARISON_FILE).is_file()


def _subs(exp_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Results | None]]]:
    """``comparison.json`` and, per optimizer, its searches: folder name → results (``None``: not
    started yet). A ``comparison.json`` from before repeated searches has ``folders`` only."""
    info = _read_json(exp_dir / COMPARISON_FILE)
    if not isinstance(info, dict) or not isinstance(info.get("searches") or info.get("folders"), dict):
        raise ConfigError.invalid(
            "comparison folder", str(exp_dir), f"a folder with a valid {COMPARISON_FILE}"
        )
    searches = info.get("searches") or {opt: [rel] for opt, rel in info["folders"].items()}
    subs: dict[str, dict[str, Results | None]] = {}
    for opt, rels in searches.items():
        subs[opt] = {}
        for rel in rels:
            sub = exp_dir / str(rel)
            subs[opt][str(rel)] = load(sub) if (sub / "experiment.json").is_file() else None
    return info, subs


_TEST_KEYS = ("metric", "n", "values", "mean", "std", "ci", "confidence")


def _row(opt: str, searches: dict[str, Results | None], confidence: float) -> dict[str, Any]:
    """One optimizer's ranking row from its searches' summaries (one search: its own test over
    seeds; several: a test over the searches, one value each, when every search is tested)."""
    rows = []
    for rel, res in searches.items():
        s = res.summary() if res is not None else {}
        test = s.get("test")
        rows.append(
            {
                "folder": rel,
                "trials": (s.get("trials") or {}).get("total", 0),
                "best_val": s.get("best_metric"),
                "best_config": s.get("best_config"),
                "test": None if test is None else {k: test.get(k) for k in _TEST_KEYS},
                "edge_params": s.get("edge_params", []),
                "trial_seconds": s.get("trial_seconds"),
            }
        )
    if len(rows) == 1:
        return {"optimizer": opt, **rows[0]}
    tested = [r["test"] for r in rows if r["test"] is not None and r["test"]["mean"] is not None]
    test = None
    if len(tested) == len(rows):
        test = {
            "metric": tested[0]["metric"],
            **seed_summary([t["mean"] for t in tested], confidence),
            "seeds": tested[0]["n"],
        }
    vals = [r["best_val"] for r in rows if r["best_val"] is not None]
    seconds = [r["trial_seconds"] for r in rows if r["trial_seconds"] is not None]
    return {
        "optimizer": opt,
        "folder": [r["folder"] for r in rows],
        "trials": sum(r["trials"] for r in rows),
        "best_val": float(np.mean(vals)) if vals else None,
        "best_config": None,
        "test": test,
        "edge_params": [{**e, "search": r["folder"]} for r in rows for e in r["edge_params"]],
        "trial_seconds": float(np.sum(seconds)) if seconds else None,
        "searches": rows,
    }


def summary(exp_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """What the comparison's ``summary.json`` holds (see the module docstring)."""
    exp_dir = Path(exp_dir)
    info, subs = _subs(exp_dir)
    state = _read_json(exp_dir / "experiment.json") or {}
    confidence = float(info.get("confidence", 0.95))
    repeats = int(info.get("repeats") or 1)
    rows = [_row(opt, searches, confidence) for opt, searches in subs.items()]
    tested = [r for r in rows if r["test"] is not None and r["test"]["mean"] is not None]
    first = next(  # every test.json alike
        (res.test for r in tested for res in subs[r["optimizer"]].values() if res is not None), None
    )
    mode = (first or {}).get("mode") or state.get("mode", "max")
    sign = 1.0 if mode == "min" else -1.0
    rows.sort(
        key=lambda r: (
            r["test"] is None or r["test"]["mean"] is None,
            sign * r["test"]["mean"] if r["test"] is not None and r["test"]["mean"] is not None else 0.0,
        )
    )
    for rank, r in enumerate(rows, start=1):
        r["rank"] = rank if r in tested else None
    groups = {r["optimizer"]: r["test"]["values"] for r in rows if r in tested}
    pairs = pairwise_welch(groups, confidence) if len(groups) >= 2 else []
    return _json_safe(
        {
            "name": state.get("name", exp_dir.name),
            "compare": "optimizers",
            "strategy": state.get("strategy"),
            "metric": state.get("metric"),
            "test_metric": (first or {}).get("metric"),
            "mode": mode,
            "seeds": info.get("seeds"),
            "repeats": repeats,
            "confidence": confidence,
            "num_samples": state.get("num_samples"),
            "ranking": rows,
            "pairs": pairs,
            "interval": INTERVAL_METHOD if repeats == 1 else SEARCH_INTERVAL_METHOD,
            "test": TEST_METHOD if repeats == 1 else SEARCH_TEST_METHOD,
            "protocol": PROTOCOL,
            "wall_s": state.get("wall_s"),
            "widened": info.get("widened") or [],
        }
    )


def _cell(test: dict[str, Any] | None) -> str:
    if test is None or test.get("mean") is None:
        return "-"
    ci = test.get("ci")
    if not ci or ci[0] is None:
        return fmt(test["mean"])
    half = (ci[1] - ci[0]) / 2
    return f"{fmt(test['mean'])} ± {fmt(half)} [{fmt(ci[0])}, {fmt(ci[1])}]"


def table(exp_dir_or_summary: str | os.PathLike[str] | dict[str, Any]) -> str:
    """The ranking as markdown: rank, optimizer, trials, best val, test mean ± CI half-width [CI]."""
    s = exp_dir_or_summary if isinstance(exp_dir_or_summary, dict) else summary(exp_dir_or_summary)
    pct = f"{s['confidence']:.0%}"
    repeats = int(s.get("repeats") or 1)
    n = f"n={s.get('seeds')}" if repeats == 1 else f"n={repeats} searches × {s.get('seeds')} seeds"
    header = [
        "#",
        "optimizer",
        "trials",
        f"best {s['metric']}" + (" (mean of the searches)" if repeats > 1 else ""),
        f"{s.get('test_metric') or 'test'} mean ± {pct} CI ({n})",
    ]
    rows = [
        [
            r["rank"] if r["rank"] is not None else "-",
            r["optimizer"],
            r["trials"],
            r["best_val"],
            _cell(r["test"]),
        ]
        for r in s["ranking"]
    ]
    return markdown(header, rows)


def pairs_table(s: dict[str, Any]) -> str:
    """The pairwise tests as markdown: a, b, difference of means, t, p, Holm p, significant."""
    header = ["a", "b", "mean a - b", "t", "p (Welch)", "p (Holm)", "significant"]
    rows = [
        [
            p["a"],
            p["b"],
            p["diff"],
            p["t"],
            p["p"],
            p["p_holm"],
            "undefined" if p["significant"] is None else "yes" if p["significant"] else "no",
        ]
        for p in s["pairs"]
    ]
    return markdown(header, rows)


def curve(res: Results) -> tuple[np.ndarray, np.ndarray]:
    """One optimizer's tuning curve: ``(k, best)`` with ``best[i]`` the best value of the metric over
    the first ``k[i]`` trials to end (ordered by their last report; trials that count for the best,
    :meth:`Results.eligible`; NaN before the first finite one)."""
    t = res.trials
    if t.empty:
        return np.array([], dtype=int), np.array([])
    h = res.history
    ts = pd.to_numeric(h["timestamp"], errors="coerce") if "timestamp" in h else None
    end = ts.groupby(h["trial_id"]).max() if ts is not None else pd.Series(dtype=float)
    order = t.assign(_end=t["trial_id"].map(end)).sort_values(["_end", "trial_id"], na_position="last")
    pool = set(res.eligible()["trial_id"])
    vals = order[res.best_column].astype(float).where(order["trial_id"].isin(pool))
    best = (vals.cummin() if res.mode == "min" else vals.cummax()).ffill().to_numpy(dtype=float)
    return np.arange(1, len(order) + 1), best


def tuning_curves(exp_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """One panel: per optimizer, the best validation value so far against the number of its trials
    ended (:func:`curve`); with repeated searches each search thin and their mean bold."""
    from matplotlib.ticker import MaxNLocator

    from raytune_opt.report.plots import _colors, _figure, _note, _save

    _, subs = _subs(Path(exp_dir))
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    colors = _colors(list(subs))
    drawn = False
    metric = None
    for opt, searches in subs.items():
        curves = [curve(res) for res in searches.values() if res is not None]
        for res in searches.values():
            metric = res.metric if res is not None else metric
        if len(searches) > 1:
            for k, best in curves:
                ok = np.isfinite(best)
                ax.step(k[ok], best[ok], where="post", color=colors[opt], lw=0.8, alpha=0.35)
            n = min((len(k) for k, _ in curves), default=0)
            if n == 0:
                continue
            stacked = np.vstack([best[:n] for _, best in curves])
            with np.errstate(all="ignore"):
                k, best = np.arange(1, n + 1), np.nanmean(stacked, axis=0)
            label = f"{opt} (mean of {len(curves)} searches)"
        elif curves:
            (k, best), label = curves[0], opt
        else:
            continue
        ok = np.isfinite(best)
        if ok.any():
            ax.step(k[ok], best[ok], where="post", color=colors[opt], label=label, lw=1.8, marker="o", ms=3)
            drawn = True
    if drawn:
        ax.legend(loc="best", fontsize=9)
    else:
        _note(ax, "no trial reported a finite value")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials ended (each optimizer its own search, the same budget)")
    ax.set_ylabel(f"best {metric or 'metric'} so far")
    ax.set_title("Tuning curves")
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))


def _markdown(s: dict[str, Any]) -> str:
    repeats = int(s.get("repeats") or 1)
    tuned = (
        f"Each optimizer tuned by its own **{s['strategy']}** search of {s['num_samples']} samples "
        f"(metric **{s['metric']}** on the validation split); its best configuration retrained from "
        f"scratch over {s['seeds']} seeds and evaluated once on the held-out test split. "
        if repeats == 1
        else f"Each optimizer tuned by **{repeats} independent {s['strategy']} searches** of "
        f"{s['num_samples']} samples each (other search and train seeds each time; metric "
        f"**{s['metric']}** on the validation split); each search's best configuration retrained "
        f"from scratch over {s['seeds']} seed(s) and evaluated once on the held-out test split. The "
        "replicates of the intervals and tests are the searches (Bouthillier et al. 2021, "
        "'Accounting for variance in machine learning benchmarks'): they cover the choice of "
        "configuration as well as the training. "
    )
    lines = [
        f"# {s['name']}: a comparison of optimizers",
        "",
        tuned + f"Ranked by mean **{s.get('test_metric') or 'test metric'}** ({s['mode']}).",
        "",
        table(s),
        "",
        f"Intervals: {s['interval']}, {s['confidence']:.0%}.",
        "",
        "## Significant differences",
        "",
        f"{s['test']}; significant when the corrected p < {1 - s['confidence']:.2g}.",
        "",
        pairs_table(s) if s["pairs"] else "(fewer than two optimizers tested yet)",
        "",
        "## Tuning curves",
        "",
        "![tuning curves](tuning_curves.png)",
        "",
    ]
    edges = [(e.get("search") or r["optimizer"], e) for r in s["ranking"] for e in r["edge_params"]]
    if edges:
        lines += [
            "## Ranges at their edge",
            "",
            "The best value sits within 5 % of its (log-)range's edge: the optimum may lie outside; "
            "`raytune-opt widen DIR` (or `search.compare_widen: 1`) widens the range as shown and "
            "searches on.",
            "",
            markdown(
                ["optimizer", "parameter", "best", "range", "edge", "widen to (search.space)"],
                [
                    [
                        o,
                        e["name"],
                        e["value"],
                        f"[{fmt(e['low'])}, {fmt(e['high'])}]",
                        e["side"],
                        widen_cell(e),
                    ]
                    for o, e in edges
                ],
            ),
            "",
        ]
    if s.get("widened"):
        lines += [
            "## Widened ranges",
            "",
            "Each round: the range widened, then that optimizer's search continued in its folder with "
            f"{s['num_samples']} more trials and its best retested; its trials above count every round "
            "(the other optimizers had fewer).",
            "",
            markdown(
                ["round", "optimizer", "parameter", "best then", "range", "widened to"],
                [
                    [
                        w["round"],
                        o,
                        e["name"],
                        e["value"],
                        f"[{fmt(e['low'])}, {fmt(e['high'])}]",
                        widen_cell(e),
                    ]
                    for w in s["widened"]
                    for part in ("widened", "bounded")
                    for o, edges in (w.get(part) or {}).items()
                    for e in edges
                ],
            ),
            "",
        ]
    lines += ["## Per optimizer", ""]
    for r in s["ranking"]:
        if repeats == 1:
            lines.append(f"- **{r['optimizer']}**: [{r['folder']}/report.md]({r['folder']}/report.md)")
            continue
        lines.append(f"- **{r['optimizer']}**:")
        for x in r["searches"]:
            test = x["test"]
            shown = "not tested yet" if test is None or test["mean"] is None else f"test {fmt(test['mean'])}"
            lines.append(
                f"  - [{x['folder']}]({x['folder']}/report.md): {x['trials']} trials, best "
                f"{s['metric']} {fmt(x['best_val'])}, {shown}"
            )
    lines += ["", f"Protocol: {s['protocol']}.", "", "Files: [summary.json](summary.json).", ""]
    return "\n".join(lines)


def write(exp_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write the comparison's ``summary.json``, ``tuning_curves.png`` and ``report.md`` into ``out``
    (default ``exp_dir``); returns file name → path."""
    exp_dir = Path(exp_dir)
    out = Path(out) if out is not None else exp_dir
    out.mkdir(parents=True, exist_ok=True)
    s = summary(exp_dir)
    files = {
        "summary.json": out / "summary.json",
        "tuning_curves.png": out / "tuning_curves.png",
        "report.md": out / "report.md",
    }
    from raytune_opt.report.writer import _atomic  # here: the writer imports this module

    _atomic(files["summary.json"], json.dumps(s, indent=2, default=str) + "\n")
    tuning_curves(exp_dir, files["tuning_curves.png"])
    _atomic(files["report.md"], _markdown(s))
    return files
