"""Every search strategy of the seed's section 4 as a name → a ``ray.tune.TuneConfig``.

    >>> import os
    >>> from ray import tune
    >>> space = SearchSpace({"lr": {"loguniform": [1e-4, 1e-1]}, "momentum": {"uniform": [0.9, 0.99]}})
    >>> cfg = make_tune_config("asha", space, metric="loss", mode="min", num_samples=4, max_t=3, seed=0)
    >>> def trainable(config):
    ...     for epoch in range(config["epochs"]):
    ...         tune.report({"loss": (config["lr"] - 0.01) ** 2 + (1 - config["momentum"]) / (epoch + 1)})
    >>> run = tune.RunConfig(storage_path=os.path.abspath("results"), verbose=0)
    >>> grid = tune.Tuner(trainable, tune_config=cfg, param_space={"epochs": 3}, run_config=run).fit()
    ╭─────...
    >>> len(grid), grid.errors
    (4, [])

The space lives in the ``search_alg`` of every strategy: the Tuner's ``param_space`` holds
constants only (a ``ConfigError`` says so otherwise). Each trial's config holds the space's
fixed values and its *active* parameters; inactive conditional parameters are absent.

Pass ``trainable=`` to let the strategies check what they need before any trial runs:
checkpoints for ``pbt``/``pb2``, a data fraction for ``fabolas`` — what the trainable declares
with :func:`raytune_opt.search.capabilities` (:mod:`raytune_opt.capabilities`; a ``ConfigError``
names what is missing) — and ``reset_config`` for actor reuse.

Notes on Ray 2.60 behaviour: ``grid``, ``pbt`` and ``pb2`` run their configurations (the
space's conditional grid, the seeded initial population) through Ray's own
``BasicVariantGenerator`` (PBT refuses ``Searcher`` s); PBT and PB2 mutate only unconditional
parameters that no other parameter depends on and clip perturbations into the domains. Ray saves
no scheduler with the experiment: ``hyperband``, ``asha``, ``bohb``, ``pbt`` and ``pb2`` use the
schedulers of :mod:`raytune_opt.search.schedulers`, whose state travels with the searcher so that
``Tuner.restore`` resumes their brackets / rungs / population; PBT's and PB2's random draws come from
``seed``. Every strategy reuses trial actors (``reuse_actors=True``), PBT and PB2 included: Ray
resets a function trainable's process for the next trial and restores the trial's checkpoint —
an exploit's donor's — into it; PBT's and PB2's schedulers keep ``max_concurrent`` themselves.
The ``optuna-*`` strategies are Optuna's samplers (:mod:`raytune_opt.search.optuna_samplers`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raytune_opt.capabilities import declared
from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.search.space import Choice, Float, Int, SearchSpace

__all__ = [
    "make_tune_config",
    "available_strategies",
    "check_objectives",
    "multi_objective_strategies",
    "STRATEGIES",
    "Strategy",
]


@dataclass
class _Request:
    """The validated arguments of one ``make_tune_config`` call."""

    strategy: str
    space: SearchSpace
    metric: str
    mode: str
    num_samples: int
    max_t: int | None
    grace_period: int
    reduction_factor: float
    seed: int | None
    options: dict[str, Any] = field(default_factory=dict)
    max_concurrent: int | None = None
    #: every objective's metric and mode (``metric``/``mode`` are the first); one entry when single
    metrics: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def opt(self, name: str, default: Any) -> Any:
        return self.options.get(name, default)

    @property
    def time_attr(self) -> str:
        return self.opt("time_attr", "training_iteration")


@dataclass(frozen=True)
class Strategy:
    """A strategy: its one-line summary, the builder of ``(search_alg, scheduler, num_samples)``
    and the options it accepts beyond ``make_tune_config``'s arguments."""

    name: str
    summary: str
    build: Callable[[_Request], tuple[Any, Any, int]]
    options: tuple[str, ...] = ()
    model_based: bool = False
    needs_max_t: bool = False
    #: whether it takes several objectives (``metric=[...]``, ``mode=[...]``): a multi-objective
    #: sampler, or a search that draws points without a model and just records every metric
    multi_objective: bool = False
    #: what it does with one metric that several objectives cannot give (stops or clones trials by
    #: it); empty for a strategy without a scheduler
    single_metric_scheduler: str = ""
    #: why ``resume --num-samples`` cannot raise this strategy's budget ("": it can; the searcher
    #: suggests on, its history kept)
    fixed_budget: str = ""


