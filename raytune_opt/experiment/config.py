"""The experiment description: its sections, validated as data, with errors located in the YAML.

    name: quickstart
    imports: [my_tasks.py]            # optional: modules that register_task() your own tasks
    task: mnist1d-mlp                 # or {name: mnist1d-mlp, args: {hidden: 64}}
    train: {epochs: 9, batch_size: 128, schedule: constant, checkpoint_every: 1, checkpoint_at_end: true,
            seed: 0}                  # raytune_opt.train.TrainSettings; checkpoint_every 0 +
                                      # checkpoint_at_end false: no checkpoints
    # optimizer: {name: adamw, lr: 1e-3}          # a fixed optimizer, or (not both) ...
    search:
      strategy: bohb                  # raytune-opt list strategies
      optimizers: [adamw, lion]       # ... the optimizer-aware space (each one's own ranges)
      space: {adamw.lr: {loguniform: [1e-4, 1e-2]}}   # SearchSpace syntax: train keys (not also
                                      # fixed in train) or hyperparameters, adding or overriding ranges
      num_samples: 24
      metric: val_accuracy            # default: the task's metric; mode from it. Several objectives:
                                      # [val_accuracy, time_total_s] with mode: [max, min] (the
                                      # report's Pareto front; optuna-nsga2, optuna-tpe, random, grid)
      max_t: 9                        # default: train.epochs
      options: {}                     # the strategy's own options
      time_budget_s: null
      compare: null                   # optimizers: one search per optimizer, then a test over seeds
      compare_seeds: 5                # ... each one's best configuration retrained over 5 seeds
      compare_repeats: 1              # ... each optimizer's search run this many times (search seeds
                                      # the replicates of the intervals and tests when 2 or more)
      compare_widen: 0                # rounds: a range whose best sits at its edge widened, searched on
    resources: {num_workers: 1, use_gpu: false, cpus_per_worker: 1, gpus_per_worker: null,
                max_concurrent_trials: null, strategy: ddp}   # fsdp: parameters sharded over workers
    run: {storage_path: results, max_failures: 1, address: null, tensorboard: false, keep_checkpoints: null,
          callbacks: [],              # e.g. [{mlflow: {}}, {wandb: {mode: offline}}]: Ray's logger callbacks
          optuna_journal: false,      # true: <folder>/optuna.journal for optuna-dashboard, updated live
          trials_per_fit: 2000}       # a longer search runs as several Tuner.fits (driver memory)

``search.compare: optimizers`` makes the experiment a comparison (the protocol of Schmidt et al. 2021,
"Descending through a crowded valley", and DeepOBS, Schneider et al. 2019: tune each optimizer with
the same budget, then rerun its best setting over seeds and compare on held-out data). Each optimizer
of ``search.optimizers`` (at least two) gets its own search, a sub-experiment folder
``<name>/<optimizer>/`` with the same strategy, ``num_samples``, ``max_t`` and search seed (an equal
budget; ``search.space`` entries of other optimizers left out); then each one's best configuration
is retrained from scratch over ``compare_seeds`` train seeds (0 … k-1, at least 2) for its full
epochs and evaluated once on the task's test split (:mod:`raytune_opt.experiment.evaluate`). The
report ranks the optimizers by mean test metric with 95 % Student's t intervals, marks the pairs
whose difference is significant (Welch's t-test, Holm-corrected) and draws every optimizer's tuning
curve (best validation value so far vs trials) on one figure (:mod:`raytune_opt.report.comparison`).
With ``compare_repeats: r`` (2 or more) each optimizer's search runs r times, each time with other
search and train seeds (folders ``<optimizer>-search<j>/``), and the replicates of the intervals and
tests are the searches: each one's value is its best configuration's mean test metric over its
``compare_seeds`` seeds (then 1 is allowed: the best trial's own final checkpoint). The intervals
then cover what the choice of configuration varies, not only the retraining (Bouthillier et al.
2021, "Accounting for variance in machine learning benchmarks").
With ``compare_widen: n`` it then widens, up to n times, every range whose best value sits at its
edge (10× in log space, clamped to the registry's hard bounds), runs ``num_samples`` more trials of
that optimizer's search into its folder and retests it (:mod:`raytune_opt.experiment.compare`).

Every key is optional except ``name`` and ``task``; unknown keys are errors. Without a ``search``
section the experiment is one trial of the fixed configuration. This module checks the description as
data (types, names of keys); :mod:`raytune_opt.experiment.plan` checks what it means (task, optimizer
and strategy names, the space, the strategy's options) while it builds the plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from raytune_opt.errors import ConfigError
from raytune_opt.experiment.plugins import import_plugins
from raytune_opt.experiment.source import apply_overrides, config_error, key_lines, read_yaml, where
from raytune_opt.train.config import DataSettings, Float, TrainSettings

if TYPE_CHECKING:
    from raytune_opt.experiment.plan import Plan
    from raytune_opt.experiment.run import ExperimentResult

__all__ = [
    "Experiment",
    "TaskSection",
    "OptimizerSection",
    "SearchSection",
    "ResourcesSection",
    "RunSection",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: the longest experiment name (a folder; trial folders add their own names below it)
MAX_NAME = 100
#: the most trials one experiment may ask for (grid: num_samples passes over the grid)
MAX_TRIALS = 100_000


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
    num_samples: int | None = Field(None, ge=1, le=MAX_TRIALS)  # default: 10 (grid: 1 pass over the grid)
    #: one metric, or a list of them (several objectives, with a list of as many modes: the report
    #: gives their Pareto front; strategies optuna-nsga2, optuna-tpe, random, grid)
    metric: str | list[str] | None = None
    mode: Literal["min", "max"] | list[Literal["min", "max"]] | None = None
    max_t: int | None = Field(None, ge=1)
    grace_period: int = 1
    reduction_factor: float = 3
    seed: int | None = 0
    options: dict[str, Any] = Field(default_factory=dict)
    time_budget_s: float | None = Field(None, gt=0.0)
    #: "optimizers": one search per optimizer of ``optimizers``, then each best retrained over seeds
    #: and tested (:mod:`raytune_opt.experiment.compare`); None: one search over all of them
    compare: Literal["optimizers"] | None = None
    #: the train seeds each search's best configuration is retrained over (a comparison only; 1
    #: only with compare_repeats of 2 or more)
    compare_seeds: int = Field(5, ge=1, le=1000)
    #: the searches per optimizer (a comparison only): with 2 or more, each with other search and
    #: train seeds, the searches are the replicates of the intervals and tests
    compare_repeats: int = Field(1, ge=1, le=100)
    #: rounds of widening a range whose best value sits at its edge, each followed by num_samples
    #: more trials of that optimizer's search (a comparison only; 0: flag the edges only)
    compare_widen: int = Field(0, ge=0, le=10)

    @field_validator("space", mode="before")
    @classmethod
    def _tune_domains(cls, value: Any) -> Any:
        """Ray Tune domains (``tune.loguniform(1e-4, 1e-1)``) → the SearchSpace dict syntax."""
        from raytune_opt.experiment.ray_domains import from_tune_domains

        return from_tune_domains(value)


class ResourcesSection(_Section):
    """``resources``: workers per trial (DDP when > 1 or on GPUs) and how many trials at once."""

    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: Float = Field(1, ge=0.0)
    gpus_per_worker: Float | None = Field(None, ge=0.0)
    max_concurrent_trials: int | None = Field(None, ge=1)
    #: ddp: the model replicated on every worker; fsdp: its parameters, gradients and optimizer state
    #: sharded over them (torch's FSDP2, for models larger than one device; first-order optimizers only)
    strategy: Literal["ddp", "fsdp"] = "ddp"

    @property
    def distributed(self) -> bool:
        """Whether trials run under ``TorchTrainer`` (more than one worker, GPUs, or fsdp)."""
        return self.num_workers > 1 or self.use_gpu or self.strategy == "fsdp"


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
    #: fail a trial that runs longer than this (seconds since it started or resumed); retried per
    #: max_failures (``raytune_opt.experiment.watchdog``)
    trial_timeout_s: float | None = Field(None, gt=0.0)
    #: fail a trial with no report for this many times the median time between reports
    stall_factor: float | None = Field(None, gt=1.0)
    #: tracking callbacks, ``[{mlflow: {...}}, {wandb: {mode: offline}}]``: Ray's own logger callbacks
    #: (``raytune_opt.experiment.callbacks``), checked before Ray starts
    callbacks: list[Any] = Field(default_factory=list)
    #: keep ``<experiment folder>/optuna.journal`` (an Optuna JournalStorage) up to date while trials
    #: run, for ``optuna-dashboard`` (``raytune_opt.experiment.optuna_journal``; needs optuna)
    optuna_journal: bool = False
    #: the most trials one ``Tuner.fit`` runs: a longer search (a Searcher under Tune's FIFO scheduler)
    #: runs as several fits in turn, one searcher carried through them, so the driver holds at most
    #: this many trials (``raytune_opt.experiment.fits``); None: always one fit
    trials_per_fit: int | None = Field(2000, ge=1)


class Experiment(_Section):
    """A validated experiment. Build it from YAML (:meth:`from_yaml`), a dict (:meth:`from_dict`) or
    keyword arguments (``Experiment(name=..., task="digits-mlp", search={...})``, checked the same way
    by :meth:`check`); then :meth:`plan` (what would run) or :meth:`run`."""

    name: str
    imports: list[str] = Field(default_factory=list)
    task: TaskSection
    train: TrainSettings = Field(default_factory=TrainSettings)
    optimizer: OptimizerSection | None = None
    search: SearchSection | None = None
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    run_: RunSection = Field(default_factory=RunSection, alias="run")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    _source: str = PrivateAttr("<experiment>")
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)
    _plan: tuple[str, Plan] | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > MAX_NAME:
            raise ValueError(f"a folder name of at most {MAX_NAME} characters")
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
        raw, text = read_yaml(path)
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
        """Validate a plain dict (as loaded from YAML); errors name ``source`` and the key path.
        Relative ``imports`` files are taken from the source file's folder (else the working
        directory) and kept as absolute paths, so that ``resume`` finds them from anywhere."""
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{source}: the experiment must be a mapping of sections (name, task, train, optimizer, "
                f"search, resources, run), got {type(raw).__name__}"
            )
        search = raw.get("search")
        if isinstance(search, Mapping) and "space" in search:  # before the overrides' JSON copy
            from raytune_opt.experiment.ray_domains import from_tune_domains

            try:
                raw = {**raw, "search": {**search, "space": from_tune_domains(search["space"])}}
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
        raw = apply_overrides(raw, overrides, source=source)
        lines = key_lines(text) if text is not None and not overrides else {}
        base = Path(source).parent if Path(source).is_file() else Path.cwd()
        imports = raw.get("imports") or []
        import_plugins(imports, base=base, where=where(source, lines, "imports"))
        raw["imports"] = [str((base / e).resolve()) if e.endswith(".py") else e for e in imports]
        try:
            exp = cls.model_validate(raw)
        except ValidationError as e:
            raise config_error(e, source, lines, _SECTIONS) from None
        exp._source, exp._lines = source, lines
        exp.check()
        return exp

    def to_dict(self) -> dict[str, Any]:
        """The description as plain data (what ``experiment.json`` keeps, and ``from_dict`` reads):
        every field, defaults included, except a train default whose key the search space searches
        (written out, it would read back as that key fixed and searched at once)."""
        out = self.model_dump(by_alias=True, exclude_none=False)
        plan = self.plan()
        for key in set(plan.searched) & (set(out["train"]) - self.train.model_fields_set):
            del out["train"][key]
        return out

    # ------------------------------------------------------------------ the plan
    def check(self) -> Experiment:
        """Every semantic check, before Ray starts (:func:`raytune_opt.experiment.plan.build_plan`):
        names (task, optimizers, strategy, metric), the optimizer's hyperparameters, the train settings,
        the search space and the strategy's options. Returns ``self``; the plan is kept."""
        self.plan()
        return self

    def plan(self) -> Plan:
        """The frozen :class:`~raytune_opt.experiment.plan.Plan` (``str(plan)``: what :meth:`run` would
        do), built once and kept while the description stays the same."""
        from raytune_opt.experiment.plan import build_plan

        key = self.model_dump_json(by_alias=True)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, build_plan(self))
        return self._plan[1]

    def run(
        self,
        *,
        progress: bool = True,
        report: bool = True,
        callbacks: Sequence[Any] = (),
        optuna_journal: bool | None = None,
    ) -> ExperimentResult:
        """Run it: :func:`raytune_opt.experiment.run.run_experiment`. ``callbacks``: more tracking
        callbacks for this run (``{"mlflow": {...}}`` entries or ``ray.tune.Callback`` instances);
        ``optuna_journal``: write ``optuna.journal`` for optuna-dashboard (default:
        ``run.optuna_journal``)."""
        from raytune_opt.experiment.run import run_experiment

        return run_experiment(
            self, progress=progress, report=report, callbacks=callbacks, optuna_journal=optuna_journal
        )

    # ------------------------------------------------------------------ located errors
    def error(self, path: str, error: ConfigError) -> ConfigError:
        """``error`` prefixed with the file, line and key ``path`` it is about."""
        return ConfigError(f"{where(self._source, self._lines, path)}: {path}: {error}")

    def at(self, path: str) -> _Located:
        """``with exp.at("search"):`` — a ConfigError raised inside gets the file, line and key path."""
        return _Located(self, path)


class _Located:
    def __init__(self, exp: Experiment, path: str) -> None:
        self.exp, self.path = exp, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, tb: Any) -> bool:
        prefix = where(self.exp._source, self.exp._lines, self.path) + ":"
        if isinstance(error, ConfigError) and not str(error).startswith(prefix):
            raise self.exp.error(self.path, error) from None
        return False


_SECTIONS: dict[str, type[BaseModel]] = {
    "": Experiment,
    "task": TaskSection,
    "train": TrainSettings,
    "train.data": DataSettings,
    "search": SearchSection,
    "resources": ResourcesSection,
    "run": RunSection,
}
