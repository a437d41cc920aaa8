"""The plan of an experiment: everything a run needs, derived once from the description and checked.

:func:`build_plan` makes every semantic check of an :class:`~raytune_opt.experiment.config.Experiment`
(names of the task, optimizers, strategy and metric; the optimizer's hyperparameters; the train
settings; the search space; the strategy's options) while it derives the run's pieces: the metric and
its mode, the search space, the fixed keys of every trial (Tune's ``param_space``), the trainable and
the ``ray.tune.TuneConfig``. The result is a frozen :class:`Plan`; ``Experiment.plan()`` keeps it while
the description stays the same, so a check, a dry run and a run build the task, the trainable and the
searcher once.

    >>> from raytune_opt import Experiment
    >>> plan = Experiment.from_yaml("examples/quickstart.yaml").plan()
    >>> plan.metric, plan.mode, [p.name for p in plan.space][:3]
    ('val_accuracy', 'max', ['optimizer', 'adamw.lr', 'adamw.betas'])
    >>> print(plan)                     # what would run
    experiment 'quickstart' on task 'mnist1d-mlp'
    ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.experiment.config import MAX_TRIALS

if TYPE_CHECKING:
    from raytune_opt.experiment.config import Experiment
    from raytune_opt.search import SearchSpace

__all__ = ["Plan", "build_plan", "merge_space"]

#: the loop keys shown in the plan's ``train:`` line
_SHOWN = ("epochs", "batch_size", "schedule", "seed")


@dataclass(frozen=True)
class Plan:
    """What a run of one experiment does; built by :func:`build_plan`, never changed after."""

    name: str
    task: str
    metric: str
    mode: str
    #: ``None`` without a ``search`` section (one trial of the fixed configuration)
    strategy: str | None
    #: the searched parameters (``optimizers`` expanded, ``space`` entries added or overriding)
    space: SearchSpace | None
    #: the fixed keys of every trial (``Tuner(param_space=...)``): task, train, optimizer, resources —
    #: less the searched keys and the train keys left at ``raytune_opt.train.DEFAULTS``
    fixed: Mapping[str, Any]
    #: the names of the searched keys (empty without search)
    searched: tuple[str, ...]
    #: the optimizers compared (or the one fixed optimizer)
    optimizers: tuple[str, ...]
    #: ``search.num_samples`` (grid: passes over the grid); the number of trials is :attr:`trials`
    num_samples: int
    #: the trials Tune runs (grid: ``num_samples`` × the grid's size)
    trials: int
    #: a full trial's epochs (the schedulers' ``max_t``)
    max_t: int
    #: the Tune trainable (``raytune_opt.train.trainable``), with its resource request
    trainable: Any
    #: the text of :meth:`__str__`
    description: str
    #: every objective's metric and mode (``metric``/``mode`` are the first): more than one when
    #: ``search.metric`` is a list (the report then gives their Pareto front)
    metrics: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    _tune_config: list[Any] = field(default_factory=list, repr=False, compare=False)
    _experiment: Any = field(default=None, repr=False, compare=False)

    @property
    def multi_objective(self) -> bool:
        """Whether the search has several objectives (``search.metric`` a list)."""
        return len(self.metrics) > 1

    @property
    def optimizer_searched(self) -> bool:
        """Whether several optimizers are compared."""
        return len(self.optimizers) > 1

    def tune_config(self) -> Any:
        """The ``ray.tune.TuneConfig``: the one built (and checked) with the plan the first time — a
        searcher is stateful, so every later call builds a fresh one."""
        if self._tune_config:
            return self._tune_config.pop()
        return _tune_config(self._experiment, self.metrics, self.modes, self.space, self.trainable)

    def __str__(self) -> str:
        return self.description


def build_plan(exp: Experiment) -> Plan:
    """Check ``exp`` (raising a located ConfigError for the first problem) and derive its plan."""
    from raytune_opt.tasks import available_tasks, get_task
    from raytune_opt.train import trainable, validate

    if exp.task.name not in available_tasks():
        raise exp.error("task.name", ConfigError.unknown("task", exp.task.name, available_tasks()))
    with exp.at("task.args"):
        task = get_task(exp.task.name)
        task.check_args(exp.task.args)
    _check_names(exp)
    _check_strategy(exp)
    with exp.at("task.args"):
        spec = task.build(**exp.task.args)
    if exp.search is not None and exp.search.compare is not None and spec.test is None:
        raise exp.error(
            "task",
            ConfigError.invalid(
                "task",
                exp.task.name,
                "a task with a test split for search.compare (each optimizer's best is tested on it; "
                "this task's TaskSpec.test is None)",
            ),
        )
    metrics, modes = _metric_mode(exp, f"val_{spec.metric.name}", spec.metric.mode)
    metric, mode = metrics[0], modes[0]
    with exp.at("search.space"):
        space = _space(exp)
    searched = tuple(space.to_tune()) if space is not None else ()
    fixed = _fixed(exp, set(searched))
    with exp.at("train" if exp.optimizer is None else "optimizer"):
        base = validate(fixed)
    with exp.at("task"):  # a Dataset's items, and what an unsized one allows, before any trial
        from raytune_opt.train.data import check_data

        check_data(spec, exp.task.name, base)
    if exp.search is not None:
        explicit = set(exp.train.model_fields_set)
        if exp.optimizer is not None:
            explicit |= {"optimizer", *exp.optimizer.hparams}
        clash = sorted(set(searched) & explicit)
        if clash:
            raise exp.error(
                "search.space",
                ConfigError.invalid(
                    "search.space", clash, "keys that are not also fixed in train or optimizer"
                ),
            )
    with exp.at("search.space" if exp.search is not None else "train"):
        try:
            fn = trainable({**fixed, **(space.to_tune() if space is not None else {})})
        except ConfigError:
            raise
        except ValueError as e:  # Ray's own refusal of a resource request (e.g. zero CPUs and no GPU)
            raise exp.error(
                "resources",
                ConfigError.invalid("resources", exp.resources.model_dump(), f"a request Ray takes ({e})"),
            ) from None
    config = _tune_config(exp, metrics, modes, space, fn)
    from raytune_opt.experiment.callbacks import check_callbacks

    with exp.at("run.callbacks"):
        check_callbacks(exp.run_.callbacks)
    if exp.run_.optuna_journal:
        from raytune_opt.experiment.optuna_journal import check_optuna

        with exp.at("run.optuna_journal"):
            check_optuna()
    if config.num_samples > MAX_TRIALS:
        raise exp.error(
            "search.num_samples",
            ConfigError.invalid(
                "num_samples",
                exp.search.num_samples,
                f"at most {MAX_TRIALS} trials in all (grid: passes x grid size)",
            ),
        )
    optimizers = _optimizers(exp)
    s = exp.search
    num_samples = 1 if s is None else s.num_samples or (1 if s.strategy == "grid" else 10)
    max_t = (s.max_t if s is not None and s.max_t is not None else None) or exp.train.epochs
    plan = dict(
        name=exp.name,
        task=exp.task.name,
        metric=metric,
        mode=mode,
        strategy=s.strategy if s else None,
        space=space,
        fixed=dict(fixed),
        searched=searched,
        optimizers=tuple(optimizers),
        num_samples=num_samples,
        trials=config.num_samples,
        max_t=max_t,
        trainable=fn,
        metrics=metrics,
        modes=modes,
    )
    return Plan(
        **plan, description=_describe(exp, plan), _tune_config=[config], _experiment=exp.model_copy(deep=True)
    )


def _check_names(exp: Experiment) -> None:
    """The optimizer and strategy names, and the search section's own consistency."""
    from raytune_opt import optim
    from raytune_opt.search.strategies import STRATEGIES
    from raytune_opt.train.glm_solvers import GLM_METHODS

    name = exp.optimizer.name if exp.optimizer is not None else None
    if name is not None and name not in optim.available() and name not in GLM_METHODS:
        choices = [*optim.available(), *GLM_METHODS]
        raise exp.error("optimizer.name", ConfigError.unknown("optimizer", name, choices))
    s = exp.search
    if s is None:
        return
    if s.strategy not in STRATEGIES:
        raise exp.error("search.strategy", ConfigError.unknown("strategy", s.strategy, STRATEGIES))
    for i, name in enumerate(s.optimizers or ()):
        if name not in optim.available():
            raise exp.error(
                f"search.optimizers[{i}]", ConfigError.unknown("optimizer", name, optim.available())
            )
    if s.optimizers is not None and not s.optimizers:
        raise exp.error("search.optimizers", ConfigError.invalid("optimizers", [], "at least one name"))
    if s.optimizers and exp.optimizer is not None:
        raise exp.error(
            "optimizer",
            ConfigError.invalid(
                "optimizer", exp.optimizer.name, "no fixed optimizer when search.optimizers is given"
            ),
        )
    if not s.space and not s.optimizers:
        raise exp.error(
            "search.space",
            ConfigError.invalid(
                "search.space", {}, "at least one searched parameter (or search.optimizers: [...])"
            ),
        )
    if s.compare is not None and len(s.optimizers or ()) < 2:
        raise exp.error(
            "search.optimizers",
            ConfigError.invalid(
                "search.optimizers",
                s.optimizers,
                "at least two optimizer names with search.compare: optimizers (a comparison of one "
                "optimizer compares nothing; without compare, one search tunes one optimizer)",
            ),
        )
    if s.compare is not None and s.compare_seeds < 2 and s.compare_repeats < 2:
        raise exp.error(
            "search.compare_seeds",
            ConfigError.invalid(
                "search.compare_seeds",
                s.compare_seeds,
                "at least 2 (the interval of one search's best is over its seeds), or 1 with "
                "search.compare_repeats of 2 or more (the interval is then over the searches)",
            ),
        )
    if s.strategy in ("pbt", "pb2") and not exp.train.checkpoints:
        raise exp.error(
            "train.checkpoint_at_end",
            ConfigError.invalid(
                "checkpoint_at_end",
                False,
                f"True, or train.checkpoint_every > 0, with strategy {s.strategy!r} (it clones "
                "trials from their checkpoints)",
            ),
        )
    if s.max_t is not None and s.max_t > exp.train.epochs:
        raise exp.error(
            "search.max_t",
            ConfigError.invalid("max_t", s.max_t, f"at most train.epochs = {exp.train.epochs}"),
        )


