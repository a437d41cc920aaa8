"""Running an experiment: connect to Ray, ``Tuner.fit``, the state file, resume.

The experiment directory is ``<run.storage_path>/<name>``: Ray Tune's own layout, plus
``experiment.json`` (:data:`EXPERIMENT_FILE`: the description and the run's times, for ``resume`` and
the report) and, at the end, the report of :mod:`raytune_opt.report` (``summary.json``,
``trials.csv``, plots).

    >>> tiny = ["search.num_samples=2", "train.epochs=1"]   # --set overrides
    >>> exp = Experiment.from_yaml("examples/strategies/random.yaml", overrides=tiny)
    >>> result = run_experiment(exp, progress=False)     # Ray Tune prints its experiment's box
    ╭─────...
    >>> (result.path / EXPERIMENT_FILE).is_file(), result.summary["trials"]["total"]
    (True, 2)
    >>> result = resume_experiment(result.path, progress=False)  # after a crash, Ctrl-C or a cluster restart
    ╭─────...
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytune_opt import keys
from raytune_opt._compat import ray_tune as _compat
from raytune_opt.errors import ConfigError, PreviousRunAliveError, StorageFullError
from raytune_opt.experiment.config import Experiment
from raytune_opt.experiment.plan import Plan
from raytune_opt.storage import ExperimentFolder

__all__ = [
    "EXPERIMENT_FILE",
    "PRELOAD",
    "ExperimentResult",
    "check_resources",
    "connect",
    "dashboard_line",
    "run_experiment",
    "resume_experiment",
    "load_experiment",
]

#: the runner's own file in the experiment directory
EXPERIMENT_FILE = "experiment.json"

#: the errors of a write that failed for want of space: a full disk, a spent quota, the file size limit
STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

#: what every worker process of a local Ray imports while it waits for work: a trial's first step then
#: does not pay torch's import (seconds) on the critical path, nor ``torch._dynamo``'s (seconds more),
#: which the first ``torch.optim.Optimizer`` built in a process imports (its ``add_param_group``)
PRELOAD = ["torch", "torch._dynamo", "raytune_opt.train.loop"]

#: how long ``resume`` waits for the trial actors of the experiment's previous run to end (Ray stops a
#: dead driver's actors within a second or two; a bound for a previous driver still running)
PREVIOUS_RUN_TIMEOUT_S = 60.0
#: a wait longer than this says on the progress output what it waits for
_QUIET_WAIT_S = 2.0


@dataclass
class ExperimentResult:
    """What a run left behind: its directory (local, or the local mirror of a remote one), Ray's
    ``ResultGrid``, the summary and the report's files. ``name`` is the folder's name (the
    experiment's, or ``<name>-2`` … when a folder of that name existed)."""

    path: Path
    _grid: Any
    summary: dict[str, Any]
    files: dict[str, Path]
    interrupted: bool = False
    name: str = ""

    @property
    def grid(self) -> Any:
        """Ray's ``ResultGrid`` of the run's trials. A run of several fits
        (:mod:`raytune_opt.experiment.fits`) reads it from the folder when first asked for: while
        the fits ran, the driver held one fit's trials at a time."""
        if callable(self._grid):
            self._grid = self._grid()
        return self._grid

    def export_model(self, *, trial: str | None = None, epoch: str = "best") -> tuple[Any, dict[str, Any]]:
        """``(model, config)`` of the best trial (or ``trial``) at its best (or ``"last"``) epoch:
        :func:`raytune_opt.experiment.export.export_model`."""
        from raytune_opt.experiment.export import export_model

        return export_model(self.path, trial=trial, epoch=epoch)


def _write_state(folder: ExperimentFolder, exp: Experiment, plan: Plan, name: str, **times: Any) -> None:
    text = folder.read_text(EXPERIMENT_FILE)
    state = json.loads(text) if text else {}
    state.update(
        {
            "name": name,
            "strategy": plan.strategy,
            "metric": plan.metric,
            "mode": plan.mode,
            # every objective (the first is metric/mode); several: the report's Pareto front
            "metrics": list(plan.metrics),
            "modes": list(plan.modes),
            "optimizers": list(plan.optimizers),
            "optimizer_searched": plan.optimizer_searched,
            "num_samples": plan.num_samples,
            "max_t": plan.max_t,
            "experiment": {**exp.to_dict(), "name": name},
        }
    )
    # the Ray job (driver) of this run: a resume waits until that job's actors are gone
    job = _job_id()
    if job is not None:
        state["job_ids"] = [*[j for j in state.get("job_ids", []) if j != job], job][-8:]
    state.setdefault("started_at", time.time())
    state.setdefault("finished_at", None)
    state.setdefault("wall_s", None)
    state.update(times)
    folder.write_text(EXPERIMENT_FILE, json.dumps(state, indent=2, default=str))


def _job_id() -> str | None:
    """The hex id of the Ray job this process drives (``None`` when it joined no Ray)."""
    import ray

    return ray.get_runtime_context().get_job_id() if ray.is_initialized() else None


def wait_for_previous_run(
    folder: ExperimentFolder, progress: bool = True, timeout_s: float = PREVIOUS_RUN_TIMEOUT_S
) -> None:
    """Before a resume: wait until no actor of the experiment's earlier runs (the Ray jobs that
    ``experiment.json`` records, other than this process's) is alive on the cluster this process
    joined. A driver SIGKILLed a moment ago leaves its trial actors running until Ray reaps them (it
    does so asynchronously, within a second or two); resumed meanwhile, two processes would train the
    same trial and write the same checkpoints. Says what it waits for after a moment; after
    ``timeout_s`` a :class:`PreviousRunAliveError` naming the actors and how to stop them (an error,
    not a warning: going on would write the very duplicate work the wait is for)."""
    from raytune_opt._compat.ray_core import live_actors_of_jobs

    state = json.loads(folder.read_text(EXPERIMENT_FILE) or "{}")
    jobs = set(state.get("job_ids", [])) - {_job_id(), None}
    if not jobs:
        return
    start = time.monotonic()
    said = False
    while alive := live_actors_of_jobs(jobs):
        waited = time.monotonic() - start
        if waited > timeout_s:
            raise PreviousRunAliveError(_previous_run_alive(folder, alive, timeout_s))
        if progress and not said and waited > _QUIET_WAIT_S:
            names = ", ".join(sorted({a["class_name"] for a in alive}))
            print(
                f"waiting for {len(alive)} actor(s) of the previous run of {folder.path} to end "
                f"({names}; Ray stops a dead driver's actors; at most {timeout_s:.0f} s)",
                flush=True,
            )
            said = True
        time.sleep(0.2)
    if said:
        print(f"the previous run's actors ended after {time.monotonic() - start:.1f} s: resuming", flush=True)


def _previous_run_alive(folder: ExperimentFolder, alive: list[dict[str, Any]], timeout_s: float) -> str:
    actors = "; ".join(
        f"{a['class_name']} {a['actor_id']} ({a['state']}, job {a['job_id']}"
        + (f", pid {a['pid']} on {a['ip']}" if a["pid"] else "")
        + ")"
        for a in alive
    )
    return (
        f"the previous run of {folder.path} still has {len(alive)} actor(s) alive after {timeout_s:.0f} s: "
        f"{actors}. Is its driver still running? Stop it (Ctrl-C, or kill its process), or stop those "
        "actors (`kill <pid>` on their node), then `raytune-opt resume` again"
    )


def _reachable(address: str, timeout_s: float = 5.0) -> bool:
    """Whether a TCP connection to ``host:port`` (``ray://host:port``) opens within ``timeout_s``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return True  # not host:port ("auto", a name Ray resolves): let ray.init decide
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def connect(address: str | None = None, progress: bool = True) -> None:
    """Join ``address`` (``auto``, ``host:6379``, ``ray://host:10001``) or start a local Ray (its workers
    preloading :data:`PRELOAD`), unless this process already joined one; print the dashboard's URL.
    An address nobody answers at is a ConfigError (Ray itself would retry it for minutes)."""
    import ray

    if ray.is_initialized():
        return
    if address:
        if address != "auto" and not _reachable(address):
            raise ConfigError.invalid(
                "run.address",
                address,
                "a running Ray cluster's address (nothing answers there); "
                "`--address auto` joins the cluster of this machine, no --address starts a local Ray",
            )
        ctx = ray.init(address=address, log_to_driver=False)
    else:
        ctx = ray.init(
            num_cpus=os.cpu_count(), log_to_driver=False, _system_config={"preload_python_modules": PRELOAD}
        )
    url = getattr(ctx, "dashboard_url", None)
    if progress and url:
        print(dashboard_line(url), flush=True)


def dashboard_line(url: str, token_auth: bool | None = None) -> str:
    """``Ray dashboard: http://URL``, and with token authentication (Ray 2.60's default; ``None``: as
    this process's Ray says) how to open it: the dashboard asks for the token that
    ``ray get-auth-token`` prints, read from ``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH``
    or ``~/.ray/auth_token``. Names where the token is, never the token itself."""
    line = f"Ray dashboard: http://{url.removeprefix('http://')}"
    if token_auth is None:
        from raytune_opt._compat.ray_core import token_auth_enabled

        token_auth = token_auth_enabled()
    if not token_auth:
        return line
    if os.environ.get("RAY_AUTH_TOKEN"):
        where_ = "the value of $RAY_AUTH_TOKEN"
    else:
        where_ = f"the file {os.environ.get('RAY_AUTH_TOKEN_PATH') or '~/.ray/auth_token'}"
    return f"{line} (it asks for Ray's authentication token: {where_}; `ray get-auth-token` prints it)"


def check_resources(exp: Experiment) -> None:
    """A trial's request must fit the Ray this process joined: every worker on one node (its CPUs,
    GPUs), and a GPU somewhere when ``use_gpu``. A request no node can take would wait forever, so it
    is a ConfigError naming what is missing. A cluster with an autoscaler may add nodes: there only the
    resources it has now are known, so the check is a warning."""
    import ray

    r = exp.resources
    need = {"CPU": r.cpus_per_worker}
    if r.use_gpu:
        need["GPU"] = r.gpus_per_worker or 1
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0) >= v for k, v in need.items()) for node in nodes):
        return
    biggest = {k: max((node.get(k, 0) for node in nodes), default=0) for k in need}
    message = ConfigError.invalid(
        "resources",
        {"cpus_per_worker": r.cpus_per_worker, **({"gpus_per_worker": need["GPU"]} if r.use_gpu else {})},
        f"a per-worker request one node can take (the largest node has {biggest.get('CPU', 0):g} CPUs"
        + (f" and {biggest.get('GPU', 0):g} GPUs" if r.use_gpu else "")
        + "); lower resources.cpus_per_worker"
        + (" or set use_gpu: false" if r.use_gpu else ""),
    )
    if exp.run_.address:  # a cluster: its autoscaler may still add a node that fits
        import warnings

        warnings.warn(f"{message} — waiting for the autoscaler", stacklevel=2)
        return
    raise message


def _fresh_name(exp: Experiment, progress: bool) -> tuple[str, ExperimentFolder]:
    """The experiment's name, or ``<name>-2``, ``-3`` … when its folder exists (never mix two runs)."""
    folder = ExperimentFolder(exp.run_.storage_path, exp.name)
    if not folder.exists():
        return exp.name, folder
    n = 2
    while folder.renamed(f"{exp.name}-{n}").exists():
        n += 1
    name = f"{exp.name}-{n}"
    if progress:
        print(f"{folder.path} exists (`raytune-opt resume` continues it): this run goes to {name}")
    return name, folder.renamed(name)


