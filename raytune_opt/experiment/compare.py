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
   (its ``test.json``). This runs after all the searches, every optimizer's seeds submitted at once
   (:func:`raytune_opt.experiment.evaluate.evaluate_many`), so they share warm Ray workers.
3. **The report** (:mod:`raytune_opt.report.comparison`, in the comparison's folder): optimizers
   ranked by mean test metric with 95 % Student's t intervals, Welch's t-test between every pair
   (Holm-corrected), the tuning curves of all optimizers on one figure.
4. **Widening** (``search.compare_widen: n`` rounds, default 0; or ``raytune-opt widen DIR`` on a
   finished comparison, :func:`widen_comparison`). After the searches, every optimizer whose best
   value sits at the edge of a range (:func:`raytune_opt.report.edges.edge_params`: within 5 % of the
   log-range) has that range widened (:func:`raytune_opt.report.edges.widen`: the bound moved 10×
   in log space, or one width for a uniform range, clamped to the registry's hard bounds) and its
   search continued into the same folder: ``num_samples`` more trials of the same strategy over the
   space with the widened ranges, search seed ``search.seed + round``. Its seed retraining and test
   run again when its best trial changed (the earlier ``test.json`` kept as
   ``test-<trial>.json``). A range that cannot be widened (a momentum at 0.99: its hard bound is 1,
   which no momentum may be) is printed with the reason and left as it is; nothing in the folder
   changes for it. Rounds stop early when nothing more can be widened. A widened optimizer has had
   more trials than the others: the report's table shows each one's trials and its "Widened ranges"
   section what was widened when.
5. **Repeated searches** (``search.compare_repeats: r``, default 1). The intervals of step 2 cover
   the retraining of one configuration: a second comparison with another search seed picks other
   configurations, and its differences need not agree (``benchmarks/comparison.py stability``).
   With r ≥ 2 each optimizer's search runs r times (folders ``<optimizer>-search<j>``, j = 0 … r-1:
   search seed ``search.seed + 11 j`` (:data:`SEED_STRIDE`; its widening rounds add 1 … 10) and
   train seed ``train.seed + j``), each search's best is retrained and tested as in step 2, and the
   replicates of the report's intervals and tests are the searches: one value per search, its mean
   test metric over its ``compare_seeds`` seeds (1 allowed: the best trial's final checkpoint).
   Every source of variation is then drawn again per replicate, as Bouthillier et al. 2021
   ("Accounting for variance in machine learning benchmarks", MLSys) recommend; the cost is r
   searches per optimizer. Widening works per search.

The comparison's folder holds ``experiment.json`` (the description, ``compare`` in its ``search``),
``comparison.json`` (the optimizers, their searches' folders, the widening rounds) and the report.
``raytune-opt resume`` on it skips the finished sub-experiments and evaluations, resumes an
interrupted one (a widened search included) and runs the rest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from raytune_opt import keys
from raytune_opt.experiment.config import Experiment
from raytune_opt.storage import ExperimentFolder

__all__ = [
    "COMPARISON_FILE",
    "MAX_WIDEN_ROUNDS",
    "SEED_STRIDE",
    "search_folders",
    "sub_experiment",
    "run_comparison",
    "widen_comparison",
    "widened_experiment",
]

#: the comparison's own file (``raytune_opt.report.results.COMPARISON_FILE``)
COMPARISON_FILE = "comparison.json"
#: the confidence level of the comparison's intervals and tests
CONFIDENCE = 0.95
#: the most widening rounds one comparison may run (``search.compare_widen``)
MAX_WIDEN_ROUNDS = 10
#: repeat j's search seed is ``search.seed + SEED_STRIDE · j``: its widening rounds' seeds (+1 … +10)
#: stay apart from every other repeat's
SEED_STRIDE = MAX_WIDEN_ROUNDS + 1


def search_folders(optimizer: str, repeats: int) -> list[str]:
    """The folders of ``optimizer``'s searches in the comparison's folder: ``[optimizer]`` for one,
    else ``<optimizer>-search<j>`` for j = 0 … repeats-1."""
    return [optimizer] if repeats == 1 else [f"{optimizer}-search{j}" for j in range(repeats)]


def sub_experiment(exp: Experiment, optimizer: str, storage_path: str, repeat: int = 0) -> Experiment:
    """Search ``repeat`` of one optimizer of the comparison ``exp``: the same description with
    ``search.optimizers: [optimizer]``, no ``compare``, the ``search.space`` entries shared or of
    ``optimizer`` only, search seed ``search.seed + SEED_STRIDE · repeat`` and train seed
    ``train.seed + repeat``, stored under ``storage_path`` (the comparison's folder) as its
    :func:`search_folders` entry."""
    raw = exp.to_dict()
    raw["name"] = search_folders(optimizer, exp.search.compare_repeats)[repeat]
    search = raw["search"]
    search["optimizers"] = [optimizer]
    search["compare"] = None
    search["compare_repeats"] = 1
    if repeat:
        if search.get("seed") is not None:
            search["seed"] += SEED_STRIDE * repeat
        raw["train"]["seed"] = int(raw["train"].get("seed") or 0) + repeat
    search["space"] = {k: v for k, v in search["space"].items() if keys.owner(k) in (None, optimizer)}
    raw["run"]["storage_path"] = storage_path
    where = f"search.optimizers: {optimizer}"
    if exp.search.compare_repeats > 1:
        where += f", search {repeat}"
    return Experiment.from_dict(raw, source=f"{exp._source} ({where})")


def _finished(folder: ExperimentFolder) -> bool | None:
    """``None``: never started; else whether its experiment.json says it finished."""
    from raytune_opt.experiment.run import EXPERIMENT_FILE

    text = folder.read_text(EXPERIMENT_FILE)
    if text is None:
        return None
    return json.loads(text).get("finished_at") is not None


def _state(folder: ExperimentFolder) -> dict[str, Any]:
    from raytune_opt.experiment.run import EXPERIMENT_FILE

    return json.loads(folder.read_text(EXPERIMENT_FILE) or "{}")


def _best_trial(folder: ExperimentFolder) -> str | None:
    """The best trial of a finished search (its report's summary.json)."""
    return json.loads(folder.read_text("summary.json") or "{}").get("best_trial_id")


def _evaluated(folder: ExperimentFolder, seeds: int) -> bool:
    """Whether ``test.json`` holds ``seeds`` seeds of the search's current best trial."""
    from raytune_opt.experiment.evaluate import TEST_FILE

    text = folder.read_text(TEST_FILE)
    if text is None:
        return False
    test = json.loads(text)
    return len(test.get("values") or []) == seeds and test.get("trial_id") == _best_trial(folder)


def _set_aside_test(folder: ExperimentFolder) -> None:
    """An earlier ``test.json`` (of another best trial, before a widening) kept as ``test-<trial>.json``."""
    from raytune_opt.experiment.evaluate import TEST_FILE

    text = folder.read_text(TEST_FILE)
    if text is not None:
        folder.write_text(f"test-{json.loads(text).get('trial_id')}.json", text)


def _search(
    sub: Experiment,
    folder: ExperimentFolder,
    progress: bool,
    *,
    append: bool = False,
    callbacks: Sequence[Any] = (),
    optuna_journal: bool | None = None,
) -> bool | None:
    """Run (``append``: a widened search into the folder), resume or skip one optimizer's search:
    ``None`` if interrupted, else whether its report's figures were just drawn. ``callbacks`` and
    ``optuna_journal`` go to the search as :func:`run_experiment` takes them."""
    from raytune_opt.experiment.run import run_experiment

    done = _finished(folder)
    if not append and done:
        return False
    result = run_experiment(
        sub,
        progress=progress,
        report=True,
        callbacks=callbacks,
        optuna_journal=optuna_journal,
        _restore=done is False and not append,
        _append=append,
    )
    if result.interrupted:
        return None
    return "report.md" in result.files


def _test(searched: dict[str, tuple[ExperimentFolder, bool]], seeds: int, progress: bool) -> None:
    """The seed retraining and test of every search not yet tested for its current best
    (``searched``: search folder name → its folder and whether its figures were just drawn; one
    seed: no interval of its own), all seeds of all of them at once
    (:func:`~raytune_opt.experiment.evaluate.evaluate_many`: they share warm Ray workers)."""
    from raytune_opt.experiment.evaluate import evaluate_many

    todo = [(f, drawn) for f, drawn in searched.values() if not _evaluated(f, seeds)]
    for f, _ in todo:
        _set_aside_test(f)
    if todo:
        evaluate_many(
            [f.path for f, _ in todo],
            seeds,
            confidence=CONFIDENCE if seeds >= 2 else None,
            progress=progress,
            _figures=[not drawn for _, drawn in todo],
        )


def widened_experiment(sub: Experiment, edges: list[dict[str, Any]], seed: int | None) -> Experiment:
    """``sub`` (one optimizer's search) with the flagged ``edges``' widened ranges in its
    ``search.space`` and search seed ``seed``."""
    from raytune_opt.report.edges import space_entry

    raw = sub.to_dict()
    search = raw["search"]
    search["space"] = {**search["space"], **{e["name"]: space_entry(e) for e in edges}}
    search["seed"] = seed
    return Experiment.from_dict(raw, source=f"{sub._source} (widened: {', '.join(e['name'] for e in edges)})")


def _edges(folder: ExperimentFolder) -> list[dict[str, Any]]:
    """The flagged ranges of a finished search (:func:`raytune_opt.report.edges.edge_params`)."""
    return json.loads(folder.read_text("summary.json") or "{}").get("edge_params") or []


def _widen_round(
    exp: Experiment, folder: ExperimentFolder, info: dict[str, Any], r: int, progress: bool
) -> dict[str, Any] | None:
    """Round ``r``'s decision, from every search's flagged ranges: ``{"round", "widened": {search:
    [edge, ...]}, "bounded": {search: [edge, ...]}}`` (``search``: its folder name, the optimizer's
    name with one search each); ``None`` when no range can be widened (none at its edge, or each one
    flagged at a hard bound: printed with the reason)."""
    widened: dict[str, list[dict[str, Any]]] = {}
    bounded: dict[str, list[dict[str, Any]]] = {}
    for rel in (rel for opt in info["optimizers"] for rel in _searches(info)[opt]):
        for e in _edges(ExperimentFolder(folder.path, rel)):
            (widened if e.get("widened") else bounded).setdefault(rel, []).append(e)
    if not widened and not bounded:
        if progress:
            print(f"widen round {r}: no best value at its range's edge; nothing to widen", flush=True)
        return None
    if progress:
        for rel, edges in bounded.items():
            for e in edges:
                print(
                    f"widen round {r}: {rel}: {e['name']} = {e['value']:.4g} at the {e['side']} edge of "
                    f"[{e['low']:.4g}, {e['high']:.4g}] cannot be widened: {e['bounded']}; "
                    "that range stays as it is",
                    flush=True,
                )
        for rel, edges in widened.items():
            shown = ", ".join(
                f"{e['name']} [{e['low']:.4g}, {e['high']:.4g}] -> [{lo:.4g}, {hi:.4g}]"
                for e in edges
                for lo, hi in [e["widened"]]
            )
            print(f"widen round {r}: {rel}: {shown}; {exp.search.num_samples} more trials", flush=True)
        if not widened:
            print(
                f"widen round {r}: no flagged range can be widened; the searches stay as they are", flush=True
            )
    return {"round": r, "widened": widened, "bounded": bounded} if widened else None


def _searches(info: dict[str, Any]) -> dict[str, list[str]]:
    """Optimizer → its searches' folder names, from ``comparison.json`` (one written before
    ``compare_repeats`` has ``folders`` only: one search each)."""
    return info.get("searches") or {opt: [rel] for opt, rel in info["folders"].items()}


def _write_info(folder: ExperimentFolder, info: dict[str, Any]) -> None:
    folder.write_text(COMPARISON_FILE, json.dumps(info, indent=2, default=str) + "\n")


def run_comparison(
    exp: Experiment,
    *,
    progress: bool = True,
    report: bool = True,
    _restore: bool = False,
    callbacks: Sequence[Any] = (),
    optuna_journal: bool | None = None,
) -> Any:
    """Run the comparison ``exp`` (see the module docstring); an
    :class:`~raytune_opt.experiment.run.ExperimentResult` whose ``grid`` is ``None`` and whose
    ``summary`` is the comparison's (``ranking``, ``pairs``). ``callbacks`` and ``optuna_journal``
    (as :func:`~raytune_opt.experiment.run.run_experiment` takes them) go to each optimizer's search:
    one ``optuna.journal`` in each optimizer's folder."""
    from raytune_opt.experiment.evaluate import check_test_split
    from raytune_opt.experiment.run import (
        EXPERIMENT_FILE,
        ExperimentResult,
        _fresh_name,
        _write_state,
        check_resources,
        connect,
        load_experiment,
    )

    plan = exp.plan()
    s = exp.search
    check_test_split(exp)  # before any search: the comparison ends on the test split
    if _restore:
        name, folder = exp.name, ExperimentFolder(exp.run_.storage_path, exp.name)
    else:
        name, folder = _fresh_name(exp, progress)
    folder.check_writable()
    connect(exp.run_.address, progress)
    check_resources(exp)
    _write_state(folder, exp, plan, name)
    before = json.loads(folder.read_text(COMPARISON_FILE) or "{}")
    searches = {opt: search_folders(opt, s.compare_repeats) for opt in s.optimizers}
    where = {rel: (opt, j) for opt, rels in searches.items() for j, rel in enumerate(rels)}
    info = {
        "compare": "optimizers",
        "optimizers": list(s.optimizers),
        "folders": {opt: rels[0] for opt, rels in searches.items()},
        "searches": searches,
        "repeats": s.compare_repeats,
        "seeds": s.compare_seeds,
        "confidence": CONFIDENCE,
        "widen_rounds": s.compare_widen,
        "widened": before.get("widened", []),
    }
    _write_info(folder, info)

    def sub_of(rel: str) -> tuple[Experiment, ExperimentFolder]:
        """The search in folder ``rel`` as it stands: once started, its folder's own description
        (with any widened ranges), else :func:`sub_experiment`."""
        sub_folder = ExperimentFolder(folder.path, rel)
        if _finished(sub_folder) is None:
            opt, j = where[rel]
            return sub_experiment(exp, opt, folder.path, j), sub_folder
        return load_experiment(sub_folder.path, address=exp.run_.address), sub_folder

    started = time.time()
    interrupted = False
    searched: dict[str, tuple[ExperimentFolder, bool]] = {}
    for i, rel in enumerate(where, start=1):
        if progress:
            print(f"comparison {name}: {rel} ({i}/{len(where)})", flush=True)
        sub, sub_folder = sub_of(rel)
        drawn = _search(sub, sub_folder, progress, callbacks=callbacks, optuna_journal=optuna_journal)
        if drawn is None:
            interrupted = True
            break
        searched[rel] = (sub_folder, drawn)
    if not interrupted:
        _test(searched, s.compare_seeds, progress)
    r = 1
    while not interrupted and r <= s.compare_widen:
        logged = info["widened"][r - 1] if r <= len(info["widened"]) else None
        entry = logged or _widen_round(exp, folder, info, r, progress)
        if entry is None:
            break
        if logged is None:
            info["widened"].append(entry)
            _write_info(folder, info)
        searched = {}
        for rel, edges in entry["widened"].items():
            sub, sub_folder = sub_of(rel)
            append = int(_state(sub_folder).get("widen_round") or 0) < r  # not yet started this round
            if append:
                seed = None if s.seed is None else s.seed + SEED_STRIDE * where[rel][1] + r
                sub = widened_experiment(sub, edges, seed)
                state = _state(sub_folder)
                state["widen_round"] = r
                sub_folder.write_text(EXPERIMENT_FILE, json.dumps(state, indent=2, default=str))
            if progress:
                print(f"comparison {name}: {rel}, widened (round {r})", flush=True)
            drawn = _search(
                sub,
                sub_folder,
                progress,
                append=append,
                callbacks=callbacks,
                optuna_journal=optuna_journal,
            )
            if drawn is None:
                interrupted = True
                break
            searched[rel] = (sub_folder, drawn)
        if not interrupted:
            _test(searched, s.compare_seeds, progress)
        r += 1
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


def widen_comparison(
    path: str | Any, rounds: int = 1, *, address: str | None = None, progress: bool = True
) -> Any:
    """``raytune-opt widen DIR``: ``rounds`` more widening rounds of the finished comparison in
    ``path`` (see the module docstring): ``search.compare_widen`` raised to the rounds done plus
    ``rounds`` in its description, then the comparison resumed. A ``ConfigError`` before anything
    runs for a folder that is not a comparison, or a round count outside [1, 10]."""
    from raytune_opt.errors import ConfigError
    from raytune_opt.experiment.run import load_experiment

    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_WIDEN_ROUNDS:
        raise ConfigError.invalid("rounds", rounds, f"an integer in [1, {MAX_WIDEN_ROUNDS}]")
    folder = ExperimentFolder.at(path)
    text = folder.read_text(COMPARISON_FILE)
    exp = load_experiment(path, address=address)
    if text is None or exp.search is None or exp.search.compare is None:
        raise ConfigError.invalid(
            "experiment directory",
            folder.path,
            f"a comparison's folder (search.compare: optimizers, with {COMPARISON_FILE}); to widen one "
            "search's range, run it again with the range in search.space",
        )
    done = len(json.loads(text).get("widened") or [])
    raw = exp.to_dict()
    raw["search"]["compare_widen"] = min(done + rounds, MAX_WIDEN_ROUNDS)
    raw["name"] = exp.name
    widened = Experiment.from_dict(raw, source=f"{folder.path} (raytune-opt widen)")
    return run_comparison(widened, progress=progress, _restore=True)
