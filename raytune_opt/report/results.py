"""Reading an experiment directory written by Ray Tune into two tables: trials and reports.

Layout read (Ray Tune 2.60, ``<storage_path>/<name>/``)::

    experiment.json                     the runner's description (name, strategy, metric, mode, wall_s …)
    experiment_state-<date>.json        Tune's own state: status of every trial (TERMINATED, ERROR, RUNNING …)
    <trial folder>/params.json          the trial's config
    <trial folder>/result.json          one JSON line per report (NaN and ±Infinity allowed)
    <trial folder>/progress.csv         the same reports as CSV (read only when result.json is missing)
    <trial folder>/error.txt            present when the trial failed

Status of a trial, in this order: ``failed`` (Tune says ERROR, or without Tune's state an
``error.txt``), ``diverged`` (a report with ``diverged`` true, or a last value of the metric
that is NaN or ±inf), ``finished`` (Tune says TERMINATED; without Tune's state: reports and an
experiment that is not still running), else ``unfinished`` (running, pending, paused, never reported,
or a folder that no saved Tune state mentions: a trial started after Tune last saved its state by a
driver that was then killed; a resumed run does not know it and samples a replacement).

The best trial is the one whose best report (over its own reports) is best by ``mode``, among
trials that neither failed nor diverged (among all trials when none is left).
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raytune_opt.errors import ConfigError

__all__ = ["Results", "load", "STATUSES", "CONFIG_PREFIX"]

#: a trial's status in the report: "stopped" is a trial the experiment's time budget cut short
STATUSES = ("finished", "stopped", "failed", "diverged", "unfinished")
#: the watchdog's reasons for the trials it stopped (``raytune_opt.experiment.watchdog.REASONS_FILE``)
WATCHDOG_FILE = "watchdog.json"
#: the trials the time budget cut short (``raytune_opt.experiment.watchdog.BudgetStop``)
STOPPED_FILE = "stopped.json"
#: the test evaluation of the best configuration (``raytune_opt.experiment.evaluate``)
TEST_FILE = "test.json"
#: a comparison's results: one sub-experiment per optimizer (``raytune_opt.experiment.compare``)
COMPARISON_FILE = "comparison.json"
CONFIG_PREFIX = "config/"
MODES = ("min", "max")

#: Report keys that are bookkeeping, not metrics (left out of the trial table's final metrics).
_BOOKKEEPING = {
    "config",
    "date",
    "hostname",
    "pid",
    "done",
    "should_checkpoint",
    "checkpoint_dir_name",
    "trial_id",
    "node_ip",
    "timestamp",
    "time_since_restore",
    "iterations_since_restore",
    "time_this_iter_s",
    "training_iteration",
    "time_total_s",
    "experiment_tag",
}
_TRIAL_FILES = ("params.json", "result.json", "progress.csv", "error.txt")
_TRIAL_ID = re.compile(r"_([0-9a-f]{5}_\d{5}|[0-9a-f]{8})(?:_|$)")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": 2}`` → ``{"a/b": 1, "c": 2}`` (Ray's own flattening of nested configs)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{key}/"))
        elif isinstance(v, list | tuple):
            out[key] = json.dumps(list(v), default=str)
        else:
            out[key] = v
    return out


def _is_finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _read_reports(folder: Path) -> list[dict[str, Any]]:
    """Every report of one trial: result.json's lines (a half-written last one skipped), else progress.csv."""
    path = folder / "result.json"
    if path.is_file():
        reports = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a trial still writing its last line
                if isinstance(row, dict):
                    reports.append(row)
        return _once_per_iteration(reports)
    path = folder / "progress.csv"
    if path.is_file():
        with open(path, encoding="utf-8", newline="") as f:
            return _once_per_iteration(
                [
                    {k: v if k in _TEXT_COLUMNS else _parse_csv_value(v) for k, v in row.items()}
                    for row in csv.DictReader(f)
                ]
            )
    return []