def run_experiment(
    exp: Experiment,
    *,
    progress: bool = True,
    report: bool = True,
    callbacks: Sequence[Any] = (),
    optuna_journal: bool | None = None,
    _restore: bool = False,
    _append: bool = False,
    _grow: bool = False,
) -> ExperimentResult:
    """Run ``exp`` with ``ray.tune.Tuner`` on ``run.address`` (default: a local Ray, or the one this
    process already joined), write the report, and return where everything is.

    Prints the dashboard URL, a live status line (:class:`raytune_opt.progress.LiveStatus`)
    while trials run, and at the end the best configuration, its metric and the files written.
    A failed trial (exception, crashed worker) is retried ``run.max_failures`` times from its last
    checkpoint, then recorded as failed; a diverged one (NaN loss) is recorded as such; either way
    the experiment goes on. ``exp`` is not changed. ``callbacks``: tracking callbacks for this run on
    top of ``run.callbacks`` (``{"mlflow": {...}}`` entries, checked before Ray starts, or
    ``ray.tune.Callback`` instances; :mod:`raytune_opt.experiment.callbacks`). ``optuna_journal``
    (default ``run.optuna_journal``): keep ``optuna.journal`` in the experiment folder, an Optuna
    study of the trials updated as they report (:mod:`raytune_opt.experiment.optuna_journal`). With
    ``search.compare`` the experiment is a comparison: :func:`raytune_opt.experiment.compare.run_comparison`.
    ``_append`` (a comparison's widened search): a new search into the existing folder of
    ``exp.name``, its trials beside the earlier ones (Tune's new ``experiment_state-*.json`` beside the
    old; the report reads them all).
    """
    if exp.search is not None and exp.search.compare is not None:
        from raytune_opt.experiment.compare import run_comparison

        return run_comparison(
            exp,
            progress=progress,
            report=report,
            _restore=_restore,
            callbacks=callbacks,
            optuna_journal=optuna_journal,
        )
    from raytune_opt.experiment.callbacks import make_callbacks

    plan = exp.plan()
    # checked (a ConfigError) before anything is written; named after the experiment, so that repeated
    # runs (``<name>-2`` folders) log into one MLflow experiment / W&B project
    entries = [*exp.run_.callbacks, *callbacks]
    tracking = functools.partial(make_callbacks, entries, exp.name)  # one set a fit (fits.py)
    tracking()
    journal = exp.run_.optuna_journal if optuna_journal is None else optuna_journal
    if journal:
        from raytune_opt.experiment.optuna_journal import check_optuna

        check_optuna("optuna_journal" if optuna_journal else "run.optuna_journal")
    if _restore or _append:
        name, folder = exp.name, ExperimentFolder(exp.run_.storage_path, exp.name)
    else:
        name, folder = _fresh_name(exp, progress)
    if journal and folder.remote:
        raise ConfigError.invalid(
            "run.optuna_journal", True, f"a local run.storage_path (the journal is a file): {folder.path}"
        )
    folder.check_writable()
    connect(exp.run_.address, progress)
    check_resources(exp)
    if _restore:
        # before anything reads or moves the folder: the killed driver's trials may still write there
        wait_for_previous_run(folder, progress)
        if not _tune_state_saved(folder):
            _set_aside_unsaved(folder, progress)
            _restore = False
    with _storage_full_named(folder):
        return _run(
            exp, plan, name, folder, tracking, progress, report, _restore, bool(journal), _append, _grow
        )


