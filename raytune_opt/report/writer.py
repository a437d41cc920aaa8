"""Writing an experiment's report: summary.json, trials.csv, the figures and report.md.

Files written into ``out`` (default: the experiment directory itself, beside Ray's own files):

=========================  ==============================================================
``summary.json``           :meth:`Results.summary`: strategy, metric, mode, best config,
                           metric and trial, trial counts, wall_s, trial_seconds
``trials.csv``             one row per trial: status, config/…, final metrics, best_<metric>
``best_so_far.png``        best so far vs wall time and vs trial-seconds
``learning_curves.png``    the metric vs training_iteration, per trial
``hyperparameters.png``    the slice plot: per searched hyperparameter, best metric vs its value
``optimizers.png``         only when several optimizers were run: spread, mean and best of each,
                           at equal fidelity (the trials that ran max_t epochs)
``history.png``            optimization history: each trial's best in start order, best so far
``importances.png``        parameter importances (permutation importance of a random forest)
``parallel_coordinates.png`` every trial across its parameters' domains, coloured by its value
``fractions.png``          only when trials ran on a ``data_fraction`` (Fabolas): trials and
                           training spent per fraction (the fraction histogram)
``slices.png``             per optimizer at equal fidelity (trials at max_t): best metric vs each
                           of its parameters (:mod:`raytune_opt.report.landscape`)
``contours.png``           ... and over each pair of its numeric parameters (interpolated)
``report.md``              ties them together with the top-10 and per-optimizer tables, the
                           searched parameters at their range's edge (``edge_params``) and,
                           once ``raytune-opt evaluate`` wrote ``test.json``, the test result
``pareto.csv``             only with several objectives (``search.metric`` a list): the Pareto
                           front, the trials no other trial dominates on their final values
                           (:mod:`raytune_opt.report.pareto`)
``pareto.png``             ... and the trials on the first two objectives, the front highlighted
``report.html``            the same views, interactive (plotly, self-contained: opens offline)
=========================  ==============================================================

A comparison's folder (``comparison.json``) gets the comparison's report instead
(:mod:`raytune_opt.report.comparison`). Files are written atomically (a temporary file, then a
rename): a report interrupted half-way leaves the previous one.

Read ``trials.csv`` back with the trial id as text — ``pd.read_csv(path, dtype={"trial_id": str})``
— or pandas takes an id such as ``61137e65`` for the number 6.1137e69.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from raytune_opt.report import landscape, pareto, plots
from raytune_opt.report.edges import EDGE_MARGIN, widen_cell
from raytune_opt.report.results import Results, load
from raytune_opt.report.tables import fmt, markdown, optimizer_table, table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["write", "write_results"]


def write(
    exp_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> dict[str, Path]:
    """Load the experiment in ``exp_dir`` (see :func:`load`) and write its report into ``out``
    (default ``exp_dir``). Returns file name → path: ``summary.json``, ``trials.csv``,
    ``best_so_far.png``, ``learning_curves.png``, ``hyperparameters.png``, [``optimizers.png``,]
    ``report.md``."""
    return write_results(load(exp_dir, metric=metric, mode=mode), out)


def write_results(
    results: Results, out: str | os.PathLike[str] | None = None, *, figures: bool = True
) -> dict[str, Path]:
    """Write the report of already loaded ``results`` into ``out`` (default: their directory).

    ``figures=False``: the figures and ``report.html`` in ``out`` are already those of these trials
    (drawn from the trials alone, e.g. just before a test was added), so only ``summary.json``,
    ``trials.csv`` and ``report.md`` (and the Pareto CSV) are written again, and returned."""
    from raytune_opt.report import comparison

    if comparison.is_comparison(results.exp_dir):
        return comparison.write(results.exp_dir, out)
    out = Path(out) if out is not None else results.exp_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = results.summary()
    front = pareto.front(results) if results.objectives is not None else None
    if front is not None:
        summary["objectives"] = [{"metric": m, "mode": d} for m, d in results.objectives]
        summary["pareto_trial_ids"] = [str(t) for t in front["trial_id"]]
    _atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    _atomic_csv(out / "trials.csv", results.trials)
    drawn = [plots.best_so_far, plots.learning_curves, plots.hyperparameters]
    with_optimizers = len(results.optimizers) > 1
    if with_optimizers:
        drawn.append(plots.optimizers)
    drawn += _OPTUNA_VIEWS
    with_fractions = plots.FRACTION in results.trials.columns
    if with_fractions:
        drawn.append(plots.fractions)
    if figures:
        for draw in drawn:
            draw(results, out / f"{draw.__name__}.png")
    text = _markdown(results, summary, with_optimizers) + _optuna_markdown(results)
    extra: list[str] = []
    if front is not None:
        _atomic_csv(out / pareto.PARETO_CSV, front)
        if figures:
            pareto.plot(results, out / pareto.PARETO_PNG, front)
        extra = [pareto.PARETO_CSV, pareto.PARETO_PNG] if figures else [pareto.PARETO_CSV]
        text += _pareto_markdown(results, front)
    _atomic(out / "report.md", text + (_fraction_markdown(results) if with_fractions else ""))
    pngs = [f"{d.__name__}.png" for d in drawn] if figures else []
    names = ["summary.json", "trials.csv", *pngs, *extra, "report.md"]
    files = {name: out / name for name in names}
    if figures:
        files.update(_interactive(results, out, front))
    return files


#: the Optuna-style views, one PNG each
_OPTUNA_VIEWS = [
    plots.history,
    plots.importances,
    plots.parallel_coordinates,
    landscape.slices,
    landscape.contours,
]


def _interactive(results: Results, out: Path, front: pd.DataFrame | None = None) -> dict[str, Path]:
    """``report.html`` when plotly is installed (a dependency; a trimmed install skips it, logged)."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        import logging

        logging.getLogger(__name__).warning("no report.html: plotly is not installed (pip install plotly)")
        return {}
    from raytune_opt.report.html import write_html

    return {"report.html": write_html(results, out / "report.html", front)}


