"""An experiment, described once (YAML or Python), validated up front, run on a local Ray or a cluster.

    >>> from raytune_opt import Experiment
    >>> exp = Experiment.from_yaml("examples/quickstart.yaml", overrides=["search.num_samples=8"])
    >>> print(exp.plan())                       # what would run; starts nothing
    >>> result = exp.run()                      # Tuner.fit on the local Ray (or run.address)
    >>> resume_experiment(result.path)          # after a crash, Ctrl-C or a cluster restart

The description (every key optional except ``name`` and ``task``; unknown keys are errors)::

    name: quickstart
    imports: [my_tasks.py]            # optional: modules that register_task() your own tasks
    task: mnist1d-mlp                 # or {name: mnist1d-mlp, args: {hidden: 64}}
    train: {epochs: 9, batch_size: 128, schedule: constant, checkpoint_every: 1, checkpoint_at_end: true,
            seed: 0}                  # checkpoint_every 0 + checkpoint_at_end false: no checkpoints
    optimizer: {name: adamw, lr: 1.0e-3}          # a fixed optimizer, or ...
    search:
      strategy: bohb                  # raytune_opt.search.strategies()
      optimizers: [adamw, lion]       # ... the optimizer-aware space (each one's own ranges)
      space: {batch_size: {choice: [64, 128]}}    # SearchSpace syntax; train keys or hyperparameters
      num_samples: 24
      metric: val_accuracy            # default: the task's metric; mode from it
      max_t: 9                        # default: train.epochs
      options: {}                     # the strategy's own options
      time_budget_s: null
    resources: {num_workers: 1, use_gpu: false, cpus_per_worker: 1, gpus_per_worker: null,
                max_concurrent_trials: null}
    run: {storage_path: results, max_failures: 1, address: null, tensorboard: false, keep_checkpoints: null}

Without a ``search`` section the experiment is one trial of the fixed configuration.

Every error is one :class:`~raytune_opt.errors.ConfigError` line that says where: the file and line,
the key path, the bad value, what is allowed (and a did-you-mean for near-miss names).

The experiment directory is ``<run.storage_path>/<name>``: Ray Tune's own layout, plus
``experiment.json`` (this description and the run's times, for ``resume`` and the report) and,
at the end, the report of :mod:`raytune_opt.report` (``summary.json``, ``trials.csv``, plots).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raytune_opt.errors import ConfigError, did_you_mean
from raytune_opt.storage import ExperimentFolder

__all__ = [
    "Experiment",
    "ExperimentResult",
    "run_experiment",
    "resume_experiment",
    "load_experiment",
    "apply_overrides",
    "import_plugins",
    "connect",
    "EXPERIMENT_FILE",
]

#: the runner's own file in the experiment directory (see :func:`run_experiment`)
EXPERIMENT_FILE = "experiment.json"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskSection(_Section):
    """``task``: a name from ``raytune_opt.tasks.available_tasks()`` and the task function's arguments."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class TrainSection(_Section):
    """``train``: the loop's settings (``raytune_opt.train.DEFAULTS``), fixed for every trial."""

    epochs: int = 10
    batch_size: int | Literal["full"] = 64
    schedule: str = "constant"
    checkpoint_every: int = 1
    checkpoint_at_end: bool = True
    seed: int = 0
    data_fraction: float = 1.0
    data_seed: int = 0
    grad_clip: float | None = None
    warmup_epochs: float = 1.0
    step_epochs: int = 10
    step_gamma: float = 0.1
    pct_start: float = 0.3
    precision: Literal["fp32", "bf16"] = "fp32"
    eval_batch_size: int = 4096


class OptimizerSection(BaseModel):
    """``optimizer``: a fixed optimizer, ``name`` plus its hyperparameters (``lr``, ``betas`` ...)."""

    model_config = ConfigDict(extra="allow")
    name: str

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SearchSection(_Section):
    """``search``: the strategy, its space and budget (``raytune_opt.search.make_tune_config``)."""

    strategy: str
    space: dict[str, Any] = Field(default_factory=dict)
    optimizers: list[str] | None = None
    num_samples: int | None = None  # default: 10 (grid: 1 pass over the grid)
    metric: str | None = None
    mode: Literal["min", "max"] | None = None
    max_t: int | None = None
    grace_period: int = 1
    reduction_factor: float = 3
    seed: int | None = 0
    options: dict[str, Any] = Field(default_factory=dict)
    time_budget_s: float | None = None