def _run(
    exp: Experiment,
    plan: Plan,
    name: str,
    folder: ExperimentFolder,
    tracking: list[Any],
    progress: bool,
    report: bool,
    _restore: bool,
    journal: bool,
    _append: bool,
    _grow: bool = False,
) -> ExperimentResult:
    """:func:`run_experiment` once the folder is chosen and Ray joined."""
    from ray import tune

    from raytune_opt import trial_logs

    grown = json.loads(folder.read_text(EXPERIMENT_FILE) or "{}").get("grown", [])
    if _restore and _grow:
        grown = [*grown, {"from": _saved_total(folder), "to": plan.num_samples, "at": time.time()}]
    extra_state = {"grown": grown} if grown else {}
    _write_state(
        folder, exp, plan, name, **({"finished_at": None} if _append or _grow else {}), **extra_state
    )
    started = time.time()
    from raytune_opt.experiment.driver_memory import DriverMemory

    board = status = None
    head: list[Any] = []  # the callbacks every fit shares
    if progress:
        from raytune_opt.progress import LiveStatus

        searched = [p.name for p in plan.space] if plan.space is not None else ["optimizer"]
        waiting = None
        if exp.resources.distributed:  # its trials may be started and still wait for their workers
            board, waiting = _waiting_board(name)
        status = LiveStatus(plan.metric, plan.mode, total=plan.trials, searched=searched, waiting=waiting)
        head.append(status)
    tail: list[Any] = []
    local = None if folder.remote else folder.path
    if journal:
        from raytune_opt.experiment.optuna_journal import JOURNAL_FILE, OptunaJournal

        tail.append(OptunaJournal(Path(local) / JOURNAL_FILE, plan.space, plan.metric, plan.mode, name))
    if exp.run_.trial_timeout_s is not None or exp.run_.stall_factor is not None:
        from raytune_opt.experiment.watchdog import TrialWatchdog

        tail.append(TrialWatchdog(local, exp.run_.trial_timeout_s, exp.run_.stall_factor))
    if exp.search is not None and exp.search.time_budget_s is not None:
        from raytune_opt.experiment.watchdog import BudgetStop

        tail.append(BudgetStop(local, exp.search.time_budget_s, start=time.monotonic()))

    def run_config() -> Any:
        """A fit's ``RunConfig``. Its loggers, tracking callbacks and :class:`DriverMemory` are new for
        each fit: they keep the fit's ``Trial`` objects (which the next fit's ``tuner.pkl`` would
        otherwise hold); the status line, the journal and the watchdogs go on through the fits."""
        callbacks = head + trial_logs.loggers(exp.run_.tensorboard) + tracking() + [DriverMemory()] + tail
        return tune.RunConfig(
            name=name,
            storage_path=folder.storage_path,
            failure_config=tune.FailureConfig(max_failures=exp.run_.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=exp.run_.keep_checkpoints),
            callbacks=callbacks,
            verbose=0,
        )

    from raytune_opt.experiment import fits
    from raytune_opt.search import STRATEGIES

    fixed = dict(plan.fixed)
    per_fit = exp.run_.trials_per_fit
    fixed_budget = STRATEGIES[exp.search.strategy].fixed_budget if exp.search else "one fixed configuration"
    created = 0  # the trials of the fits before the one that runs (raytune_opt.experiment.fits)
    if _restore:
        tuner = tune.Tuner.restore(
            folder.path,
            trainable=plan.trainable,
            param_space=fixed,
            resume_unfinished=True,
            resume_errored=True,
        )
        tune_config = _compat.restored_tune_config(tuner)
        split = tune_config is not None and per_fit is not None and fits.splittable(tune_config, fixed_budget)
        if split:  # the newest fit goes on to its own total, then the fits still to come
            states, newest = fits.trial_states(folder), fits.trial_states(folder, newest_only=True)
            earlier = states.keys() - newest.keys()
            created = len(earlier)
            total = fits.saved_fit_total(folder)
            if total is not None:
                tune_config.num_samples = total  # what the restored fit runs to
            if status is not None:
                status.carry(states[k].get("status", "") for k in earlier)
        elif grown:  # this resume or an earlier one raised num_samples: Tune restores the old total
            _grow_search(tuner, plan.num_samples)
    else:
        tune_config = plan.tune_config()
        split = per_fit is not None and fits.splittable(tune_config, fixed_budget)
        if split:
            tune_config.num_samples = fits.next_fit(plan.trials, 0, per_fit)
        tuner = tune.Tuner(
            plan.trainable, param_space=fixed, tune_config=tune_config, run_config=run_config()
        )
    bests: list[tuple[float, float, Any]] = []
    n_fits = 0
    with _compat.tune_run_environment(plan.trials):
        try:
            while True:
                grid = _fit(tuner)
                n_fits += 1
                asked = tune_config.num_samples if split else plan.trials
                searcher_finished = _finished(tune_config.search_alg) if tune_config else False
                interrupted = _interrupted(grid, exp, asked, folder, started, searcher_finished)
                best = _best(grid, plan.metric, plan.mode)
                bests += [best] if best is not None else []
                created += len(grid)
                budget_left = _budget_left(exp, started)
                if (
                    not split
                    or interrupted
                    or searcher_finished
                    or len(grid) < asked
                    or created >= plan.trials
                    or (budget_left is not None and budget_left <= 0)
                ):
                    break
                if _restore and n_fits == 1 and status is not None:  # Tune's restored status line saw it
                    status.carry(t.status for t in _compat.result_grid_trials(grid))
                del grid, tuner
                fits.between_fits(folder)
                tune_config.num_samples = fits.next_fit(plan.trials, created, per_fit)
                if budget_left is not None:
                    tune_config.time_budget_s = budget_left
                tuner = tune.Tuner(
                    plan.trainable, param_space=fixed, tune_config=tune_config, run_config=run_config()
                )
        finally:
            if board is not None:
                import ray

                ray.kill(board)
    if n_fits > 1 or created > len(grid):  # the trials of several fits: their grid is read when asked for
        del grid
        grid = functools.partial(fits.result_grid, folder, plan.metric, plan.mode)
    state = json.loads(folder.read_text(EXPERIMENT_FILE) or "{}")
    wall = (state.get("wall_s") or 0.0) + time.time() - started
    extra = {}
    fallbacks = _fallbacks(tune_config.search_alg) if tune_config is not None else None
    if fallbacks is not None:
        extra["surrogate_fallbacks"] = fallbacks
        if fallbacks and progress:
            print(f"the surrogate failed {len(fallbacks)} time(s); those suggestions were random", flush=True)
    _write_state(
        folder, exp, plan, name, finished_at=None if interrupted else time.time(), wall_s=wall, **extra
    )
    files: dict[str, Path] = {}
    summary: dict[str, Any] = {}
    path = folder.local_copy()
    if report:
        from raytune_opt import report as report_

        results = report_.load(path)
        files = report_.write_results(results, path)
        summary = json.loads(Path(files["summary.json"]).read_text()) if "summary.json" in files else {}
        if folder.remote:
            folder.upload(files)
        if progress:
            print(report_.table(results, top=5), flush=True)
            if results.objectives is not None:
                print(report_.pareto_summary(results), flush=True)
    if progress:
        searched = list(plan.searched) if plan.space is not None else list(fixed)
        _print_best(
            max(bests, key=lambda b: b[0]) if bests else None, plan.metric, folder.path, files, searched
        )
        if interrupted:
            print(f"interrupted: `raytune-opt resume {folder.path}` continues where it stopped", flush=True)
    return ExperimentResult(path, grid, summary, files, interrupted, name)