def _pareto_markdown(results: Results, front: pd.DataFrame) -> str:
    """The Pareto front's section (several objectives)."""
    return "\n".join(
        [
            "## Pareto front",
            "",
            "The trials that no other trial dominates on their final values (at least as good on every "
            "objective and strictly better on one), among those that ended with a finite value of each "
            "(`raytune_opt.report.pareto`). The rest of this report ranks by the first objective, "
            f"{results.metric} ({results.mode}).",
            "",
            pareto.summary(results, front),
            "",
            f"![pareto front]({pareto.PARETO_PNG})",
            "",
            f"Files: [{pareto.PARETO_CSV}]({pareto.PARETO_CSV}).",
            "",
        ]
    )


def _fraction_markdown(results: Results) -> str:
    """The fraction histogram's section: trials and training spent per data fraction."""
    import pandas as pd

    s = pd.to_numeric(results.trials[plots.FRACTION], errors="coerce").dropna().round(6)
    rows = [f"| {v:.4g} | {n} | {v * n:.3g} |" for v, n in s.value_counts().sort_index().items()]
    return "\n".join(
        [
            "## Data fractions",
            "",
            "Trials per training-set fraction and the training spent there (full-data-equivalents: "
            "a trial on the share s of the data costs s full-data trainings).",
            "",
            "| data fraction | trials | full-data-equivalents |",
            "|---|---|---|",
            *rows,
            "",
            "![data fractions](fractions.png)",
            "",
        ]
    )


def _optuna_markdown(results: Results) -> str:
    source = (
        "read from the experiment's search space (domains, log scales, conditions)"
        if results.space is not None
        else "guessed from the trials (no experiment.json with a search space)"
    )
    return "\n".join(
        [
            "## Optimization history",
            "",
            "Each trial's best value in the order trials started, and the best so far.",
            "",
            "![history](history.png)",
            "",
            "## Parameter importances",
            "",
            "Permutation importance (scikit-learn) of a random forest fitted on the trials' parameters "
            f"→ best {results.metric}: the share of the forest's R² lost when a parameter is shuffled "
            "(a stand-in for Optuna's fANOVA).",
            "",
            "![importances](importances.png)",
            "",
            "## Parallel coordinates",
            "",
            f"Searched parameters {source}. Interactive views: [report.html](report.html).",
            "",
            "![parallel coordinates](parallel_coordinates.png)",
            "",
            "## Slice and contour plots",
            "",
            f"Per optimizer, its trials that ran max_t = {results.max_t} epochs: the best value vs each "
            "of its parameters, and interpolated over each pair of its numeric ones (log axes for log "
            "domains).",
            "",
            "![slices](slices.png)",
            "",
            "![contours](contours.png)",
            "",
        ]
    )