def _once_per_iteration(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each ``training_iteration`` once, the last report of it kept. A trial resumed from a checkpoint
    older than its last report (Tune's state names the checkpoints it had saved when the driver died)
    runs those epochs again and appends them to result.json: the re-run is what led to its model."""
    last: dict[Any, int] = {}
    for i, r in enumerate(reports):
        last[r.get("training_iteration", ("row", i))] = i
    if len(last) == len(reports):
        return reports
    kept = sorted(last.values())
    return [reports[i] for i in kept]


#: progress.csv columns kept as text: an 8-hex trial id such as ``61137e65`` parses as a float
_TEXT_COLUMNS = frozenset({"trial_id", "node_ip", "hostname", "date", "experiment_tag"})


def _parse_csv_value(v: str | None) -> Any:
    if v is None or v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _text(v: Any) -> str:
    """A text field of Tune's state as it is, or JSON-decoded when stored as a JSON string (``'"x"'``):
    never parsed as a number — Ray 2.60's trial id ``6e149211`` is a float (inf) to ``json.loads``."""
    if v is None:
        return ""
    if isinstance(v, str) and v.startswith('"'):
        decoded = _maybe_json(v)
        return decoded if isinstance(decoded, str) else v
    return str(v)


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _tune_state(exp_dir: Path) -> dict[str, dict[str, Any]]:
    """Tune's view of every trial, keyed by folder name: status, trial_id, start_time, config.

    Read from every ``experiment_state-*.json`` in date order (a restored run writes a new one), so
    the latest file that mentions a trial wins.
    """
    state: dict[str, dict[str, Any]] = {}
    for path in sorted(glob.glob(str(exp_dir / "experiment_state-*.json"))):
        data = _read_json(Path(path))
        if not isinstance(data, dict):
            continue
        for item in data.get("trial_data", []):
            try:
                info = _maybe_json(item[0])
                runtime = _maybe_json(item[1]) if len(item) > 1 else {}
            except (TypeError, IndexError):
                continue
            if not isinstance(info, dict) or not info.get("relative_logdir"):
                continue
            config = _maybe_json(info.get("config"))
            start = _maybe_json(runtime.get("start_time")) if isinstance(runtime, dict) else None
            state[_text(info["relative_logdir"])] = {
                "status": _text(info.get("status", "")),
                "trial_id": _text(info.get("trial_id")) or None,
                "start_time": start if _is_finite(start) else None,
                "config": config if isinstance(config, dict) else None,
            }
    return state


def _error_message(folder: Path) -> str | None:
    """The last non-empty line of ``error.txt`` (the exception), or ``None``."""
    path = folder / "error.txt"
    if not path.is_file():
        return None
    lines = [
        ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()
    ]
    return lines[-1] if lines else "error"


@dataclass
class Results:
    """Every trial of one experiment.

    ``trials``: one row per trial — trial_id, status, node_ip, iterations, time_total_s,
    ``best_<metric>`` (best over its reports, NaN if none is finite), the last value of every
    reported metric, error (the exception's line), path (the folder) and ``config/<key>`` columns
    (nested configs flattened with ``/``). ``history``: one row per report, with trial_id and the
    ``config/`` columns. ``info``: the runner's experiment.json (empty for a raw Tune dir).
    """

    exp_dir: Path
    metric: str
    mode: str
    trials: pd.DataFrame
    history: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    start_time: float | None = None
    #: the experiment's :class:`~raytune_opt.search.SearchSpace`, rebuilt from experiment.json
    #: (``None`` for a raw Tune folder: the report then guesses, see :mod:`raytune_opt.report.params`)
    space: Any = None
    #: what the views compute from these trials once and share (a report's PNG and its HTML page):
    #: :func:`raytune_opt.report.analysis.importances` keeps its forest's result here
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def params(self) -> list[Any]:
        """The searched parameters (:func:`raytune_opt.report.params.searched_params`), from the
        search space when known."""
        from raytune_opt.report.params import searched_params

        return searched_params(self.trials, self.space) if len(self.trials) or self.space is not None else []

    @property
    def max_t(self) -> int:
        """A full trial's epochs: experiment.json's ``max_t``, else the most iterations any trial ran."""
        m = self.info.get("max_t")
        if isinstance(m, int) and m > 0:
            return m
        return int(self.trials["iterations"].max()) if len(self.trials) else 0

    def full_fidelity(self) -> pd.DataFrame:
        """The trials that ran the full budget (``iterations >= max_t``): the only ones compared with
        each other where a scheduler (ASHA, Hyperband, BOHB) stopped others after fewer epochs."""
        t = self.trials
        return t[t["iterations"] >= self.max_t] if len(t) else t

    #: test.json: the best configuration on the test split over seeds (``None`` until evaluated)
    test: dict[str, Any] | None = None

    @property
    def objectives(self) -> tuple[tuple[str, str], ...] | None:
        """``((metric, mode), ...)`` of an experiment with several objectives (experiment.json's
        ``metrics`` and ``modes``, ``search.metric`` a list); ``None`` with one."""
        metrics, modes = self.info.get("metrics"), self.info.get("modes")
        if not isinstance(metrics, list) or not isinstance(modes, list) or len(metrics) < 2:
            return None
        if len(modes) != len(metrics) or any(m not in MODES for m in modes):
            raise ConfigError.invalid(
                "experiment.json modes", modes, f"{len(metrics)} of 'min'/'max', one per metric {metrics}"
            )
        return tuple(zip(map(str, metrics), map(str, modes), strict=True))

    @property
    def best_column(self) -> str:
        """The trial table's column with each trial's best value of the metric."""
        return f"best_{self.metric}"

    @property
    def config_columns(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith(CONFIG_PREFIX)]

    def counts(self) -> dict[str, int]:
        """``{"total", "finished", "stopped", "failed", "diverged", "unfinished"}``."""
        status = self.trials["status"] if len(self.trials) else pd.Series([], dtype=object)
        return {"total": len(self.trials), **{s: int((status == s).sum()) for s in STATUSES}}

    def ranked(self) -> pd.DataFrame:
        """The trials, best first by ``best_<metric>``: those that count for the best (see
        :meth:`eligible`) first, then the others; trials without a finite value last."""
        if self.trials.empty:
            return self.trials
        key = self.trials[self.best_column].astype(float)
        key = key.where(np.isfinite(key))
        tier = (~self.trials["trial_id"].isin(self.eligible()["trial_id"])).astype(int)
        return (
            self.trials.assign(_tier=tier, _key=key)
            .sort_values(
                ["_tier", "_key"], ascending=[True, self.mode == "min"], na_position="last", kind="stable"
            )
            .drop(columns=["_tier", "_key"])
        )

    def eligible(self) -> pd.DataFrame:
        """Trials that count for the best: finite best value, not failed or diverged (all, if none)."""
        t = self.trials
        if t.empty:
            return t
        finite = t[np.isfinite(t[self.best_column].astype(float))]
        ok = finite[~finite["status"].isin(["failed", "diverged"])]
        return ok if len(ok) else finite

    def best_so_far(self) -> pd.DataFrame:
        """Every report in time order with the experiment's clock and the running best.

        Columns: trial_id, wall_s (report timestamp − experiment start), trial_seconds (Σ over
        trials of the time_total_s reached by then: the compute spent so far, every trial
        counted), value (the report's metric) and best (best finite value so far among the
        trials that count for the best, see :meth:`eligible`; NaN before the first).
        """
        cols = ["trial_id", "wall_s", "trial_seconds", "value", "best"]
        h = self.history
        if h.empty:
            return pd.DataFrame(columns=cols)
        ts = pd.to_numeric(h.get("timestamp", pd.Series(np.nan, index=h.index)), errors="coerce")
        total = pd.to_numeric(h.get("time_total_s", pd.Series(0.0, index=h.index)), errors="coerce").fillna(
            0.0
        )
        start = self.start_time if self.start_time is not None else float((ts - total).min())
        df = pd.DataFrame(
            {
                "trial_id": h["trial_id"],
                "wall_s": ts - start,
                "total": total,
                "value": pd.to_numeric(h.get(self.metric), errors="coerce") if self.metric in h else np.nan,
                "iteration": pd.to_numeric(h.get("training_iteration", 0), errors="coerce"),
            }
        )
        # within a trial, compute spent by each report = growth of its time_total_s (restores included)
        df["spent"] = df.groupby("trial_id")["total"].diff().fillna(df["total"]).clip(lower=0.0)
        df = df.sort_values(["wall_s", "total", "iteration"], kind="stable", na_position="last")
        df["trial_seconds"] = df["spent"].cumsum()
        pool = set(self.eligible()["trial_id"]) if len(self.trials) else set()
        counted = df["value"].where(df["trial_id"].isin(pool) & np.isfinite(df["value"]))
        # cummin/cummax leave NaN where the report itself does not count: carry the best over it
        df["best"] = (counted.cummin() if self.mode == "min" else counted.cummax()).ffill()
        return df[cols].reset_index(drop=True)

    @property
    def best(self) -> dict[str, Any] | None:
        """``{"trial_id", "config", "metric": name, "value", <metric name>: value}``, or ``None``
        when no trial reported a finite value of the metric."""
        pool = self.eligible()
        if pool.empty:
            return None
        vals = pool[self.best_column].astype(float)
        row = pool.loc[vals.idxmin() if self.mode == "min" else vals.idxmax()]
        value = float(row[self.best_column])
        tid = str(row["trial_id"])
        return {
            "trial_id": tid,
            "config": self.configs.get(tid, {}),
            "metric": self.metric,
            "value": value,
            self.metric: value,
        }

    @property
    def wall_s(self) -> float | None:
        """The experiment's wall time: experiment.json's ``wall_s``, else the last report's
        timestamp minus the start (``started_at``, Tune's earliest trial start, or the earliest
        report's timestamp minus its time_total_s)."""
        w = self.info.get("wall_s")
        if _is_finite(w):
            return float(w)
        if self.history.empty or "timestamp" not in self.history or self.start_time is None:
            return None
        end = pd.to_numeric(self.history["timestamp"], errors="coerce").max()
        return float(max(end - self.start_time, 0.0)) if _is_finite(end) else None

    @property
    def trial_seconds(self) -> float:
        """Σ over trials of their time_total_s (the compute the experiment used, in trial-seconds)."""
        return float(self.trials["time_total_s"].fillna(0.0).sum()) if len(self.trials) else 0.0

    @property
    def optimizers(self) -> list[str]:
        """The distinct values of config key ``optimizer`` (sorted; empty when there is none)."""
        col = f"{CONFIG_PREFIX}optimizer"
        if col not in self.trials:
            return []
        return sorted(str(v) for v in self.trials[col].dropna().unique())

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` holds (JSON-safe: NaN and inf become ``None``)."""
        from raytune_opt.report.edges import edge_params

        best = self.best
        out = _json_safe(
            {
                "name": self.info.get("name", self.exp_dir.name),
                "strategy": self.info.get("strategy"),
                "metric": self.metric,
                "mode": self.mode,
                "best_config": best["config"] if best else None,
                "best_metric": best["value"] if best else None,
                "best_trial_id": best["trial_id"] if best else None,
                "trials": self.counts(),
                "optimizers": self.optimizers,
                "wall_s": self.wall_s,
                "trial_seconds": self.trial_seconds,
                # failures of a model-based searcher's surrogate (its suggestions then random)
                "surrogate_fallbacks": len(self.info.get("surrogate_fallbacks") or []),
                "edge_params": edge_params(self.info, best["config"] if best else None),
            }
        )
        if self.test is not None:
            out["test"] = self.test
        return out


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _restore_ints(df: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Columns whose values are all ints (some missing) as nullable ``Int64``, not floats."""
    for col in df.columns:
        if df[col].dtype != float or not df[col].isna().any():
            continue
        values = [r[col] for r in rows if r.get(col) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            df[col] = df[col].astype("Int64")
    return df


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError.invalid("mode", mode, "'min' or 'max'")
    return mode


def _trial_folders(exp_dir: Path, state: Mapping[str, Any]) -> list[str]:
    names = set()
    for entry in os.scandir(exp_dir):
        if entry.is_dir() and any(os.path.exists(os.path.join(entry.path, f)) for f in _TRIAL_FILES):
            names.add(entry.name)
    return sorted(names | set(state))


def _status(
    tune_status: str | None, error: str | None, reports: list[dict[str, Any]], metric: str, running: bool
) -> str:
    if tune_status == "ERROR" or (tune_status is None and error is not None):
        return "failed"
    if tune_status in ("RUNNING", "PENDING") and error is not None and not running:
        return "failed"  # Tune's last saved state predates the failure; its error.txt does not
    if reports:
        last = reports[-1].get(metric)
        if any(r.get("diverged") is True for r in reports) or (last is not None and not _is_finite(last)):
            return "diverged"
    if tune_status == "TERMINATED" or (tune_status is None and reports and not running):
        return "finished"
    # Hyperband/BOHB leave the trials they stopped at a rung PAUSED when the experiment ends: stopped
    # early by the scheduler, i.e. finished with the budget it gave them
    if tune_status == "PAUSED" and reports and not running:
        return "finished"
    return "unfinished"


def _best_of(values: list[Any], mode: str) -> float:
    finite = [float(v) for v in values if _is_finite(v)]
    if not finite:
        return math.nan
    return min(finite) if mode == "min" else max(finite)


def load(exp_dir: str | os.PathLike[str], metric: str | None = None, mode: str | None = None) -> Results:
    """Read every trial of the experiment in ``exp_dir`` (finished, failed, running, never reported).

    ``metric`` and ``mode`` default to experiment.json's; for a raw Tune directory (no
    experiment.json) they must be given. A ``ConfigError`` names what is missing or wrong.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise ConfigError.invalid("exp_dir", str(exp_dir), "an existing experiment directory")
    info = _read_json(exp_dir / "experiment.json")
    info = info if isinstance(info, dict) else {}
    metric = metric or info.get("metric")
    mode = mode or info.get("mode")
    missing = [n for n, v in (("metric", metric), ("mode", mode)) if not v]
    if missing:
        raise ConfigError.invalid(
            " and ".join(missing),
            None,
            f"a value: {exp_dir} has no experiment.json to take it from; pass {' and '.join(missing)}",
        )
    mode = _check_mode(str(mode))
    metric = str(metric)
    running = bool(info) and info.get("finished_at") is None

    state = _tune_state(exp_dir)
    stopped = _read_json(exp_dir / WATCHDOG_FILE)  # raytune_opt.experiment.watchdog's reasons
    stopped = stopped if isinstance(stopped, dict) else {}
    cut = _read_json(exp_dir / STOPPED_FILE)
    cut = {str(x) for x in cut} if isinstance(cut, list) else set()
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    configs: dict[str, dict[str, Any]] = {}
    starts: list[float] = []
    seen_metrics: set[str] = set()
    for name in _trial_folders(exp_dir, state):
        folder = exp_dir / name
        st = state.get(name, {})
        reports = _read_reports(folder) if folder.is_dir() else []
        params = _read_json(folder / "params.json") if folder.is_dir() else None
        config = next(
            (c for c in (reports[-1].get("config") if reports else None, params, st.get("config")) if c),
            {},
        )
        config = config if isinstance(config, dict) else {}
        match = _TRIAL_ID.search(name)
        trial_id = str(
            st.get("trial_id")
            or (reports[-1].get("trial_id") if reports else None)
            or (match.group(1) if match else name)
        )
        error = _error_message(folder) if folder.is_dir() else None
        if error is not None and trial_id in stopped:
            error = f"{stopped[trial_id]} ({error})"
        last = reports[-1] if reports else {}
        row: dict[str, Any] = {
            "trial_id": trial_id,
            "status": "unfinished"
            if state and not st
            else _status(st.get("status") or None, error, reports, metric, running),
            "node_ip": last.get("node_ip"),
            "iterations": int(last.get("training_iteration", len(reports)) or 0),
            "time_total_s": float(last["time_total_s"]) if _is_finite(last.get("time_total_s")) else 0.0,
            f"best_{metric}": _best_of([r.get(metric) for r in reports], mode),
        }
        for k, v in last.items():
            if k not in _BOOKKEEPING and not isinstance(v, dict | list):
                row[k] = v
                seen_metrics.add(k)
        if row["status"] == "finished" and trial_id in cut:
            row["status"] = "stopped"
        row["error"] = error
        row["path"] = name
        flat = {f"{CONFIG_PREFIX}{k}": v for k, v in flatten(config).items()}
        row.update(flat)
        rows.append(row)
        configs[trial_id] = config
        for r in reports:
            h = {k: v for k, v in r.items() if k != "config" and not isinstance(v, dict | list)}
            h["trial_id"] = trial_id
            h.update({f"{CONFIG_PREFIX}{k}": v for k, v in flatten(r.get("config") or config).items()})
            history.append(h)
        if st.get("start_time") is not None:
            starts.append(float(st["start_time"]))
        elif reports and _is_finite(reports[0].get("timestamp")):
            starts.append(float(reports[0]["timestamp"]) - float(reports[0].get("time_total_s") or 0.0))

    if history and metric not in seen_metrics and not any(metric in h for h in history):
        raise ConfigError.unknown("metric", metric, sorted(seen_metrics) or ["(no metric reported)"])

    trials = _restore_ints(pd.DataFrame(rows), rows)
    if trials.empty:
        trials = pd.DataFrame(
            columns=["trial_id", "status", "node_ip", "iterations", "time_total_s", f"best_{metric}"]
        )
    trials[f"best_{metric}"] = trials[f"best_{metric}"].astype(float)
    front = ["trial_id", "status", "node_ip", "iterations", "time_total_s", f"best_{metric}"]
    config_cols = sorted(c for c in trials.columns if c.startswith(CONFIG_PREFIX))
    rest = [c for c in trials.columns if c not in front and c not in config_cols]
    trials = trials[front + rest + config_cols].sort_values("trial_id", kind="stable").reset_index(drop=True)

    hist = pd.DataFrame(history)
    if not hist.empty:
        sort = [c for c in ("trial_id", "training_iteration") if c in hist]
        hist = hist.sort_values(sort, kind="stable").reset_index(drop=True)
    test = _read_json(exp_dir / TEST_FILE)
    started = info.get("started_at")
    start_time = float(started) if _is_finite(started) else (min(starts) if starts else None)
    return Results(
        exp_dir=exp_dir,
        metric=metric,
        mode=mode,
        trials=trials,
        history=hist,
        info=info,
        configs=configs,
        start_time=start_time,
        space=_space_of(info),
        test=test if isinstance(test, dict) else None,
    )


def _space_of(info: Mapping[str, Any]) -> Any:
    from raytune_opt.report.params import space_of

    return space_of(info)