def _waiting_board(name: str) -> tuple[Any, Any]:
    """Opens the experiment's board of distributed trials waiting for their workers
    (:mod:`raytune_opt.train.resource_wait`): the board's handle and what the status line asks it."""
    import ray

    from raytune_opt.train.resource_wait import open_board

    board = open_board(name)

    def waiting() -> list[str]:
        try:
            return ray.get(board.ids.remote(), timeout=5)
        except ray.exceptions.GetTimeoutError:
            return []

    return board, waiting


def _fit(tuner: Any) -> Any:
    """``tuner.fit()``; when a ``KeyboardInterrupt`` (a second Ctrl-C: the first one Tune handles) or
    another ``BaseException`` that is no ``Exception`` ends it, the placement groups the fit created,
    and with them its trials' actors, are removed. Tune cleans up only after an ``Exception``: its
    trials would hold their CPUs until this process exits (a notebook, a test session)."""
    before = _compat.job_placement_groups()
    try:
        return tuner.fit()
    except Exception:
        raise
    except BaseException:
        _compat.remove_placement_groups(_compat.job_placement_groups() - before)
        raise


@contextlib.contextmanager
def _storage_full_named(folder: ExperimentFolder) -> Iterator[None]:
    """A write that fails for want of space (:data:`STORAGE_FULL`, anywhere in the chain of the error
    Tune or the report raised) becomes a :class:`StorageFullError` naming the folder and how to
    resume. What was written stays: ``experiment.json`` says the run has not finished, Tune keeps its
    last saved state (a save cut short raises before Tune copies it to the folder)."""
    try:
        yield
    except StorageFullError:
        raise
    except Exception as e:
        cause = _storage_full_cause(e)
        if cause is None:
            raise
        raise StorageFullError(folder.path, cause) from e