def _markdown(results: Results, summary: dict, with_optimizers: bool) -> str:
    c = summary["trials"]
    lines = [
        f"# {summary['name']}",
        "",
        f"Strategy **{summary['strategy'] or 'unknown'}**, metric **{results.metric}** ({results.mode}). "
        f"{c['total']} trials: {c['finished']} finished, {c.get('stopped', 0)} stopped by the time budget, "
        f"{c['failed']} failed, {c['diverged']} diverged, "
        f"{c['unfinished']} unfinished. Wall time {fmt(summary['wall_s'])} s, "
        f"{fmt(summary['trial_seconds'])} trial-seconds.",
        "",
    ]
    if summary.get("surrogate_fallbacks"):
        lines += [
            f"The search's surrogate model failed {summary['surrogate_fallbacks']} time(s); each of those "
            "suggestions was a random one instead (the reasons: `surrogate_fallbacks` in experiment.json).",
            "",
        ]
    if summary["best_trial_id"] is not None:
        lines += [
            f"Best: trial `{summary['best_trial_id']}`, "
            f"{results.metric} = {fmt(summary['best_metric'])}, config:",
            "",
            "```json",
            json.dumps(summary["best_config"], indent=2, sort_keys=True, default=str),
            "```",
            "",
        ]
    else:
        lines += [f"No trial reported a finite {results.metric}.", ""]
    if summary.get("test") is not None:
        lines += _test_section(summary["test"])
    if summary.get("edge_params"):
        lines += _edge_section(summary["edge_params"])
    lines += ["## Best trials", "", table(results, top=10), ""]
    if with_optimizers:
        lines += [
            "## Optimizers",
            "",
            f"Compared at equal fidelity: the {len(results.full_fidelity())} of {len(results.trials)} trials "
            f"that ran max_t = {results.max_t} epochs (a scheduler's early-stopped trials left out; the "
            "best column counts every trial).",
            "",
            optimizer_table(results),
            "",
            "![optimizers](optimizers.png)",
            "",
        ]
    lines += [
        "## Best so far",
        "",
        "Best value so far against the experiment's wall time and against the trial-seconds spent.",
        "",
        "![best so far](best_so_far.png)",
        "",
        "## Learning curves",
        "",
        "![learning curves](learning_curves.png)",
        "",
        "## Hyperparameters",
        "",
        "Slice plots: each trial's best value against its searched hyperparameters, over their domains "
        "(log axes for log domains; red crosses: no finite value).",
        "",
        "![hyperparameters](hyperparameters.png)",
        "",
    ]
    failed = results.trials[results.trials["status"] == "failed"] if len(results.trials) else []
    if len(failed):
        lines += ["## Failed trials", ""]
        lines += [f"- `{r.trial_id}` ({r.path}): {r.error}" for r in failed.itertuples()]
        lines += [""]
    lines += ["Files: [summary.json](summary.json), [trials.csv](trials.csv).", ""]
    return "\n".join(lines)


def _test_section(test: dict) -> list[str]:
    """The best configuration on the test split (``test.json``): mean, interval, per seed."""
    ci = test.get("ci")
    level = test.get("confidence")
    shown = f"{fmt(test['mean'])}" + (
        f", {level:.0%} CI [{fmt(ci[0])}, {fmt(ci[1])}] ({test['interval']})" if ci else ""
    )
    how = (
        f"the trial's last checkpoint ({test['epochs']} epochs)"
        if test.get("source") == "checkpoint"
        else f"retrained from scratch for {test['epochs']} epochs per seed"
    )
    rows = [
        [seed, value, loss, val]
        for seed, value, loss, val in zip(
            test["seeds"], test["values"], test["losses"], test["val"]["values"], strict=True
        )
    ]
    return [
        "## Test",
        "",
        f"The best configuration (trial `{test['trial_id']}`) on the held-out **{test['split']}** split "
        f"({test.get('test_size', '?')} examples, never seen by a trial), {how}: "
        f"{test['metric']} = {shown} over {test['n']} seed(s)"
        + (f", {test['diverged']} diverged" if test.get("diverged") else "")
        + ".",
        "",
        markdown(["seed", test["metric"], "test_loss", f"final {test['val']['metric']}"], rows),
        "",
    ]


def _edge_section(edges: list[dict]) -> list[str]:
    rows = [
        [
            e["name"],
            e["value"],
            f"[{fmt(e['low'])}, {fmt(e['high'])}]" + (" log" if e["log"] else ""),
            e["side"],
            widen_cell(e),
        ]
        for e in edges
    ]
    return [
        "## Ranges at their edge",
        "",
        f"The best value of these searched parameters sits within {EDGE_MARGIN:.0%} of its (log-)range's "
        "edge: the optimum may lie outside the range. Widen it (the `search.space` entry shown) and "
        "search again.",
        "",
        markdown(["parameter", "best", "range", "edge", "widen to (search.space)"], rows),
        "",
    ]


def _atomic_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV (no index) to a temporary file beside ``path``, then rename it over."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def _atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
