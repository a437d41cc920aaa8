"""Optuna's samplers as strategies, through Ray's ``OptunaSearch`` (``ray.tune.search.optuna``).

=================  ===========================================================================
strategy           sampler (Optuna 4–5, ``optuna.samplers``)
=================  ===========================================================================
``optuna-tpe``     ``TPESampler(multivariate=True)`` — TPE over the joint density of the
                   parameters (Falkner et al. 2018's multivariate KDE; ``group=True`` on a
                   conditional space, so each branch is modelled on its own parameters)
``optuna-gp``      ``GPSampler`` — GP Bayesian optimisation (Matérn-5/2 kernel, log EI)
``optuna-cmaes``   ``CmaEsSampler`` — CMA-ES (Hansen 2016) via the ``cmaes`` package
``optuna-nsga2``   ``NSGAIISampler`` — the NSGA-II genetic algorithm (Deb et al. 2002)
=================  ===========================================================================

Every sampler is seeded from the experiment's ``seed`` (a sequential run is reproducible bit for
bit); ``n_startup_trials`` (TPE, GP, CMA-ES: random trials before the model, Optuna's defaults 10,
10 and 1) and ``population_size`` (NSGA-II, default 50) pass through. Trials are capped by Tune's
``ConcurrencyLimiter`` (``max_concurrent``); pending trials are not imputed (Optuna's default).

**The space.** :class:`OptunaSpace` is Optuna's define-by-run form of a :class:`SearchSpace`: the
parameters are suggested in dependency order — ``suggest_float(name, low, high, log=log)``,
``suggest_int(name, low, high, log=log)``, ``suggest_categorical(name, [0, 1, …])`` (the index of
the choice: Optuna's choices must be ``None``/bool/int/float/str) — and a conditional one only when
its parent took an allowed value, as in the hyperopt form (:meth:`SearchSpace.to_hyperopt`): an
inactive parameter never reaches a trial nor the sampler's model. CMA-ES and GP model the
parameters every trial has (the intersection space) and draw the others at random (Optuna's
``RandomSampler``, seeded). :meth:`OptunaSpace.to_config` maps a suggestion back (indices to
values, numbers clamped into their bounds).

``optuna`` (and ``cmaes`` for ``optuna-cmaes``) is imported when a strategy is built: missing, a
``ConfigError`` says what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from raytune_opt.errors import ConfigError
from raytune_opt.search.space import Choice, Fixed, Float, Int, SearchSpace

__all__ = ["OptunaSpace", "SAMPLERS", "optuna_search"]


@dataclass(frozen=True)
class OptunaSpace:
    """The define-by-run ``space`` of ``OptunaSearch`` for ``space`` (module docstring)."""

    space: SearchSpace

    def __call__(self, trial: Any) -> dict[str, Any]:
        chosen: dict[str, Any] = {}  # the values taken so far (conditions look at them)
        constants: dict[str, Any] = {}
        for p in self.space:
            if not self.space.is_active(p.name, chosen):
                continue
            d = p.domain
            if isinstance(d, Fixed):
                constants[p.name] = chosen[p.name] = d.value
            elif isinstance(d, Float):
                chosen[p.name] = trial.suggest_float(p.name, d.low, d.high, log=d.log)
            elif isinstance(d, Int):
                chosen[p.name] = trial.suggest_int(p.name, d.low, d.high, log=d.log)
            else:
                index = trial.suggest_categorical(p.name, list(range(len(d.values))))
                chosen[p.name] = d.values[index]
        return constants

    def to_config(self, suggestion: Mapping[str, Any]) -> dict[str, Any]:
        """A suggestion of ``OptunaSearch`` (the suggested parameters and the constants) → configuration."""
        out: dict[str, Any] = {}
        for p in self.space:
            if p.name not in suggestion:
                continue
            v = suggestion[p.name]
            out[p.name] = p.domain.values[int(v)] if isinstance(p.domain, Choice) else v
        return self.space._cast(out)


def _import_optuna(strategy: str) -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError.invalid(
            "strategy", strategy, "optuna installed for the optuna-* strategies (pip install optuna)"
        ) from None
    if strategy == "optuna-cmaes":
        try:
            import cmaes  # noqa: F401  (CmaEsSampler's backend, imported by Optuna at sampling time)
        except ImportError:
            raise ConfigError.invalid(
                "strategy", strategy, "cmaes installed for Optuna's CmaEsSampler (pip install cmaes)"
            ) from None
    return optuna


def _tpe(optuna: Any, space: SearchSpace, seed: int | None, options: Mapping[str, Any]) -> Any:
    return optuna.samplers.TPESampler(
        multivariate=True,
        group=space.conditional,
        n_startup_trials=options.get("n_startup_trials", 10),
        seed=seed,
    )


def _gp(optuna: Any, space: SearchSpace, seed: int | None, options: Mapping[str, Any]) -> Any:
    return optuna.samplers.GPSampler(n_startup_trials=options.get("n_startup_trials", 10), seed=seed)


def _cmaes(optuna: Any, space: SearchSpace, seed: int | None, options: Mapping[str, Any]) -> Any:
    return optuna.samplers.CmaEsSampler(n_startup_trials=options.get("n_startup_trials", 1), seed=seed)


def _nsga2(optuna: Any, space: SearchSpace, seed: int | None, options: Mapping[str, Any]) -> Any:
    from raytune_opt._compat.optuna import NSGAIISampler  # picklable with Optuna 5.1's lock

    return NSGAIISampler(population_size=options.get("population_size", 50), seed=seed)


#: strategy name → (one-line summary, sampler builder, the options it takes)
SAMPLERS: dict[str, tuple[str, Callable[..., Any], tuple[str, ...]]] = {
    "optuna-tpe": (
        "Optuna's multivariate TPE (TPESampler(multivariate=True)) through Ray's OptunaSearch",
        _tpe,
        ("n_startup_trials",),
    ),
    "optuna-gp": (
        "Optuna's GP Bayesian optimisation (GPSampler) through Ray's OptunaSearch",
        _gp,
        ("n_startup_trials",),
    ),
    "optuna-cmaes": (
        "CMA-ES (Optuna's CmaEsSampler, cmaes package) through Ray's OptunaSearch",
        _cmaes,
        ("n_startup_trials",),
    ),
    "optuna-nsga2": (
        "NSGA-II genetic algorithm (Optuna's NSGAIISampler) through Ray's OptunaSearch",
        _nsga2,
        ("population_size",),
    ),
}


def optuna_search(
    strategy: str,
    space: SearchSpace,
    metric: str | list[str],
    mode: str | list[str],
    seed: int | None,
    options: Mapping[str, Any],
) -> Any:
    """The searcher of ``strategy`` (one of :data:`SAMPLERS`): Ray's ``OptunaSearch`` with that
    sampler on :class:`OptunaSpace`, behind the package's ``SpaceAdapter`` (flat configurations,
    diverged results as bad ones, the state saved with the experiment).

    ``metric`` and ``mode`` may be lists (several objectives, same length): the study then has one
    direction per metric and is told each trial's last report of every metric (Ray's
    ``OptunaSearch`` reports no intermediate values of a multi-objective study); NSGA-II and TPE
    (MOTPE) sample from that."""
    optuna = _import_optuna(strategy)
    from ray.tune.search.optuna import OptunaSearch

    from raytune_opt.search._searcher import SpaceAdapter

    sampler = SAMPLERS[strategy][1](optuna, space, seed, options)
    define = OptunaSpace(space)
    inner = OptunaSearch(define, metric=metric, mode=mode, sampler=sampler)
    return SpaceAdapter(inner, space, define.to_config, metric, mode)