def _storage_full_cause(error: BaseException) -> OSError | None:
    seen: set[int] = set()
    at: BaseException | None = error
    while at is not None and id(at) not in seen:
        if isinstance(at, OSError) and at.errno in STORAGE_FULL:
            return at
        seen.add(id(at))
        at = at.__cause__ or at.__context__
    return None


def _tune_state_saved(folder: ExperimentFolder) -> bool:
    """Whether Tune saved its state in ``folder`` (``tuner.pkl`` and an ``experiment_state-*.json``
    that reads whole): a driver killed before Tune's first save leaves neither, a disk that filled
    while Tune copied it a cut one, and ``Tuner.restore`` cannot continue from either."""
    if folder.remote:
        return True  # Tune's own restore reports a missing state on remote storage
    path = Path(folder.path)
    states = sorted(path.glob("experiment_state-*.json"))
    if not (path / "tuner.pkl").is_file() or not states:
        return False
    try:  # the newest is what Tune restores: a copy cut short by a full disk cannot be
        json.loads(states[-1].read_text())
    except (OSError, ValueError):
        return False
    return True


def _set_aside_unsaved(folder: ExperimentFolder, progress: bool) -> None:
    """Before a run starts over in ``folder``: the trial folders of the run that left no state Tune can
    restore (it died before Tune's first save, or a full disk cut the state's copy short), and Tune's
    unreadable state files, move to ``unsaved-<time>/`` (kept, not mixed with the new trials)."""
    path = Path(folder.path)
    trials = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith("unsaved-")]
    moved = trials + sorted(path.glob("experiment_state-*.json"))
    if moved:
        aside = path / f"unsaved-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.mkdir()
        for p in moved:
            p.rename(aside / p.name)
    if progress:
        print(
            f"{folder.path}: the run left no state Ray Tune can restore (it stopped before Tune first "
            "saved one, or the copy was cut short); it starts over"
            + (f" ({len(trials)} trial folder(s) kept in {aside.name}/)" if trials else ""),
            flush=True,
        )