class ResourcesSection(_Section):
    """``resources``: workers per trial (DDP when > 1 or on GPUs) and how many trials at once."""

    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1, ge=0)
    gpus_per_worker: float | None = Field(None, ge=0)
    max_concurrent_trials: int | None = Field(None, ge=1)


class RunSection(_Section):
    """``run``: where results go, how often a failed trial is retried, which Ray to join."""

    storage_path: str = "results"
    max_failures: int = Field(1, ge=-1)
    address: str | None = None
    #: also write TensorBoard event files per trial (Tune's TBXLoggerCallback); off by default: the
    #: report, result.json and progress.csv hold the same numbers, and the events cost ~5 ms a trial
    tensorboard: bool = False
    #: checkpoints kept per trial; None keeps all. With n, Tune deletes a trial's oldest checkpoint when
    #: it registers the (n+1)-th and saves its experiment state only after that: a driver killed in
    #: between leaves a state that names a deleted checkpoint (that trial cannot resume), and a PBT/PB2
    #: clone may find its donor's checkpoint gone — keeping all is what makes resume and PBT exact
    keep_checkpoints: int | None = Field(None, ge=1)


class Experiment(_Section):
    """A validated experiment. Build it from YAML (:meth:`from_yaml`), a dict (:meth:`from_dict`) or
    keyword arguments (``Experiment(name=..., task="digits-mlp", search={...})``, checked the same way
    by :meth:`check`); then :meth:`plan` or :meth:`run`."""

    name: str
    imports: list[str] = Field(default_factory=list)
    task: TaskSection
    train: TrainSection = Field(default_factory=TrainSection)
    optimizer: OptimizerSection | None = None
    search: SearchSection | None = None
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    run_: RunSection = Field(default_factory=RunSection, alias="run")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "a folder name: letters, digits, '_', '.', '-' (starting with a letter or digit)"
            )
        return value

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
        """Read, apply ``--set``-style ``overrides`` (``"search.num_samples=8"``) and validate."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the experiment file ({e.strerror or e})") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{where}: not valid YAML: {problem}") from None
        return cls.from_dict(raw, source=str(path), text=text, overrides=overrides)

    @classmethod
    def from_dict(
        cls,
        raw: Any,
        *,
        source: str = "<experiment>",
        text: str | None = None,
        overrides: Sequence[str] = (),
    ) -> Experiment:
        """Validate a plain dict (as loaded from YAML); errors name ``source`` and the key path."""
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{source}: the experiment must be a mapping of sections (name, task, train, optimizer, "
                f"search, resources, run), got {type(raw).__name__}"
            )
        raw = apply_overrides(raw, overrides, source=source)
        lines = _key_lines(text) if text is not None and not overrides else {}
        base = Path(source).parent if Path(source).is_file() else Path.cwd()
        import_plugins(raw.get("imports") or [], base=base, where=source)
        try:
            exp = cls.model_validate(raw)
        except ValidationError as e:
            raise _config_error(e, source, lines) from None
        exp._source, exp._lines = source, lines
        exp.check()
        return exp

    # ------------------------------------------------------------------ derived
    def to_dict(self) -> dict[str, Any]:
        """The description as plain data (what ``experiment.json`` keeps, and ``from_dict`` reads):
        every field, defaults included, except a train default whose key the search space searches
        (written out, it would read back as that key fixed and searched at once)."""
        out = self.model_dump(by_alias=True, exclude_none=False)
        if self.search is not None:
            searched = set(self.space().to_tune())
            for key in searched & (set(out["train"]) - self.train.model_fields_set):
                del out["train"][key]
        return out

    @property
    def searched_optimizers(self) -> list[str]:
        """The optimizers compared: ``search.optimizers``, a searched ``optimizer`` key, or the fixed one."""
        if self.search is not None and self.search.optimizers:
            return list(self.search.optimizers)
        spec = (self.search.space if self.search else {}).get("optimizer")
        if isinstance(spec, Mapping):
            values = next(iter(spec.values()), None)
            if isinstance(values, list):
                return [str(v) for v in values]
        return [self.optimizer.name if self.optimizer else "adamw"]

    def metric_mode(self) -> tuple[str, str]:
        """The metric the search optimises and its mode (default: the task's own metric)."""
        from raytune_opt.tasks import get_task

        spec = get_task(self.task.name).build(**self.task.args)
        task_metric = f"val_{spec.metric.name}"
        modes = {"val_loss": "min", "train_loss": "min", task_metric: spec.metric.mode}
        metric = (self.search.metric if self.search else None) or task_metric
        if metric not in modes:
            raise self._error("search.metric", ConfigError.unknown("metric", metric, modes))
        mode = (self.search.mode if self.search else None) or modes[metric]
        return metric, mode

    def param_space(self) -> dict[str, Any]:
        """The fixed keys of every trial (what ``Tuner(param_space=...)`` gets): task, train, optimizer,
        resources — less the keys the search space searches (those come from the strategy's searcher) and
        the train keys left at ``raytune_opt.train.DEFAULTS``."""
        out: dict[str, Any] = {"task": self.task.name, "task_args": dict(self.task.args)}
        out.update(self.train.model_dump())
        if self.optimizer is not None:
            out["optimizer"] = self.optimizer.name
            out.update(self.optimizer.hparams)
        r = self.resources
        out["num_workers"] = r.num_workers
        out["use_gpu"] = r.use_gpu
        res: dict[str, float] = {"CPU": r.cpus_per_worker}
        if r.gpus_per_worker is not None:
            res["GPU"] = r.gpus_per_worker
        out["resources_per_worker"] = None if res == {"CPU": 1} else res
        from raytune_opt.train import DEFAULTS

        searched = {p.name for p in self.space()} if self.search is not None else set()
        # a key at the loop's default stays out: every trial's config (logged with each report) stays short
        keep = {"task", "epochs", "optimizer"}
        return {
            k: v
            for k, v in out.items()
            if k not in searched and (k in keep or k not in DEFAULTS or DEFAULTS[k] != v)
        }

    def space(self) -> Any:
        """The :class:`~raytune_opt.search.SearchSpace` of ``search`` (``optimizers`` expanded into the
        optimizer-aware space, ``space`` entries added or overriding its ranges); ``None`` without search."""
        from raytune_opt.search import Param, SearchSpace

        if self.search is None:
            return None
        user = SearchSpace(self.search.space) if self.search.space else None
        if not self.search.optimizers:
            return user
        base = SearchSpace.for_optimizers(self.search.optimizers)
        if user is None:
            return base
        mine = {p.name: p for p in user}
        params = []
        for p in base:
            q = mine.pop(p.name, None)
            params.append(p if q is None else Param(q.name, q.domain, q.when or p.when))
        return SearchSpace([*params, *mine.values()])

    def tune_config(self, trainable: Any = None) -> Any:
        """The ``ray.tune.TuneConfig`` (one trial of the fixed configuration without ``search``)."""
        from ray import tune

        from raytune_opt.search import make_tune_config

        metric, mode = self.metric_mode()
        max_conc = self.resources.max_concurrent_trials
        if self.search is None:
            return tune.TuneConfig(metric=metric, mode=mode, num_samples=1, max_concurrent_trials=max_conc)
        s = self.search
        options = dict(s.options)
        if s.time_budget_s is not None:
            options["time_budget_s"] = s.time_budget_s
        if trainable is not None:
            options["trainable"] = trainable
        if self._distributed:
            options.setdefault("reuse_actors", False)
        with self._at("search"):
            config = make_tune_config(
                s.strategy,
                self.space(),
                metric=metric,
                mode=mode,
                num_samples=self.num_samples,
                max_t=s.max_t if s.max_t is not None else self.train.epochs,
                grace_period=s.grace_period,
                reduction_factor=s.reduction_factor,
                seed=s.seed,
                max_concurrent=max_conc,
                **options,
            )
        from ray.tune.search import BasicVariantGenerator

        if max_conc and isinstance(config.search_alg, BasicVariantGenerator):
            # Tune caps concurrency by wrapping a Searcher; a variant generator (grid, PBT's
            # population) ignores TuneConfig.max_concurrent_trials and takes its own cap
            config.search_alg.max_concurrent = max_conc
        return config

    @property
    def num_samples(self) -> int:
        """``search.num_samples``, default 10 (for ``grid``: 1, the number of passes over the grid)."""
        if self.search is None:
            return 1
        if self.search.num_samples is not None:
            return self.search.num_samples
        return 1 if self.search.strategy == "grid" else 10

    @property
    def _distributed(self) -> bool:
        return self.resources.num_workers > 1 or self.resources.use_gpu

    # ------------------------------------------------------------------ checks
    def check(self) -> Experiment:
        """Every semantic check, before Ray starts: names (task, optimizers, strategy, metric), the
        optimizer's hyperparameters, the train settings, the search space and the strategy's options."""
        from raytune_opt import optim
        from raytune_opt.search import strategies
        from raytune_opt.tasks import available_tasks, get_task
        from raytune_opt.train import validate, validate_space

        if self.task.name not in available_tasks():
            raise self._error("task.name", ConfigError.unknown("task", self.task.name, available_tasks()))
        with self._at("task.args"):
            get_task(self.task.name).check_args(self.task.args)
        if self.optimizer is not None and self.optimizer.name not in optim.available():
            from raytune_opt.train.glm_solvers import GLM_METHODS

            if self.optimizer.name not in GLM_METHODS:
                choices = [*optim.available(), *GLM_METHODS]
                raise self._error(
                    "optimizer.name", ConfigError.unknown("optimizer", self.optimizer.name, choices)
                )
        s = self.search
        if s is not None:
            if s.strategy not in strategies():
                raise self._error(
                    "search.strategy", ConfigError.unknown("strategy", s.strategy, strategies())
                )
            for i, name in enumerate(s.optimizers or ()):
                if name not in optim.available():
                    raise self._error(
                        f"search.optimizers[{i}]", ConfigError.unknown("optimizer", name, optim.available())
                    )
            if s.optimizers is not None and not s.optimizers:
                raise self._error(
                    "search.optimizers", ConfigError.invalid("optimizers", [], "at least one name")
                )
            if s.optimizers and self.optimizer is not None:
                raise self._error(
                    "optimizer",
                    ConfigError.invalid(
                        "optimizer", self.optimizer.name, "no fixed optimizer when search.optimizers is given"
                    ),
                )
            with self._at("search.space"):
                if self.space() is None:
                    raise ConfigError.invalid(
                        "search.space", {}, "at least one searched parameter (or search.optimizers: [...])"
                    )
            no_checkpoints = self.train.checkpoint_every == 0 and not self.train.checkpoint_at_end
            if s.strategy in ("pbt", "pb2") and no_checkpoints:
                raise self._error(
                    "train.checkpoint_at_end",
                    ConfigError.invalid(
                        "checkpoint_at_end",
                        False,
                        f"True, or train.checkpoint_every > 0, with strategy {s.strategy!r} (it clones "
                        "trials from their checkpoints)",
                    ),
                )
            if s.max_t is not None and s.max_t > self.train.epochs:
                raise self._error(
                    "search.max_t",
                    ConfigError.invalid("max_t", s.max_t, f"at most train.epochs = {self.train.epochs}"),
                )
        self.metric_mode()
        fixed = self.param_space()
        with self._at("train" if self.optimizer is None else "optimizer"):
            validate(fixed)
        if s is not None:
            with self._at("search.space"):
                searched = self.space().to_tune()
                explicit = set(self.train.model_fields_set)
                if self.optimizer is not None:
                    explicit |= {"optimizer", *self.optimizer.hparams}
                clash = sorted(set(searched) & explicit)
                if clash:
                    raise ConfigError.invalid(
                        "search.space", clash, "keys that are not also fixed in train or optimizer"
                    )
                validate_space({**fixed, **searched})
        self.tune_config()
        return self

    _source: str = "<experiment>"
    _lines: dict[str, int] = {}

    def _where(self, path: str) -> str:
        lines = getattr(self, "_lines", {}) or {}
        key = path
        while key and key not in lines:
            key = key.rpartition(".")[0]
        line = lines.get(key)
        source = getattr(self, "_source", "<experiment>")
        return f"{source}:{line}" if line else source

    def _error(self, path: str, error: ConfigError) -> ConfigError:
        return ConfigError(f"{self._where(path)}: {path}: {error}")

    def _at(self, path: str) -> _Located:
        return _Located(self, path)

    # ------------------------------------------------------------------ running
    def plan(self) -> str:
        """What :meth:`run` would do, as text: strategy, space, trials, resources, where results go."""
        metric, mode = self.metric_mode()
        s = self.search
        lines = [f"experiment {self.name!r} on task {self.task.name!r}"]
        if s is None:
            opt = self.optimizer.name if self.optimizer else "adamw"
            lines.append(f"  one trial: {opt} {self.optimizer.hparams if self.optimizer else {}}")
        else:
            trials = self.tune_config().num_samples
            lines.append(
                f"  strategy {s.strategy}: {trials} trials, {metric} ({mode}), "
                f"max_t {s.max_t or self.train.epochs} epochs, seed {s.seed}"
                + (f", time budget {s.time_budget_s:g} s" if s.time_budget_s else "")
                + (f", options {s.options}" if s.options else "")
            )
            lines.append("  space:")
            lines += [f"    {p.name}: {_describe(p)}" for p in self.space()]
        fixed = self.param_space()
        shown = {k: fixed.get(k, "searched") for k in ("epochs", "batch_size", "schedule", "seed")}
        lines.append(
            f"  train: {shown['epochs']} epochs, batch {shown['batch_size']}, {shown['schedule']} schedule, "
            f"checkpoint every {self.train.checkpoint_every}, seed {shown['seed']}"
        )
        r = self.resources
        per = f"{r.cpus_per_worker:g} CPU" + (f" + {r.gpus_per_worker or 1:g} GPU" if r.use_gpu else "")
        lines.append(
            f"  resources: {r.num_workers} worker(s) per trial ({per} each), "
            f"at most {r.max_concurrent_trials or 'as many as fit'} trials at once"
        )
        lines.append(
            f"  run: results in {Path(self.run_.storage_path) / self.name}, "
            f"max_failures {self.run_.max_failures}, Ray {self.run_.address or 'local'}"
        )
        return "\n".join(lines)

    def run(self, *, progress: bool = True, report: bool = True) -> ExperimentResult:
        """Run it: :func:`run_experiment`."""
        return run_experiment(self, progress=progress, report=report)


class _Located:
    """``with exp._at("search"):`` — a ConfigError raised inside gets the file, line and key path."""

    def __init__(self, exp: Experiment, path: str) -> None:
        self.exp, self.path = exp, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, tb: Any) -> bool:
        if isinstance(error, ConfigError) and not str(error).startswith(self.exp._where(self.path) + ":"):
            raise self.exp._error(self.path, error) from None
        return False