def _check_strategy(exp: Experiment) -> None:
    """``resources.strategy: fsdp`` with every optimizer the trials may take (a second-order one
    cannot step sharded parameters)."""
    from raytune_opt.train.config import check_strategy

    for name in _optimizers(exp):
        with exp.at("resources.strategy"):
            check_strategy(exp.resources.strategy, name, "resources.strategy")


#: metrics every trial reports (beside the task's ``val_<metric>``) and their natural modes:
#: Tune's ``time_total_s`` (seconds since the trial started) and the loop's per-epoch figures
_REPORTED = {
    "val_loss": "min",
    "train_loss": "min",
    "time_total_s": "min",
    "time_this_epoch_s": "min",
    "optimizer_state_bytes_per_param": "min",
}


def _metric_mode(
    exp: Experiment, task_metric: str, task_mode: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metrics the search optimises and their modes, in order (default: the task's own metric
    and its mode). One metric may take its mode from the metric; a list of metrics (several
    objectives) needs a list of as many modes and a strategy that takes several
    (:func:`raytune_opt.search.strategies.check_objectives`), and no comparison or Optuna journal
    (both rank by one metric)."""
    from raytune_opt.search.strategies import check_objectives

    known = {**_REPORTED, task_metric: task_mode}
    s = exp.search
    metric = (s.metric if s else None) or task_metric
    names = [metric] if isinstance(metric, str) else list(metric)
    for i, name in enumerate(names):
        if name not in known:
            path = "search.metric" if isinstance(metric, str) else f"search.metric[{i}]"
            raise exp.error(path, ConfigError.unknown("metric", name, known))
    mode = s.mode if s else None
    if isinstance(metric, str) and mode is None:
        mode = known[metric]
    try:
        metrics, modes = check_objectives(
            s.strategy if s else "random",
            metric if isinstance(metric, str) else names,
            mode if mode is None or isinstance(mode, str) else list(mode),
        )
    except ConfigError as e:  # located at the key it names: search.mode, .strategy or .metric
        field = str(e).split(" ", 1)[0].split("[", 1)[0]
        raise exp.error(f"search.{field if field in ('mode', 'strategy') else 'metric'}", e) from None
    if len(metrics) > 1:
        if s.compare is not None:
            raise exp.error(
                "search.compare",
                ConfigError.invalid(
                    "search.compare",
                    s.compare,
                    f"null with several metrics {list(metrics)} (a comparison ranks by one test metric)",
                ),
            )
        if exp.run_.optuna_journal:
            raise exp.error(
                "run.optuna_journal",
                ConfigError.invalid(
                    "run.optuna_journal",
                    True,
                    f"false with several metrics {list(metrics)} (the journal's study has one direction)",
                ),
            )
    return metrics, modes


def _space(exp: Experiment) -> SearchSpace | None:
    """The experiment's search space (:func:`merge_space`); ``None`` without search."""
    if exp.search is None:
        return None
    return merge_space(exp.search.space, exp.search.optimizers)


def merge_space(space: Mapping[str, Any], optimizers: list[str] | None) -> SearchSpace | None:
    """``optimizers`` expanded into the optimizer-aware space (``SearchSpace.for_optimizers``), the
    ``space`` entries (SearchSpace dict syntax) added or overriding its ranges (an override keeps the
    optimizer's condition unless it states its own); ``None`` when both are empty. The one merge: the
    plan and the report (which rebuilds it from ``experiment.json``) both use it."""
    from raytune_opt.search import SearchSpace

    return SearchSpace.merged(optimizers, space)


def _fixed(exp: Experiment, searched: set[str]) -> dict[str, Any]:
    """The fixed keys of every trial, less the searched ones and the train keys at the loop's default
    (every trial's config, logged with each report, stays short)."""
    from raytune_opt.train import DEFAULTS

    out: dict[str, Any] = {"task": exp.task.name, "task_args": dict(exp.task.args)}
    out.update(exp.train.model_dump())
    if exp.optimizer is not None:
        out["optimizer"] = exp.optimizer.name
        out.update(exp.optimizer.hparams)
    r = exp.resources
    out["num_workers"] = r.num_workers
    out["use_gpu"] = r.use_gpu
    res: dict[str, float] = {"CPU": r.cpus_per_worker}
    if r.gpus_per_worker is not None:
        res["GPU"] = r.gpus_per_worker
    out["resources_per_worker"] = None if res == {"CPU": 1} else res
    out["strategy"] = r.strategy
    keep = {"task", "epochs", "optimizer"}
    return {
        k: v
        for k, v in out.items()
        if k not in searched and (k in keep or k not in DEFAULTS or DEFAULTS[k] != v)
    }


def _optimizers(exp: Experiment) -> list[str]:
    """The optimizers compared: ``search.optimizers``, a searched ``optimizer`` key, or the fixed one."""
    if exp.search is not None and exp.search.optimizers:
        return list(exp.search.optimizers)
    spec = (exp.search.space if exp.search else {}).get("optimizer")
    if isinstance(spec, Mapping):
        values = next(iter(spec.values()), None)
        if isinstance(values, list):
            return [str(v) for v in values]
    return [exp.optimizer.name if exp.optimizer else "adamw"]


def _tune_config(
    exp: Experiment, metrics: tuple[str, ...], modes: tuple[str, ...], space: Any, trainable: Any
) -> Any:
    """The ``ray.tune.TuneConfig`` (one trial of the fixed configuration without ``search``); with
    several objectives the searcher gets them all, Tune's own config the first."""
    from ray import tune

    from raytune_opt.search import make_tune_config

    max_conc = exp.resources.max_concurrent_trials
    s = exp.search
    metric: Any = metrics[0] if len(metrics) == 1 else list(metrics)
    mode: Any = modes[0] if len(modes) == 1 else list(modes)
    if s is None:
        return tune.TuneConfig(
            metric=metrics[0], mode=modes[0], num_samples=1, max_concurrent_trials=max_conc
        )
    options = dict(s.options)
    if s.time_budget_s is not None:
        options["time_budget_s"] = s.time_budget_s
    options["trainable"] = trainable
    if exp.resources.distributed:
        options.setdefault("reuse_actors", False)
    with exp.at("search"):
        _check_options(options)
        for name in ("metric", "mode", "num_samples", "max_t", "seed", "max_concurrent"):
            if name in options:
                raise ConfigError.invalid(
                    f"search.options.{name}",
                    options[name],
                    f"no {name} here: it is search.{name}"
                    if name != "max_concurrent"
                    else "no max_concurrent here: it is resources.max_concurrent_trials",
                )
        config = make_tune_config(
            s.strategy,
            space,
            metric=metric,
            mode=mode,
            num_samples=s.num_samples or (1 if s.strategy == "grid" else 10),
            max_t=s.max_t if s.max_t is not None else exp.train.epochs,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
            seed=s.seed,
            max_concurrent=max_conc,
            **options,
        )
    return config


def _check_options(options: Mapping[str, Any]) -> None:
    """The TuneConfig fields a strategy's options may set, checked before Tune sees them."""
    for name in ("trial_name_creator", "trial_dirname_creator"):
        if name in options and not callable(options[name]):
            raise ConfigTypeError.invalid(f"search.options.{name}", options[name], "a function of the trial")
    if "reuse_actors" in options and not isinstance(options["reuse_actors"], bool):
        raise ConfigTypeError.invalid("search.options.reuse_actors", options["reuse_actors"], "True or False")


def _describe(exp: Experiment, plan: Mapping[str, Any]) -> str:
    """What a run would do, as text: strategy, space, trials, resources, where results go."""
    s = exp.search
    lines = [f"experiment {exp.name!r} on task {exp.task.name!r}"]
    if s is None:
        opt = exp.optimizer.name if exp.optimizer else "adamw"
        lines.append(f"  one trial: {opt} {exp.optimizer.hparams if exp.optimizer else {}}")
    else:
        lines.append(
            f"  strategy {s.strategy}: {plan['trials']} trials"
            + (" per optimizer" if s.compare is not None else "")
            + f", {_objectives(plan)}, "
            f"max_t {plan['max_t']} epochs, seed {s.seed}"
            + (f", time budget {s.time_budget_s:g} s" if s.time_budget_s else "")
            + (f", options {s.options}" if s.options else "")
        )
        if s.compare is not None:
            lines.append(
                (
                    f"  comparison: that search once per optimizer ({', '.join(s.optimizers or ())}; "
                    f"each in {exp.name}/<optimizer>/), then each one's best retrained over "
                    if s.compare_repeats == 1
                    else f"  comparison: that search {s.compare_repeats} times per optimizer "
                    f"({', '.join(s.optimizers or ())}; each in {exp.name}/<optimizer>-search<j>/, "
                    "other search and train seeds each time: the replicates of the intervals), "
                    "then each one's best retrained over "
                )
                + f"{s.compare_seeds} seed(s) and tested on the test split"
                + (
                    f"; up to {s.compare_widen} round(s) widening a range whose best sits at its edge"
                    if s.compare_widen
                    else ""
                )
            )
        lines.append("  space (searched):")
        lines += [f"    {p.name}: {_domain(p)}" for p in plan["space"] if p.searched]
        fixed = [p for p in plan["space"] if not p.searched]
        if fixed:
            lines.append("  space (fixed): " + ", ".join(f"{p.name}={_domain(p)}" for p in fixed))
    train = exp.train.model_dump()
    space = {p.name: p for p in plan["space"]} if plan["space"] is not None else {}
    shown = {
        k: (
            ("searched" if space[k].searched else space[k].domain.value)
            if k in space and space[k].when is None
            else train[k]
        )
        for k in _SHOWN
    }
    lines.append(
        f"  train: {shown['epochs']} epochs, batch {shown['batch_size']}, {shown['schedule']} schedule, "
        f"checkpoint every {exp.train.checkpoint_every}, seed {shown['seed']}"
    )
    r = exp.resources
    per = f"{r.cpus_per_worker:g} CPU" + (f" + {r.gpus_per_worker or 1:g} GPU" if r.use_gpu else "")
    lines.append(
        f"  resources: {r.num_workers} worker(s) per trial ({per} each"
        + (", parameters sharded: fsdp" if r.strategy == "fsdp" else "")
        + "), "
        f"at most {r.max_concurrent_trials or 'as many as fit'} trials at once"
    )
    lines.append(
        f"  run: results in {Path(exp.run_.storage_path) / exp.name}, "
        f"max_failures {exp.run_.max_failures}, Ray {exp.run_.address or 'local'}"
    )
    return "\n".join(lines)


def _objectives(plan: Mapping[str, Any]) -> str:
    """``val_accuracy (max)``, or ``val_accuracy (max) and time_total_s (min): their Pareto front``."""
    shown = [f"{m} ({d})" for m, d in zip(plan["metrics"], plan["modes"], strict=True)]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + f" and {shown[-1]}: their Pareto front"


def _domain(p: Any) -> str:
    """``loguniform [1e-05, 0.001] (when optimizer in lion)``: one search-space entry, for the plan."""
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