def _fallbacks(search_alg: Any) -> list[str] | None:
    """The failures of a model-based searcher's surrogate (``search._searcher.ModelSearcher``) during
    the run, one message each, through Tune's wrappers (ConcurrencyLimiter, SearchGenerator);
    ``None`` for a searcher without a surrogate."""
    seen = search_alg
    for _ in range(4):
        if seen is None:
            return None
        if hasattr(seen, "fallbacks"):
            return [str(f) for f in seen.fallbacks]
        seen = getattr(seen, "searcher", None)
    return None


def _finished(search_alg: Any) -> bool:
    """Whether the searcher ended the search itself (Fabolas' ``cost_budget`` spent: ``finished``),
    through Tune's wrappers."""
    seen = search_alg
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(getattr(seen, "finished", None), bool):
            return seen.finished
        seen = getattr(seen, "searcher", None)
    return False


def _interrupted(
    grid: Any,
    exp: Experiment,
    asked: int,
    folder: ExperimentFolder,
    started: float,
    searcher_finished: bool = False,
) -> bool:
    """Whether ``Tuner.fit`` returned early (Ctrl-C / SIGINT: Tune saves its state and returns): a trial
    still running or pending in the grid, or one that did not fail which Tune's last saved state has
    running or pending (Tune saves before it stops the running trials, which the grid then has as
    terminated: :func:`~raytune_opt.experiment.fits.saved_statuses`), or fewer trials than the fit
    asked for — unless the time budget is spent or the searcher ended the search."""
    from raytune_opt.experiment.fits import saved_statuses

    trials = _compat.result_grid_trials(grid)
    if any(t.status in ("RUNNING", "PENDING") for t in trials):
        return True
    left = _budget_left(exp, started)
    if left is not None and left <= 0:
        return False
    saved = saved_statuses(folder)
    stopped = any(t.status != "ERROR" and saved.get(t.trial_id) in ("RUNNING", "PENDING") for t in trials)
    return stopped or (not searcher_finished and len(trials) < asked)