# ---------------------------------------------------------------------- builders
def _sequence(kind: str) -> Callable[[_Request], tuple[Any, Any, int]]:
    def build(r: _Request) -> tuple[Any, Any, int]:
        from raytune_opt.search.qmc import SequenceSearcher

        return SequenceSearcher(r.space, kind, r.metric, r.mode, r.seed), None, r.num_samples

    return build


def _grid(r: _Request) -> tuple[Any, Any, int]:
    from raytune_opt.search._searcher import PresetGenerator

    points = r.space.grid(r.opt("points", 3)) * r.num_samples
    return PresetGenerator(points, r.seed), None, len(points)


_BO_OPTIONS = ("n_initial", "n_candidates", "log_loss", "on_surrogate_error")


def _bo(r: _Request) -> tuple[Any, Any, int]:
    from raytune_opt.search.bo import GPSearcher

    kw = {k: r.options[k] for k in _BO_OPTIONS if k in r.options}
    return GPSearcher(r.space, r.metric, r.mode, r.seed, **kw), None, r.num_samples


def _tpe(r: _Request) -> tuple[Any, Any, int]:
    from ray.tune.search.hyperopt import HyperOptSearch

    from raytune_opt.search._searcher import SpaceAdapter

    n0 = r.opt("n_initial_points", max(3, min(20, r.num_samples // 4)))
    inner = HyperOptSearch(
        r.space.to_hyperopt(),
        r.metric,
        r.mode,
        n_initial_points=n0,
        random_state_seed=r.seed,
        gamma=r.opt("gamma", 0.25),
    )
    return SpaceAdapter(inner, r.space, r.space.from_hyperopt, r.metric, r.mode), None, r.num_samples


def _optuna(strategy: str) -> Callable[[_Request], tuple[Any, Any, int]]:
    def build(r: _Request) -> tuple[Any, Any, int]:
        from raytune_opt.search.optuna_samplers import optuna_search

        metric: Any = list(r.metrics) if r.multi_objective else r.metric
        mode: Any = list(r.modes) if r.multi_objective else r.mode
        return optuna_search(strategy, r.space, metric, mode, r.seed, r.options), None, r.num_samples

    return build


def _hyperband(r: _Request) -> tuple[Any, Any, int]:
    from raytune_opt.search.schedulers import BRACKET_ORDERS, ResumableHyperBand

    order = r.opt("bracket_order", "paper")
    if order not in BRACKET_ORDERS:
        raise ConfigError.unknown("hyperband.bracket_order", order, BRACKET_ORDERS)
    search, _, n = _sequence("random")(r)
    sched = ResumableHyperBand(
        time_attr=r.time_attr, max_t=r.max_t, reduction_factor=r.reduction_factor, bracket_order=order
    )
    return search, sched, n


def _asha(r: _Request) -> tuple[Any, Any, int]:
    """Ray's ``ASHAScheduler`` (Li et al. 2020): a trial reaching rung ``k`` goes on when it is in the
    top ``1/η`` of the trials that have reached ``k`` *so far* — asynchronous, no bracket waits. The
    first trials at a rung meet few rivals, so a rung promotes more than ``1/η`` of its trials early
    (up to 60 % at rungs 3 and 9 in a 40-trial run); the fraction tends to ``1/η`` as trials
    accumulate (tests/search/test_search_hyperband_brackets.py). That is the algorithm, not a bug:
    for exactly ``1/η`` per rung use ``hyperband``. Its rungs survive a restore
    (:class:`~raytune_opt.search.schedulers.ResumableASHA`)."""
    from raytune_opt.search.schedulers import ResumableASHA

    search, _, n = _sequence("random")(r)
    sched = ResumableASHA(
        time_attr=r.time_attr,
        max_t=r.max_t,
        grace_period=r.grace_period,
        reduction_factor=r.reduction_factor,
        brackets=r.opt("brackets", 1),
    )
    return search, sched, n


_BOHB_OPTIONS = (
    "min_points_in_model",
    "top_n_percent",
    "random_fraction",
    "bandwidth_factor",
    "min_bandwidth",
)


def _bohb(r: _Request) -> tuple[Any, Any, int]:
    from ray.tune.search.bohb import TuneBOHB

    from raytune_opt.search._searcher import SpaceAdapter
    from raytune_opt.search.schedulers import ResumableHyperBandForBOHB

    bohb_config = {k: r.options[k] for k in _BOHB_OPTIONS if k in r.options}
    inner = TuneBOHB(r.space.to_configspace(seed=r.seed), bohb_config, r.metric, r.mode, seed=r.seed)
    search = SpaceAdapter(inner, r.space, r.space.from_configspace, r.metric, r.mode)
    sched = ResumableHyperBandForBOHB(
        time_attr=r.time_attr, max_t=r.max_t, reduction_factor=r.reduction_factor
    )
    return search, sched, r.num_samples


_FABOLAS_OPTIONS = (
    "cost_budget",
    "s_min",
    "fidelity",
    "cost_attr",
    "n_initial",
    "n_candidates",
    "log_loss",
    "refit_growth",
    "on_surrogate_error",
)


def _fabolas(r: _Request) -> tuple[Any, Any, int]:
    from raytune_opt.search.fabolas import FabolasSearcher

    kw = {k: r.options[k] for k in _FABOLAS_OPTIONS if k in r.options}
    return (
        FabolasSearcher(r.space, r.metric, r.mode, r.seed, num_samples=r.num_samples, **kw),
        None,
        r.num_samples,
    )


def _population(r: _Request) -> list[dict[str, Any]]:
    """The initial population: ``num_samples`` random configurations (seeded), in Ray's generator."""
    from raytune_opt.search.qmc import SequenceSearcher

    seq = SequenceSearcher(r.space, "random", seed=r.seed)
    return [seq._propose() for _ in range(r.num_samples)]


def _mutable(r: _Request, kinds: tuple[type, ...]) -> dict[str, Any]:
    """The parameters PBT/PB2 may mutate: unconditional ones of the given domain kinds that no other
    parameter is conditioned on (mutating a parent would leave its children inconsistent);
    conditional parameters and parents keep the values the trial started with."""
    parents = {p.when[0] for p in r.space if p.when is not None}
    out = {
        p.name: p.domain
        for p in r.space
        if p.when is None and p.name not in parents and isinstance(p.domain, kinds)
    }
    if not out:
        raise ConfigError.invalid(
            f"{r.strategy} search space",
            [p.name for p in r.space],
            "at least one unconditional parameter to mutate",
        )
    return out


def _interval(r: _Request) -> int:
    return r.opt("perturbation_interval", max(1, (r.max_t or 8) // 4))


def _pbt(r: _Request) -> tuple[Any, Any, int]:
    from ray import tune

    from raytune_opt.search._searcher import PresetGenerator
    from raytune_opt.search.schedulers import SeededPBT

    mutations: dict[str, Any] = {}
    for name, d in _mutable(r, (Float, Int, Choice)).items():
        if isinstance(d, Choice):
            mutations[name] = list(d.values)
        elif isinstance(d, Int):
            mutations[name] = (tune.lograndint if d.log else tune.randint)(d.low, d.high + 1)
        else:
            mutations[name] = (tune.loguniform if d.log else tune.uniform)(d.low, d.high)
    sched = SeededPBT(
        time_attr=r.time_attr,
        perturbation_interval=_interval(r),
        hyperparam_mutations=mutations,
        quantile_fraction=r.opt("quantile_fraction", 0.25),
        resample_probability=r.opt("resample_probability", 0.25),
        custom_explore_fn=r.space.clip,
        synch=r.opt("synch", False),
        seed=r.seed,
        max_concurrent=r.max_concurrent,
        max_t=r.max_t,
    )
    return PresetGenerator(_population(r), r.seed), sched, r.num_samples


def _pb2(r: _Request) -> tuple[Any, Any, int]:
    from raytune_opt.search._searcher import PresetGenerator
    from raytune_opt.search.schedulers import SeededPB2

    bounds = {name: [d.low, d.high] for name, d in _mutable(r, (Float, Int)).items()}
    sched = SeededPB2(
        time_attr=r.time_attr,
        perturbation_interval=_interval(r),
        hyperparam_bounds=bounds,
        quantile_fraction=r.opt("quantile_fraction", 0.25),
        synch=r.opt("synch", False),
        custom_explore_fn=r.space.clip,
        seed=r.seed,
        max_concurrent=r.max_concurrent,
        max_t=r.max_t,
    )
    return PresetGenerator(_population(r), r.seed), sched, r.num_samples


_PBT_OPTIONS = ("perturbation_interval", "quantile_fraction", "synch")


#: the Optuna samplers that model several objectives: NSGA-II, and TPE as MOTPE (Ozaki et al. 2020)
_MULTI_OBJECTIVE_SAMPLERS = ("optuna-tpe", "optuna-nsga2")


def _optuna_samplers() -> dict[str, tuple[str, Any, tuple[str, ...]]]:
    from raytune_opt.search.optuna_samplers import SAMPLERS  # imports no optuna

    return SAMPLERS


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "grid",
            "exhaustive grid: choices in full, numeric domains at `points` values (default 3)",
            _grid,
            ("points",),
            multi_objective=True,
            fixed_budget="its trials, num_samples passes over the grid's points, are listed at the start",
        ),
        Strategy(
            "random",
            "random search: i.i.d. uniform samples of the space",
            _sequence("random"),
            multi_objective=True,
        ),
        Strategy(
            "sobol",
            "quasi-random search: scrambled Sobol' sequence through the space's encoding",
            _sequence("sobol"),
        ),
        Strategy(
            "halton",
            "quasi-random search: scrambled Halton sequence through the space's encoding",
            _sequence("halton"),
        ),
        Strategy(
            "bo",
            "GP Bayesian optimisation (botorch SingleTaskGP + qLogEI), batch-aware",
            _bo,
            _BO_OPTIONS,
            model_based=True,
        ),
        Strategy(
            "tpe",
            "tree-structured Parzen estimators (hyperopt via Ray's HyperOptSearch)",
            _tpe,
            ("n_initial_points", "gamma"),
        ),
        *(
            Strategy(
                name,
                summary,
                _optuna(name),
                options,
                model_based=True,
                multi_objective=name in _MULTI_OBJECTIVE_SAMPLERS,
            )
            for name, (summary, _, options) in _optuna_samplers().items()
        ),
        Strategy(
            "hyperband",
            "Hyperband (Ray's HyperBandScheduler) over random samples, brackets in the paper's order",
            _hyperband,
            ("bracket_order",),
            needs_max_t=True,
            single_metric_scheduler="stops trials early by one metric (Hyperband's brackets)",
        ),
        Strategy(
            "asha",
            "asynchronous successive halving (Ray's ASHAScheduler) over random samples",
            _asha,
            ("brackets",),
            needs_max_t=True,
            single_metric_scheduler="stops trials early by one metric (ASHA's rungs)",
        ),
        Strategy(
            "bohb",
            "BOHB: TPE-like KDE model (TuneBOHB) + HyperBandForBOHB",
            _bohb,
            _BOHB_OPTIONS,
            model_based=True,
            needs_max_t=True,
            single_metric_scheduler="stops trials early by one metric (Hyperband's brackets)",
        ),
        Strategy(
            "fabolas",
            "Fabolas: cost-aware multi-fidelity GP over (config, data_fraction)",
            _fabolas,
            _FABOLAS_OPTIONS,
            model_based=True,
            fixed_budget="it ends the search itself (num_samples, cost_budget) with a full-data "
            "evaluation of its incumbent",
        ),
        Strategy(
            "pbt",
            "population based training: exploit checkpoints, explore by mutation",
            _pbt,
            (*_PBT_OPTIONS, "resample_probability"),
            single_metric_scheduler="clones the best trials by one metric (exploit)",
            fixed_budget="its population (num_samples members) is created at the start",
        ),
        Strategy(
            "pb2",
            "PB2: population based bandits, a GP-UCB explore step over the numeric bounds",
            _pb2,
            _PBT_OPTIONS,
            single_metric_scheduler="clones the best trials by one metric (exploit)",
            fixed_budget="its population (num_samples members) is created at the start",
        ),
    )
}

#: options every strategy accepts: the checks' trainable, the scheduler's time attribute, TuneConfig fields
_COMMON = (
    "trainable",
    "time_attr",
    "reuse_actors",
    "time_budget_s",
    "trial_name_creator",
    "trial_dirname_creator",
)


def available_strategies() -> dict[str, str]:
    """Each strategy name with its one-line description."""
    return {name: s.summary for name, s in STRATEGIES.items()}


def multi_objective_strategies() -> tuple[str, ...]:
    """The strategies that take several objectives (``metric=[...]``, ``mode=[...]``)."""
    return tuple(name for name, s in STRATEGIES.items() if s.multi_objective)


def check_objectives(
    strategy: str, metric: str | Sequence[str], mode: str | Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(metrics, modes)`` of one objective (``metric`` a name, ``mode`` ``"min"``/``"max"``) or of
    several (``metric`` a list of distinct names, ``mode`` a list of as many modes, in the same
    order), checked against ``strategy``: several objectives only under
    :func:`multi_objective_strategies` — a strategy whose scheduler stops or clones trials by one
    metric (ASHA, Hyperband, BOHB, PBT, PB2) refuses them, and so does a single-objective model.
    Raises a ``ConfigError`` naming the field, the value and what is allowed."""
    if isinstance(metric, str):
        if not isinstance(mode, str):
            raise ConfigError.invalid(
                "mode", mode, "'min' or 'max' with one metric (a list of modes goes with a list of metrics)"
            )
        if not metric:
            raise ConfigTypeError.invalid("metric", metric, "the name of a reported metric")
        if mode not in ("min", "max"):
            raise ConfigError.invalid("mode", mode, "'min' or 'max'")
        return (metric,), (mode,)
    if not isinstance(metric, Sequence) or not metric:
        raise ConfigTypeError.invalid("metric", metric, "a metric name or a non-empty list of names")
    metrics = tuple(metric)
    if not all(isinstance(m, str) and m for m in metrics):
        raise ConfigTypeError.invalid("metric", list(metrics), "a list of metric names")
    if len(set(metrics)) != len(metrics):
        raise ConfigError.invalid("metric", list(metrics), "a list of distinct metric names")
    if isinstance(mode, str) or not isinstance(mode, Sequence) or len(mode) != len(metrics):
        raise ConfigError.invalid(
            "mode",
            mode if isinstance(mode, str) or not isinstance(mode, Sequence) else list(mode),
            f"a list of {len(metrics)} modes ('min' or 'max'), one per metric of {list(metrics)}",
        )
    modes = tuple(mode)
    for i, m in enumerate(modes):
        if m not in ("min", "max"):
            raise ConfigError.invalid(f"mode[{i}]", m, "'min' or 'max'")
    if len(metrics) > 1:
        s = STRATEGIES.get(strategy)
        if s is not None and not s.multi_objective:
            why = (
                f"it {s.single_metric_scheduler}" if s.single_metric_scheduler else "it models one objective"
            )
            raise ConfigError.invalid(
                "strategy",
                strategy,
                f"a strategy that takes several objectives with metric {list(metrics)} ({strategy}: {why}): "
                f"one of {', '.join(multi_objective_strategies())}",
            )
    return metrics, modes


def _check_int(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError.invalid(
            name, value, f"an integer >= {low}" + (" or None" if allow_none else "")
        )
    if value < low:
        raise ConfigError.invalid(name, value, f"an integer >= {low}")


def make_tune_config(
    strategy: str,
    space: SearchSpace | Mapping[str, Any],
    *,
    metric: str | Sequence[str],
    mode: str | Sequence[str],
    num_samples: int,
    max_t: int | None = None,
    grace_period: int = 1,
    reduction_factor: float = 3,
    seed: int | None = None,
    max_concurrent: int | None = None,
    **options: Any,
) -> Any:
    """The ``ray.tune.TuneConfig`` (``search_alg``, ``scheduler``, ``num_samples``, ...) of ``strategy``.

    ``max_t`` is the resource of a full trial in ``time_attr`` units (``training_iteration`` by
    default; needed by ``hyperband``/``asha``/``bohb``); ``grace_period`` and ``reduction_factor``
    parametrise the successive-halving schedulers; ``seed`` makes the first suggestions
    reproducible; ``max_concurrent`` caps running trials. ``options`` are per strategy (see
    ``STRATEGIES[name].options``) plus ``trainable`` (checked, see the module docstring),
    ``time_attr``, ``reuse_actors`` and TuneConfig's ``time_budget_s`` / ``trial_*_creator``.
    For ``grid`` the number of trials is ``num_samples`` × the size of the grid.

    Several objectives: ``metric=["val_accuracy", "time_total_s"], mode=["max", "min"]``
    (:func:`check_objectives`): ``optuna-nsga2`` and ``optuna-tpe`` (MOTPE) model them all through
    Ray's ``OptunaSearch`` (the trial's last report of each); ``random`` and ``grid`` draw as they
    do and every metric is recorded. The ``TuneConfig`` itself takes the first metric and its mode
    (what Tune's own best-result calls and the live status line show); the trade-off is the Pareto
    front of the report (:mod:`raytune_opt.report.pareto`).
    """
    from ray import tune

    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ConfigError.unknown("strategy", strategy, STRATEGIES)
    s = STRATEGIES[strategy]
    space = space if isinstance(space, SearchSpace) else SearchSpace(space)
    metrics, modes = check_objectives(strategy, metric, mode)
    metric, mode = metrics[0], modes[0]
    _check_int("num_samples", num_samples, 1)
    _check_int("max_t", max_t, 1, allow_none=not s.needs_max_t)
    _check_int("grace_period", grace_period, 1)
    if max_t is not None and grace_period > max_t:
        raise ConfigError.invalid("grace_period", grace_period, f"at most max_t = {max_t}")
    if (
        isinstance(reduction_factor, bool)
        or not isinstance(reduction_factor, (int, float))
        or reduction_factor <= 1
    ):
        raise ConfigError.invalid("reduction_factor", reduction_factor, "a number > 1")
    if seed is not None:
        _check_int("seed", seed, 0)
    _check_int("max_concurrent", max_concurrent, 1, allow_none=True)
    for key in options:
        if key not in s.options and key not in _COMMON:
            raise ConfigError.unknown(f"{strategy} option", key, (*s.options, *_COMMON))
    if s.model_based and space.grid_params:
        raise ConfigError.invalid(
            f"{strategy} search space",
            {n: "grid" for n in space.grid_params},
            f"no grid domain under {strategy}: use choice (or the grid strategy)",
        )
    if not any(p.searched for p in space) and strategy != "grid":
        raise ConfigError.invalid(
            "search space", list(space.params), "at least one searched (non-fixed) parameter"
        )

    trainable = options.get("trainable")
    # every strategy reuses actors, PBT/PB2 included: Ray 2.60 resets a function trainable's actor
    # for the next trial (FunctionTrainable.reset_config: a new session with that trial's id) and
    # then restores the trial's latest checkpoint into it, which an exploit has set to the donor's
    # (tests/search/test_search_pbt_reuse.py)
    reuse = options.get("reuse_actors", True)
    if trainable is not None:
        _check_trainable(strategy, trainable, options.get("fidelity", "data_fraction"))
        from ray.tune import Trainable

        if inspect.isclass(trainable) and issubclass(trainable, Trainable):
            reuse = reuse and options.get(
                "reuse_actors", trainable.reset_config is not Trainable.reset_config
            )

    r = _Request(
        strategy,
        space,
        metric,
        mode,
        num_samples,
        max_t,
        grace_period,
        reduction_factor,
        seed,
        options,
        max_concurrent,
        metrics,
        modes,
    )
    search_alg, scheduler, n = s.build(r)
    from ray.tune.search import BasicVariantGenerator

    if isinstance(search_alg, BasicVariantGenerator):
        # Tune caps concurrency by wrapping a Searcher: a variant generator ignores
        # max_concurrent_trials. The grid's takes its own cap; PBT's and PB2's schedulers take it
        # (the whole population is generated at once: schedulers.py, "Concurrency")
        if not hasattr(scheduler, "max_concurrent"):
            search_alg.max_concurrent = max_concurrent or 0
        max_concurrent = None
    from raytune_opt.search.schedulers import is_resumable

    if is_resumable(scheduler):
        # Ray saves the searcher, not the scheduler: the searcher carries the scheduler's state
        search_alg.companion = scheduler
    extra = {
        k: options[k]
        for k in ("time_budget_s", "trial_name_creator", "trial_dirname_creator")
        if k in options
    }
    return tune.TuneConfig(
        metric=metric,
        mode=mode,
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=n,
        max_concurrent_trials=max_concurrent,
        reuse_actors=reuse,
        **extra,
    )


def _check_trainable(strategy: str, trainable: Any, fidelity: str) -> None:
    """The capabilities ``strategy`` needs, as ``trainable`` declares them (``raytune_opt.capabilities``)."""
    name = getattr(trainable, "__name__", type(trainable).__name__)
    caps = declared(trainable)
    if strategy in ("pbt", "pb2") and caps.get("checkpoints") is not True:
        said = "declares checkpoints=False" if "checkpoints" in caps else "does not declare checkpoints"
        raise ConfigError.invalid(
            f"{strategy} trainable",
            name,
            f"a trainable that checkpoints ({name} {said}): {strategy} clones trials from their "
            "checkpoints; declare one that reports tune.report(..., checkpoint=...) and resumes from "
            "tune.get_checkpoint() with @raytune_opt.search.capabilities(checkpoints=True), "
            "or use asha or hyperband for one that does not",
        )
    if strategy == "fabolas":
        got = caps.get("data_fraction")
        key = "data_fraction" if got is True else got
        if key != fidelity:
            said = "does not declare data_fraction" if got is None else f"declares data_fraction={got!r}"
            value = "True" if fidelity == "data_fraction" else repr(fidelity)
            raise ConfigError.invalid(
                "fabolas trainable",
                name,
                f"a trainable that trains on the share config[{fidelity!r}] of its data ({name} {said}): "
                f"declare it with @raytune_opt.search.capabilities(data_fraction={value}); "
                "use bo for full-data trials or hyperband/bohb for epoch budgets",
            )
