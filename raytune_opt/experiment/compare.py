"""A comparison of optimizers as one experiment (``search.compare: optimizers``).

The protocol of Schmidt, Schneider & Hennig 2021 ("Descending through a crowded valley —
benchmarking deep learning optimizers", ICML) and DeepOBS (Schneider, Balles & Hennig 2019): every
optimizer is tuned with the same budget, then its best setting is rerun over several seeds and the
optimizers are compared on held-out data, with the spread over seeds.

1. **Equal budgets.** Each optimizer of ``search.optimizers`` gets its own search: a sub-experiment
   ``<folder>/<optimizer>/`` (a complete experiment folder: Tune's state, trials, its own report)
   with the same strategy, ``num_samples``, ``max_t``, search seed and resources; its space is that
   optimizer's ranges (``SearchSpace.for_optimizers([name])``) with the shared and its own
   ``search.space`` entries. One search over all optimizers would give each what its early results
   earned (a Hyperband bracket stops most of an optimizer's trials after one epoch).
2. **Seeds, held-out test.** Each sub-experiment's best configuration (by validation) is retrained
   from scratch over ``search.compare_seeds`` train seeds and evaluated once on the test split
   (:func:`raytune_opt.experiment.evaluate.evaluate`, its ``test.json``).
3. **The report** (:mod:`raytune_opt.report.comparison`, in the comparison's folder): optimizers
   ranked by mean test metric with 95 % Student's t intervals, Welch's t-test between every pair
   (Holm-corrected), the tuning curves of all optimizers on one figure.

The comparison's folder holds ``experiment.json`` (the description, ``compare`` in its ``search``),
``comparison.json`` (the optimizers and their folders) and the report. ``raytune-opt resume`` on it
skips the finished sub-experiments and evaluations, resumes an interrupted one and runs the rest.
"""

from __future__ import annotations

import json
import time
from typing import Any

from raytune_opt import keys
from raytune_opt.experiment.config import Experiment
from raytune_opt.storage import ExperimentFolder

__all__ = ["COMPARISON_FILE", "sub_experiment", "run_comparison"]

#: the comparison's own file (``raytune_opt.report.results.COMPARISON_FILE``)
COMPARISON_FILE = "comparison.json"
#: the confidence level of the comparison's intervals and tests
CONFIDENCE = 0.95


def sub_experiment(exp: Experiment, optimizer: str, storage_path: str) -> Experiment:
    """The search of one optimizer of the comparison ``exp``: the same description with
    ``search.optimizers: [optimizer]``, no ``compare``, the ``search.space`` entries shared or of
    ``optimizer`` only, stored under ``storage_path`` (the comparison's folder) as ``<optimizer>``."""
    raw = exp.to_dict()
    raw["name"] = optimizer
    search = raw["search"]
    search["optimizers"] = [optimizer]
    search["compare"] = None
    search["space"] = {k: v for k, v in search["space"].items() if keys.owner(k) in (None, optimizer)}
    raw["run"]["storage_path"] = storage_path
    return Experiment.from_dict(raw, source=f"{exp._source} (search.optimizers: {optimizer})")


def _finished(folder: ExperimentFolder) -> bool | None:
    """``None``: never started; else whether its experiment.json says it finished."""
    from raytune_opt.experiment.run import EXPERIMENT_FILE

    text = folder.read_text(EXPERIMENT_FILE)
    if text is None:
        return None
    return json.loads(text).get("finished_at") is not None


def _evaluated(folder: ExperimentFolder, seeds: int) -> bool:
    from raytune_opt.experiment.evaluate import TEST_FILE

    text = folder.read_text(TEST_FILE)
    return text is not None and len(json.loads(text).get("values") or []) == seeds


def run_comparison(
    exp: Experiment, *, progress: bool = True, report: bool = True, _restore: bool = False
) -> Any:
    """Run the comparison ``exp`` (see the module docstring); an
    :class:`~raytune_opt.experiment.run.ExperimentResult` whose ``grid`` is ``None`` and whose
    ``summary`` is the comparison's (``ranking``, ``pairs``)."""
    from raytune_opt.experiment.evaluate import check_test_split, evaluate
    from raytune_opt.experiment.run import (
        EXPERIMENT_FILE,
        ExperimentResult,
        _fresh_name,
        _write_state,
        check_resources,
        connect,
        run_experiment,
    )

    plan = exp.plan()
    s = exp.search
    check_test_split(exp)  # before any search: the comparison ends on the test split
    if _restore:
        name, folder = exp.name, ExperimentFolder(exp.run_.storage_path, exp.name)
    else:
        name, folder = _fresh_name(exp, progress)
    folder.check_writable()
    subs = {opt: sub_experiment(exp, opt, folder.path) for opt in s.optimizers}
    connect(exp.run_.address, progress)
    check_resources(exp)
    _write_state(folder, exp, plan, name)
    folder.write_text(
        COMPARISON_FILE,
        json.dumps(
            {
                "compare": "optimizers",
                "optimizers": list(s.optimizers),
                "folders": {opt: opt for opt in s.optimizers},
                "seeds": s.compare_seeds,
                "confidence": CONFIDENCE,
            },
            indent=2,
        )
        + "\n",
    )
    started = time.time()
    interrupted = False
    for i, (opt, sub) in enumerate(subs.items(), start=1):
        sub_folder = ExperimentFolder(folder.path, opt)
        done = _finished(sub_folder)
        if progress:
            print(f"comparison {name}: {opt} ({i}/{len(subs)})", flush=True)
        if not done:
            result = run_experiment(sub, progress=progress, report=True, _restore=done is False)
            if result.interrupted:
                interrupted = True
                break
        if not _evaluated(sub_folder, s.compare_seeds):
            evaluate(sub_folder.path, s.compare_seeds, confidence=CONFIDENCE, progress=progress)
    state = json.loads(folder.read_text(EXPERIMENT_FILE) or "{}")
    wall = (state.get("wall_s") or 0.0) + time.time() - started
    _write_state(folder, exp, plan, name, finished_at=None if interrupted else time.time(), wall_s=wall)
    files: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    path = folder.local_copy()
    if report:
        from raytune_opt import report as report_

        files = report_.write(path)
        summary = json.loads(files["summary.json"].read_text())
        if folder.remote:
            folder.upload(files)
        if progress:
            print(report_.comparison_table(path), flush=True)
    if progress:
        print(f"results: {folder.path}", flush=True)
        for file_name, file in files.items():
            print(f"  {file_name}: {file}", flush=True)
        if interrupted:
            print(f"interrupted: `raytune-opt resume {folder.path}` continues where it stopped", flush=True)
    return ExperimentResult(path, None, summary, files, interrupted, name)