def _budget_left(exp: Experiment, started: float) -> float | None:
    """The seconds of ``search.time_budget_s`` left since the run started (``None``: no budget)."""
    budget = exp.search.time_budget_s if exp.search else None
    return None if budget is None else budget - (time.time() - started)


def _best(grid: Any, metric: str, mode: str) -> tuple[float, float, Any] | None:
    """The fit's best trial by its best report (``scope="all"``, as the live line and the report
    count): ``(score, value, Result)``, the score the greater the better; ``None`` when no trial
    reported a finite ``metric``."""
    try:
        best = grid.get_best_result(metric=metric, mode=mode, scope="all", filter_nan_and_inf=True)
        history = best.metrics_dataframe[metric]
        value = float(history.max() if mode == "max" else history.min())
    except (RuntimeError, KeyError, TypeError, AttributeError):
        return None
    if not math.isfinite(value):
        return None
    return (value if mode == "max" else -value), value, best


def _print_best(
    best: tuple[float, float, Any] | None,
    metric: str,
    path: str,
    files: Mapping[str, Path],
    searched: list[str],
) -> None:
    """The best trial (:func:`_best`, over every fit) and the files written."""
    if best is None:
        print(f"no trial reported a finite {metric}; results in {path}", flush=True)
        return
    _, value, best = best
    name = best.config.get("optimizer")
    shown_keys = {
        k: v
        for k, v in best.config.items()
        if k in searched and v is not None and (not name or keys.owner(k) in (None, name))
    }
    shown = f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else value
    print(f"best {metric} = {shown}", flush=True)
    print(f"best config: {json.dumps(shown_keys, default=str)}", flush=True)
    print(f"results: {path}", flush=True)
    for file_name, file in files.items():
        print(f"  {file_name}: {file}", flush=True)


def load_experiment(path: str | Path, *, address: str | None = None) -> Experiment:
    """The :class:`Experiment` that ran in ``path`` (a folder or a URI, from its ``experiment.json``),
    to run where the folder is now (it may have been copied off a cluster), on ``address`` if given."""
    folder = ExperimentFolder.at(path)
    text = folder.read_text(EXPERIMENT_FILE)
    if text is None:
        raise ConfigError.invalid(
            "experiment directory",
            folder.path,
            f"a folder written by raytune-opt run (with {EXPERIMENT_FILE})",
        )
    raw = json.loads(text)["experiment"]
    raw["name"] = folder.name
    raw.setdefault("run", {})["storage_path"] = folder.storage_path
    if address is not None:
        raw["run"]["address"] = address
    return Experiment.from_dict(raw, source=f"{folder.path}/{EXPERIMENT_FILE}")