def _describe(p: Any) -> str:
    """``loguniform [1e-05, 0.001] when optimizer in [lion]``: one search-space entry, for the plan."""
    from raytune_opt.search import Choice, Fixed, Float, Int

    d = p.domain
    if isinstance(d, Fixed):
        text = repr(d.value)
    elif isinstance(d, Choice):
        text = ("grid " if d.grid else "choice ") + " | ".join(str(v) for v in d.values)
    elif isinstance(d, (Float, Int)):
        kind = ("log" if d.log else "") + ("int" if isinstance(d, Int) else "uniform")
        text = f"{kind} [{d.low:g}, {d.high:g}]"
    else:
        text = repr(d)
    if p.when is not None:
        text += f"  (when {p.when[0]} in {', '.join(map(str, p.when[1]))})"
    return text


# ---------------------------------------------------------------------- YAML helpers
def apply_overrides(
    raw: Mapping[str, Any], overrides: Iterable[str], *, source: str = "--set"
) -> dict[str, Any]:
    """``["search.num_samples=8", "train.epochs=3"]`` applied to a copy of ``raw``; values parse as YAML
    (``=8`` is an int, ``=[adamw, lion]`` a list, ``=null`` None)."""
    out = json.loads(json.dumps(raw, default=str)) if raw else {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError.invalid("--set", item, "key.path=value, e.g. search.num_samples=8")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError.invalid(
                f"--set {key}", text, "a YAML value (number, string, list, mapping)"
            ) from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError.invalid(f"--set {key}", item, f"{part!r} holds {child!r}, not a section")
            node = child
        node[parts[-1]] = value
    return out


def import_plugins(entries: Any, *, base: Path, where: str = "imports") -> None:
    """Import the experiment's ``imports``: Python files (relative to the YAML's folder) or module names,
    so that their ``register_task`` / ``register`` calls run before validation. Their code is pickled
    by value, so the tasks reach Ray workers on other nodes too."""
    import importlib
    import importlib.util
    import sys

    from ray import cloudpickle  # Ray pickles trainables with its own copy of cloudpickle

    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ConfigError(
            f"{where}: imports = {entries!r} is not allowed: expected a list of files or module names"
        )
    for i, entry in enumerate(entries):
        try:
            if entry.endswith(".py"):
                file = (base / entry).resolve()
                name = f"raytune_opt_imports_{file.stem}_{abs(hash(str(file))) % 10**8}"
                if name not in sys.modules:
                    spec = importlib.util.spec_from_file_location(name, file)
                    if spec is None or spec.loader is None or not file.is_file():
                        raise FileNotFoundError(f"no such file {file}")
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    spec.loader.exec_module(module)
                module = sys.modules[name]
            else:
                module = importlib.import_module(entry)
        except ConfigError:
            raise
        except Exception as e:  # the user's code: any error, reported in one line
            raise ConfigError(
                f"{where}: imports[{i}] = {entry!r} cannot be imported: {type(e).__name__}: {e}"
            ) from None
        cloudpickle.register_pickle_by_value(module)


def _key_lines(text: str) -> dict[str, int]:
    """``{"search.strategy": 7, ...}``: the line of every mapping key of a YAML document (1-based)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                path = f"{prefix}.{k.value}" if prefix else str(k.value)
                out[path] = k.start_mark.line + 1
                walk(v, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out[f"{prefix}[{i}]"] = v.start_mark.line + 1
                walk(v, f"{prefix}[{i}]")

    walk(root, "")
    return out


_UNION_TAG = re.compile(
    r"^(int|float|str|bool|none|list\[.*\]|dict\[.*\]|literal\[.*\]|function-.*|.*-.*\[.*\])$"
)

_SECTIONS: dict[str, type[BaseModel]] = {
    "": Experiment,
    "task": TaskSection,
    "train": TrainSection,
    "search": SearchSection,
    "resources": ResourcesSection,
    "run": RunSection,
}


def _config_error(e: ValidationError, source: str, lines: Mapping[str, int]) -> ConfigError:
    """The first pydantic error as one ConfigError line: where, key path, value, what is allowed."""
    errors = e.errors()
    err = errors[0]

    def clean(loc: tuple) -> list[str]:  # drop pydantic's union-member tags (int, literal['full'], ...)
        return [str(x) for x in loc if not _UNION_TAG.match(str(x))]

    loc = clean(err["loc"])
    same = [x for x in errors if clean(x["loc"]) == loc and x["type"] != "extra_forbidden"]
    path = ".".join(p for p in loc if not p.isdigit())
    path = "run" if path == "run_" else path.replace("run_.", "run.")
    key = path
    while key and key not in lines:
        key = key.rpartition(".")[0]
    where = f"{source}:{lines[key]}" if key in lines else source
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, _, name = path.rpartition(".")
        model = _SECTIONS.get(parent)
        allowed = [f.alias or n for n, f in model.model_fields.items()] if model else []
        hint = did_you_mean(name, allowed)
        return ConfigError(f"{where}: {path} is not a known key{hint}; allowed: {', '.join(allowed)}")
    if kind == "missing":
        return ConfigError(f"{where}: {path} is required")
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    msgs = []
    for x in same or [err]:
        m = x["msg"].replace("\n", " ")
        m = m[len("Value error, ") :] if m.startswith("Value error, ") else m
        if m not in msgs:
            msgs.append(m)
    msg = " or ".join(msgs)
    return ConfigError(f"{where}: {path} = {shown} is not allowed: {msg}")


# ---------------------------------------------------------------------- running
@dataclass
class ExperimentResult:
    """What a run left behind: its directory (local, or the local mirror of a remote one), Ray's
    ``ResultGrid``, the summary and the report's files."""

    path: Path
    grid: Any
    summary: dict[str, Any]
    files: dict[str, Path]
    interrupted: bool = False


def _folder(exp: Experiment) -> ExperimentFolder:
    return ExperimentFolder(exp.run_.storage_path, exp.name)


def _write_state(folder: ExperimentFolder, exp: Experiment, **times: Any) -> None:
    metric, mode = exp.metric_mode()
    text = folder.read_text(EXPERIMENT_FILE)
    state = json.loads(text) if text else {}
    state.update(
        {
            "name": exp.name,
            "strategy": exp.search.strategy if exp.search else None,
            "metric": metric,
            "mode": mode,
            "optimizers": exp.searched_optimizers,
            "optimizer_searched": len(exp.searched_optimizers) > 1,
            "num_samples": exp.num_samples,
            "max_t": (exp.search.max_t or exp.train.epochs) if exp.search else exp.train.epochs,
            "experiment": exp.to_dict(),
        }
    )
    state.setdefault("started_at", time.time())
    state.setdefault("finished_at", None)
    state.setdefault("wall_s", None)
    state.update(times)
    folder.write_text(EXPERIMENT_FILE, json.dumps(state, indent=2, default=str))


#: what every worker process of a local Ray imports while it waits for work: a trial's first step then
#: does not pay torch's import (seconds) on the critical path
PRELOAD = ["torch", "raytune_opt.train.loop"]


def connect(address: str | None = None, progress: bool = True) -> None:
    """Join ``address`` (``auto``, ``ray://host:10001``) or start a local Ray (its workers preloading
    :data:`PRELOAD`), unless this process already joined one; print the dashboard's URL."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ctx = ray.init(address=address, log_to_driver=False)
    else:
        ctx = ray.init(
            num_cpus=os.cpu_count(),
            log_to_driver=False,
            _system_config={"preload_python_modules": PRELOAD},
        )
    url = getattr(ctx, "dashboard_url", None)
    if progress and url:
        print(f"Ray dashboard: http://{url}", flush=True)


def run_experiment(
    exp: Experiment, *, progress: bool = True, report: bool = True, _restore: bool = False
) -> ExperimentResult:
    """Run ``exp`` with ``ray.tune.Tuner`` on ``run.address`` (default: a local Ray, or the one this
    process already joined), write the report, and return where everything is.

    Prints the dashboard URL, a live status line (:class:`raytune_opt.progress.LiveStatus`)
    while trials run, and at the end the best configuration, its metric and the files written.
    A failed trial (exception, crashed worker) is retried ``run.max_failures`` times from its last
    checkpoint, then recorded as failed; a diverged one (NaN loss) is recorded as such; either way
    the experiment goes on.
    """
    from ray import tune

    from raytune_opt import trial_logs
    from raytune_opt.train import trainable

    exp.check()
    folder = _folder(exp)
    if not _restore and folder.exists():
        base, n = exp.name, 2  # never mix two runs in one folder: quickstart, quickstart-2, ...
        while folder.renamed(f"{base}-{n}").exists():
            n += 1
        exp.name = f"{base}-{n}"
        if progress:
            print(f"{folder.path} exists (`raytune-opt resume` continues it): this run goes to {exp.name}")
        folder = _folder(exp)
    fixed = exp.param_space()
    fn = trainable({**fixed, **(exp.space().to_tune() if exp.search else {})})
    tune_config = exp.tune_config(trainable=fn)
    metric, mode = tune_config.metric, tune_config.mode
    # with run.keep_checkpoints = n, Tune forces a state snapshot after every n checkpoints of a trial;
    # Ray's warning about their frequency is noise for short epochs
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    connect(exp.run_.address, progress)
    _write_state(folder, exp)
    started = time.time()
    callbacks = []
    if progress:
        from raytune_opt.progress import LiveStatus

        searched = [p.name for p in exp.space()] if exp.search else ["optimizer"]
        callbacks.append(LiveStatus(metric, mode, total=tune_config.num_samples, searched=searched))
    callbacks += trial_logs.loggers(exp.run_.tensorboard)
    run_config = tune.RunConfig(
        name=exp.name,
        storage_path=folder.storage_path,
        failure_config=tune.FailureConfig(max_failures=exp.run_.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=exp.run_.keep_checkpoints),
        callbacks=callbacks,
        verbose=0,
    )
    if _restore:
        tuner = tune.Tuner.restore(
            folder.path, trainable=fn, param_space=fixed, resume_unfinished=True, resume_errored=True
        )
    else:
        tuner = tune.Tuner(fn, param_space=fixed, tune_config=tune_config, run_config=run_config)
    with _only_given_loggers():
        grid = tuner.fit()
    interrupted = _interrupted(grid, exp)
    state = json.loads(folder.read_text(EXPERIMENT_FILE) or "{}")
    wall = (state.get("wall_s") or 0.0) + time.time() - started
    _write_state(folder, exp, finished_at=None if interrupted else time.time(), wall_s=wall)
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
    if progress:
        searched = [p.name for p in exp.space()] if exp.search else list(fixed)
        _print_best(grid, metric, mode, folder.path, files, searched)
        if interrupted:
            print(f"interrupted: `raytune-opt resume {folder.path}` continues where it stopped", flush=True)
    return ExperimentResult(path, grid, summary, files, interrupted)


@contextlib.contextmanager
def _only_given_loggers() -> Iterator[None]:
    """While Tune builds its callbacks, stop it adding the loggers the run did not ask for."""
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _interrupted(grid: Any, exp: Experiment) -> bool:
    """Whether ``Tuner.fit`` returned early (Ctrl-C / SIGINT: Tune saves its state and returns): a trial
    still running or pending, or fewer trials than the budget (unless a time budget ended the run)."""
    trials = getattr(grid._experiment_analysis, "trials", None) or []
    if any(t.status in ("RUNNING", "PENDING") for t in trials):
        return True
    budget = exp.search.time_budget_s if exp.search else None
    return budget is None and len(trials) < exp.tune_config().num_samples


def _print_best(
    grid: Any, metric: str, mode: str, path: str, files: Mapping[str, Path], searched: list[str]
) -> None:
    """The best trial by its best report (``scope="all"``, as the live line and the report count)."""
    try:
        best = grid.get_best_result(metric=metric, mode=mode, scope="all", filter_nan_and_inf=True)
        history = best.metrics_dataframe[metric]
        value = float(history.max() if mode == "max" else history.min())
    except (RuntimeError, KeyError, TypeError, AttributeError):
        print(f"no trial reported a finite {metric}; results in {path}", flush=True)
        return
    name = best.config.get("optimizer")
    keys = {
        k: v
        for k, v in best.config.items()
        if k in searched and v is not None and (not name or "." not in k or k.startswith(f"{name}."))
    }
    shown = f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else value
    print(f"best {metric} = {shown}", flush=True)
    print(f"best config: {json.dumps(keys, default=str)}", flush=True)
    print(f"results: {path}", flush=True)
    for name, file in files.items():
        print(f"  {name}: {file}", flush=True)


def load_experiment(path: str | Path) -> Experiment:
    """The :class:`Experiment` that ran in ``path`` (a folder or a URI, from its ``experiment.json``)."""
    folder = ExperimentFolder.at(path)
    text = folder.read_text(EXPERIMENT_FILE)
    if text is None:
        raise ConfigError.invalid(
            "experiment directory",
            folder.path,
            f"a folder written by raytune-opt run (with {EXPERIMENT_FILE})",
        )
    state = json.loads(text)
    exp = Experiment.from_dict(state["experiment"], source=f"{folder.path}/{EXPERIMENT_FILE}")
    # the folder may have moved (copied off a cluster): run where it is now
    exp.run_.storage_path = folder.storage_path
    exp.name = folder.name
    return exp


def resume_experiment(
    path: str | Path, *, address: str | None = None, progress: bool = True, report: bool = True
) -> ExperimentResult:
    """Continue an interrupted experiment (driver killed, Ctrl-C, cluster restart) with
    ``Tuner.restore``: finished trials are kept; unfinished and errored ones resume from their last
    checkpoints."""
    exp = load_experiment(path)
    if address is not None:
        exp.run_.address = address
    return run_experiment(exp, progress=progress, report=report, _restore=True)