def resume_experiment(
    path: str | Path,
    *,
    address: str | None = None,
    num_samples: int | None = None,
    progress: bool = True,
    report: bool = True,
) -> ExperimentResult:
    """Continue an interrupted experiment (driver killed, Ctrl-C, cluster restart) with
    ``Tuner.restore``: finished trials are kept; unfinished and errored ones resume from their last
    checkpoints; the searcher and the scheduler (Hyperband/BOHB brackets, ASHA rungs, the PBT/PB2
    population) go on from their saved state.

    ``num_samples`` grows the experiment (a finished one too): the same search continues up to
    ``num_samples`` trials in all, the searcher keeping its history (its observations, its
    sequence's position, its random streams) and the scheduler its brackets / rungs, as if the run
    had been planned with that budget (:class:`~raytune_opt.search._searcher.GrownSearch`; Ray's
    ``Tuner.restore`` keeps the old total). A :class:`ConfigError` before Ray starts when
    ``num_samples`` is below the trials the experiment created, for a comparison
    (``search.compare``: ``widen`` searches on there), an experiment without a search, a strategy
    whose budget is fixed at the start (``grid``, ``pbt``, ``pb2``, ``fabolas``:
    ``Strategy.fixed_budget``) or a Ray Client address (``ray://``)."""
    exp = load_experiment(path, address=address)
    if num_samples is None:
        return run_experiment(exp, progress=progress, report=report, _restore=True)
    return run_experiment(
        _grown(exp, num_samples), progress=progress, report=report, _restore=True, _grow=True
    )


def _grown(exp: Experiment, num_samples: int) -> Experiment:
    """``exp`` with ``search.num_samples = num_samples``, checked for growing (see
    :func:`resume_experiment`)."""
    from raytune_opt.search import STRATEGIES

    field = "--num-samples"
    if exp.search is None:
        raise ConfigError.invalid(field, num_samples, "an experiment with a search section")
    if exp.search.compare is not None:
        raise ConfigError.invalid(
            field,
            num_samples,
            "a single search, not a comparison (search.compare; `raytune-opt widen` searches on there)",
        )
    reason = STRATEGIES[exp.search.strategy].fixed_budget
    if reason:
        raise ConfigError.invalid(
            field, num_samples, f"a strategy whose budget can grow; {exp.search.strategy!r}: {reason}"
        )
    if str(exp.run_.address or "").startswith("ray://"):
        raise ConfigError.invalid(
            field,
            num_samples,
            f"a driver on the cluster (--address auto or host:port), not {exp.run_.address}",
        )
    folder = ExperimentFolder(exp.run_.storage_path, exp.name)
    created = _created_trials(folder)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < created:
        raise ConfigError.invalid(
            field, num_samples, f"at least the {created} trials {folder.path} already created"
        )
    raw = exp.to_dict()
    raw["search"]["num_samples"] = num_samples
    return Experiment.from_dict(raw, source=f"{folder.path}/{EXPERIMENT_FILE}")


def _created_trials(folder: ExperimentFolder) -> int:
    """How many trials Tune's saved states have (the trials the search created before it was saved,
    over every fit: :mod:`raytune_opt.experiment.fits`; 0 when Tune saved none: the run starts over)."""
    from raytune_opt.experiment.fits import trial_states

    return len(trial_states(folder))


def _saved_total(folder: ExperimentFolder) -> int | None:
    """The ``num_samples`` the experiment ran with before this resume (``experiment.json``)."""
    return json.loads(folder.read_text(EXPERIMENT_FILE) or "{}").get("num_samples")


def _grow_search(tuner: Any, num_samples: int) -> None:
    """Makes the restored ``tuner`` create trials up to ``num_samples``: its searcher wrapped as
    ``tune.run`` would (``ConcurrencyLimiter`` for ``max_concurrent_trials``, then the generator),
    the generator a :class:`~raytune_opt.search._searcher.GrownSearch`."""
    from ray.tune.search import ConcurrencyLimiter, Searcher

    from raytune_opt.search._searcher import GrownSearch

    tune_config = _compat.restored_tune_config(tuner)
    searcher = None if tune_config is None else tune_config.search_alg
    if not isinstance(searcher, Searcher):
        raise ConfigError.invalid(
            "--num-samples", num_samples, f"a restored Tuner whose search is a Searcher, not {searcher!r}"
        )
    if tune_config.max_concurrent_trials:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=tune_config.max_concurrent_trials)
        tune_config.max_concurrent_trials = None
    tune_config.search_alg = GrownSearch(searcher, num_samples)
    tune_config.num_samples = num_samples
