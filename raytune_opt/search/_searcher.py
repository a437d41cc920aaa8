"""What every searcher of this package shares: the space, metric/mode, diverged trials, save/restore.

* :class:`SpaceSearcher` — base of our own searchers (QMC, GP-BO, Fabolas): keeps the observations
  as losses (``mode="max"`` negated), the live trials (pending points for batch suggestions) and a
  seeded generator; ``save``/``restore`` write its state as tensors and plain data (``torch.save``,
  read back with ``torch.load(weights_only=True)``: restoring runs no code) so ``Tuner.restore``
  resumes it.
* :class:`ModelSearcher` — a :class:`SpaceSearcher` with a surrogate model (GP-BO, Fabolas): a
  surrogate that fails (an exception, or no finite acquisition score) is never silent: it is logged
  (``logging`` warning with the error), counted in ``searcher.fallbacks`` (saved and restored with
  the rest of the state) and, with ``on_surrogate_error="raise"``, fatal (:class:`SurrogateError`);
  by default (``"random"``) that suggestion is a random candidate instead.
* :class:`GrownSearch` — Ray's ``SearchGenerator`` restored with a larger ``num_samples``
  (``raytune-opt resume DIR --num-samples N``): the same search, more trials.
* :class:`SpaceAdapter` — wraps a foreign searcher (hyperopt's TPE, TuneBOHB) that samples the
  space's hyperopt/ConfigSpace form: flattens its suggestions back into configurations and feeds
  it diverged results as bad ones. Its state (hyperopt's ``Trials``, ConfigSpace objects) can only
  be pickled: ``save``/``restore`` use cloudpickle, as Ray's own searchers do.

A diverged trial (metric ``inf`` or ``NaN``) is a *bad* result, never dropped: it is replaced by
the penalty ``worst + max(1, worst − best)`` over the finite losses seen (:func:`penalize`).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from ray import cloudpickle
from ray.tune.search import BasicVariantGenerator, Searcher, SearchGenerator

from raytune_opt._compat.ray_tune import convert_to_experiment_list
from raytune_opt.errors import ConfigError
from raytune_opt.search.space import SearchSpace

__all__ = [
    "SpaceSearcher",
    "ModelSearcher",
    "SurrogateError",
    "SURROGATE_ERRORS",
    "SpaceAdapter",
    "PresetGenerator",
    "GrownSearch",
    "penalize",
    "check_param_space",
    "to_plain",
    "from_plain",
]

logger = logging.getLogger("raytune_opt.search")

#: loss given to a diverged trial when no finite loss has been seen yet
FALLBACK_PENALTY = 1e6


def penalize(losses: np.ndarray) -> np.ndarray:
    """Replace non-finite losses by ``worst + max(1, worst − best)`` of the finite ones.

    With no finite loss at all, every loss becomes ``FALLBACK_PENALTY``. Losses are minimised.
    """
    y = np.asarray(losses, dtype=float).copy()
    bad = ~np.isfinite(y)
    if bad.any():
        good = y[~bad]
        y[bad] = good.max() + max(1.0, good.max() - good.min()) if good.size else FALLBACK_PENALTY
    return y


def check_param_space(config: Mapping[str, Any], owner: str) -> None:
    """The Tuner's ``param_space`` may hold constants only: the domains live in the SearchSpace."""
    from ray.tune.search.variant_generator import parse_spec_vars

    _, domains, grids = parse_spec_vars(dict(config or {}))
    if domains or grids:
        names = ["/".join(map(str, path)) for path, _ in [*domains, *grids]]
        raise ConfigError.invalid(
            "Tuner(param_space=...)",
            names,
            f"constants only with {owner}: put the searched parameters into the SearchSpace "
            "given to make_tune_config",
        )


def _loss(result: Mapping[str, Any] | None, metric: str, sign: float) -> float:
    """``sign · result[metric]`` as a float (``NaN`` when missing or not a number)."""
    if not result or metric not in result:
        return math.nan
    try:
        return sign * float(result[metric])
    except (TypeError, ValueError):
        return math.nan


_COMPANION_STATE = "__companion_scheduler_state__"


def _state_with_companion(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a searcher's ``__dict__``) without its ``companion`` scheduler, with that
    scheduler's own state instead (see :mod:`raytune_opt.search.schedulers`)."""
    state = dict(state)
    companion = state.pop("companion", None)
    if companion is not None:
        state[_COMPANION_STATE] = companion.scheduler_state()
    return state


def _load_companion(searcher: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Hands the saved scheduler state in ``state`` to ``searcher.companion``; the rest of it back."""
    state = dict(state)
    saved = state.pop(_COMPANION_STATE, None)
    state.pop("companion", None)
    companion = getattr(searcher, "companion", None)
    if saved is not None and companion is not None:
        companion.load_scheduler_state(saved)
    return state


_KIND = "__raytune_opt_kind__"
#: NumPy bit generators a saved ``np.random.Generator`` may name
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def to_plain(value: Any, where: str = "state") -> Any:
    """``value`` as tensors and plain data (what ``torch.load(weights_only=True)`` reads back):
    NumPy scalars become Python ones, arrays and ``np.random.Generator`` s tagged dicts; anything
    else raises ``TypeError`` naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    import torch  # here: importing raytune_opt.search does not import torch

    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        data = torch.from_numpy(np.frombuffer(np.ascontiguousarray(value).tobytes(), dtype=np.uint8).copy())
        return {_KIND: "ndarray", "dtype": value.dtype.str, "shape": list(value.shape), "data": data}
    if isinstance(value, np.random.Generator):  # its state and its seed sequence (``spawn`` uses it)
        seq = value.bit_generator.seed_seq
        seed_seq = None
        if isinstance(seq, np.random.SeedSequence):
            seed_seq = {
                "entropy": to_plain(seq.entropy, where),
                "spawn_key": list(seq.spawn_key),
                "pool_size": seq.pool_size,
                "n_children_spawned": seq.n_children_spawned,
            }
        return {_KIND: "generator", "state": to_plain(value.bit_generator.state, where), "seed_seq": seed_seq}
    if isinstance(value, type) and issubclass(value, np.generic) and value is not np.object_:
        return {_KIND: "dtype", "dtype": np.dtype(value).str}
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where}: a {type(value).__name__} cannot be saved as plain data")


def from_plain(value: Any) -> Any:
    """The inverse of :func:`to_plain`."""
    if isinstance(value, dict):
        kind = value.get(_KIND)
        if kind == "ndarray":
            raw = value["data"].numpy().tobytes()
            return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        if kind == "dtype":
            return np.dtype(value["dtype"]).type
        if kind == "generator":
            state = from_plain(value["state"])
            if state.get("bit_generator") not in _BIT_GENERATORS:
                raise ValueError(f"unknown bit generator {state.get('bit_generator')!r}")
            seq = value.get("seed_seq")
            seed_seq = None if seq is None else np.random.SeedSequence(**from_plain(seq))
            rng = np.random.Generator(getattr(np.random, state["bit_generator"])(seed_seq))
            rng.bit_generator.state = state
            return rng
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(from_plain(v) for v in value)
    return value


class _Stateful(Searcher):
    """``save``/``restore`` of the whole ``__dict__`` (cloudpickle), as Ray's TuneBOHB does, plus
    the state of the ``companion`` scheduler when ``make_tune_config`` paired one with it: Ray
    saves the searcher, never the scheduler, at each experiment checkpoint. :class:`SpaceSearcher`
    overrides them with plain data."""

    companion: Any = None

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(_state_with_companion(self.__dict__), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(_load_companion(self, cloudpickle.load(f)))

    def _set_metric_mode(self, metric: str | None, mode: str | None) -> None:
        if metric:
            self._metric = metric
        if mode:
            if mode not in ("min", "max"):
                raise ConfigError.invalid("mode", mode, "'min' or 'max'")
            self._mode = mode

    @property
    def _sign(self) -> float:
        """+1 to minimise ``metric``, −1 to maximise it: ``loss = sign · metric``."""
        return -1.0 if self._mode == "max" else 1.0


class SpaceSearcher(_Stateful):
    """Base of our own searchers: subclasses implement ``_propose() -> config | None | FINISHED``.

    Observations are ``(trial_id, config, loss, result)`` with ``loss = ±metric`` (minimised), in
    completion order; ``self.live`` maps running trial ids to their configs.

    ``max_concurrent_trials`` is kept here, not by Ray's ``ConcurrencyLimiter``
    (:meth:`set_max_concurrency` returns ``True``): it caps the live trials less those a scheduler
    paused (``on_pause`` / ``on_unpause``), so that Hyperband's trials waiting at a milestone for the
    rest of their bracket do not keep the bracket from being filled. Without pauses it is Ray's limit.
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space if isinstance(space, SearchSpace) else SearchSpace(space)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.live: dict[str, dict[str, Any]] = {}
        self.observations: list[tuple[str, dict[str, Any], float, dict[str, Any]]] = []
        self.n_suggested = 0
        self.max_concurrent = 0  # 0: no limit
        self.paused: dict[str, bool] = {}  # live trial ids a scheduler paused

    #: attributes made from the constructor's arguments, not saved: the restored searcher is Ray's
    #: copy from ``tuner.pkl``, built with the same arguments
    _STATIC = frozenset({"space", "encoding"})

    def plain_state(self) -> dict[str, Any]:
        """The state (``__dict__`` less :attr:`_STATIC`, with the companion scheduler's) as tensors and
        plain data; a nested searcher's and a SciPy QMC engine's (its ``__dict__``) included."""
        from scipy.stats import qmc

        out: dict[str, Any] = {}
        for key, value in _state_with_companion(self.__dict__).items():
            if key in self._STATIC:
                continue
            if isinstance(value, SpaceSearcher):
                out[key] = {_KIND: "searcher", "state": value.plain_state()}
            elif isinstance(value, qmc.QMCEngine):  # its arrays, generators and counters
                out[key] = {_KIND: "qmc", "state": to_plain(value.__dict__, f"{type(self).__name__}.{key}")}
            else:
                out[key] = to_plain(value, f"{type(self).__name__}.{key}")
        return out

    def load_plain_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`plain_state` returned (into this searcher, built as the saved one was)."""
        for key, value in _load_companion(self, state).items():
            kind = value.get(_KIND) if isinstance(value, dict) else None
            if kind == "searcher":
                getattr(self, key).load_plain_state(value["state"])
            elif kind == "qmc":
                getattr(self, key).__dict__.update(from_plain(value["state"]))
            else:
                self.__dict__[key] = from_plain(value)

    def save(self, checkpoint_path: str) -> None:
        import torch

        torch.save(self.plain_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        import torch

        try:
            state = torch.load(checkpoint_path, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError) as e:
            raise RuntimeError(
                f"refusing to restore the searcher state {checkpoint_path}: it is not tensors and plain "
                f"data as {type(self).__name__} writes it ({str(e).splitlines()[0]})"
            ) from None
        self.load_plain_state(state)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        check_param_space(config, type(self).__name__)
        self._set_metric_mode(metric, mode)
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def on_pause(self, trial_id: str) -> None:
        if trial_id in self.live:
            self.paused[trial_id] = True

    def on_unpause(self, trial_id: str) -> None:
        self.paused.pop(trial_id, None)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.max_concurrent and len(self.live) - len(self.paused) >= self.max_concurrent:
            return None
        config = self._propose()
        if config is None or config == Searcher.FINISHED:
            return config
        self.live[trial_id] = config
        self.n_suggested += 1
        return dict(config)

    def _propose(self) -> dict[str, Any] | str | None:
        raise NotImplementedError

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self.live.pop(trial_id, None)
        self.paused.pop(trial_id, None)
        if config is None:
            return
        loss = _loss(result, self._metric, self._sign)
        if error and not result:
            return  # crashed before reporting: nothing to learn
        self.observations.append((trial_id, config, loss, dict(result or {})))

    def losses(self) -> np.ndarray:
        """The observed losses, diverged ones replaced by :func:`penalize`'s penalty."""
        return penalize(np.array([o[2] for o in self.observations], dtype=float))


#: what a model-based searcher does when its surrogate fails: a random candidate, or raise
SURROGATE_ERRORS = ("random", "raise")


class SurrogateError(RuntimeError):
    """A surrogate model failed and ``on_surrogate_error="raise"`` made that fatal."""


class ModelSearcher(SpaceSearcher):
    """A :class:`SpaceSearcher` whose suggestions come from a surrogate model; see the module
    docstring for what happens when it fails. ``fallbacks`` holds one message per failure."""

    def __init__(
        self,
        space: SearchSpace,
        metric: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
        on_surrogate_error: str = "random",
    ) -> None:
        if on_surrogate_error not in SURROGATE_ERRORS:
            raise ConfigError.unknown("on_surrogate_error", on_surrogate_error, SURROGATE_ERRORS)
        super().__init__(space, metric, mode, seed)
        self.on_surrogate_error = on_surrogate_error
        self.fallbacks: list[str] = []

    @property
    def fallback_count(self) -> int:
        """How many times the surrogate failed and a fallback was used instead."""
        return len(self.fallbacks)

    def _surrogate_failed(self, step: str, error: BaseException | None, fallback: str) -> None:
        """Record that ``step`` failed with ``error`` (``None``: it gave no usable result); raise
        :class:`SurrogateError` under ``on_surrogate_error="raise"``, else log and count it."""
        why = "no finite score" if error is None else f"{type(error).__name__}: {error}"
        message = (
            f"{type(self).__name__} after {self.n_suggested} suggestions and "
            f"{len(self.observations)} results: {step} failed ({why})"
        )
        if self.on_surrogate_error == "raise":
            raise SurrogateError(f"{message} (on_surrogate_error='raise')") from error
        self.fallbacks.append(message)
        logger.warning(
            "%s; %s instead (failure %d of this searcher; on_surrogate_error='raise' makes it fatal)",
            message,
            fallback,
            len(self.fallbacks),
        )


class SpaceAdapter(_Stateful):
    """A foreign searcher (TPE, BOHB) behind a :class:`SearchSpace`.

    ``to_config`` maps its raw suggestion back to a flat configuration; results reaching it carry a
    finite metric: a diverged one becomes the penalty of :func:`penalize` over the losses seen so far.
    ``metric``/``mode`` may be lists (several objectives, for a multi-objective ``inner``): each
    metric is penalized on its own, and the single metric Tune passes in ``set_search_properties``
    (the first) leaves the lists as they are.
    """

    def __init__(
        self,
        inner: Searcher,
        space: SearchSpace,
        to_config: Callable[[Mapping[str, Any]], dict[str, Any]],
        metric: str | list[str],
        mode: str | list[str],
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.inner = inner
        self.space = space
        self.to_config = to_config
        self.seen: list[float] = []
        #: the finite losses seen per metric after the first, with several objectives
        self.seen_by_metric: dict[str, list[float]] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        check_param_space(config, type(self.inner).__name__)
        if not isinstance(self._metric, list):  # several objectives: Tune passes only the first
            self._set_metric_mode(metric, mode)
        return True

    def _objectives(self) -> list[tuple[str, float, list[float]]]:
        """``(metric, sign, finite losses seen)`` of each objective (``loss = sign · metric``)."""
        if not isinstance(self._metric, list):
            return [(self._metric, self._sign, self.seen)]
        by_metric = self.__dict__.setdefault("seen_by_metric", {})
        return [
            (m, -1.0 if mode == "max" else 1.0, self.seen if i == 0 else by_metric.setdefault(m, []))
            for i, (m, mode) in enumerate(zip(self._metric, self._mode, strict=True))
        ]

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.inner.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        raw = self.inner.suggest(trial_id)
        if raw is None or raw == Searcher.FINISHED:
            return raw
        return self.to_config(raw)

    def _sanitize(self, result: dict | None) -> dict | None:
        if not result:
            return result
        out = result
        for metric, sign, seen in self._objectives():
            if metric not in result:
                continue
            loss = _loss(result, metric, sign)
            if math.isfinite(loss):
                seen.append(loss)
                continue
            fixed = float(penalize(np.array([*seen, math.nan]))[-1])
            out = {**out, metric: sign * fixed}
        return out

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(trial_id, self._sanitize(result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, result=self._sanitize(result), error=error)

    def on_pause(self, trial_id: str) -> None:
        self.inner.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.inner.on_unpause(trial_id)


class PresetGenerator(BasicVariantGenerator):
    """Ray's ``BasicVariantGenerator`` running exactly the given configurations, one trial each.

        For strategies that need Ray's own generator (PBT and PB2 reject ``Searcher`` s) or a fixed
        list of trials (the grid): the configurations come from the space (only active parameters),
        so the Tuner's ``param_space`` needs no key for them — unlike ``points_to_evaluate``, which
        must name keys of the ``param_space``. The state (its iterators) is saved and restored by Ray,
    with its ``companion`` scheduler's (PBT, PB2).
    """

    companion: Any = None

    def __init__(self, configs: list[dict[str, Any]], random_state: int | None = None) -> None:
        super().__init__(random_state=random_state)
        self.presets = [dict(c) for c in configs]

    def get_state(self) -> Any:
        state = super().get_state()
        return state if state is False else _state_with_companion(state)

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(_load_companion(self, state))

    def is_finished(self) -> bool:
        """All configurations handed out and, with a population scheduler (PBT, PB2), every member
        finished: Ray 2.60 keeps the actor of a stopping trial for reuse only while the search is
        unfinished or another trial is staged, and a member that pauses for a waiting one to run
        would otherwise take its actor down, each resume a fresh one (``reuse_actors``)."""
        live = getattr(self.companion, "has_live_members", None)
        return super().is_finished() and not (live is not None and live())

    def add_configurations(self, experiments: Any) -> None:
        for exp in convert_to_experiment_list(experiments):
            for config in self.presets:
                one = copy.copy(exp)
                one.spec = {**exp.spec, "config": {**exp.spec.get("config", {}), **config}, "num_samples": 1}
                super().add_configurations([one])


class GrownSearch(SearchGenerator):
    """Ray's ``SearchGenerator`` (what ``tune.run`` wraps a ``Searcher`` in) that, restored from an
    experiment's saved state, creates trials up to ``num_samples`` instead of the saved total.

    Ray restores ``total_samples`` with the generator's state (``search_gen_state-*.json``) and
    ignores a new ``num_samples`` on ``Tuner.restore``: a restored search ends where it was
    planned to. Here the restored state's ``total_samples`` is replaced by ``num_samples``; the
    trial counter and the searcher's own state (its observations, its random streams, a
    sequence's position, a scheduler's brackets or rungs) are restored as they were, so the
    search goes on where it stopped: trials ``counter + 1 … num_samples`` are suggested from the
    whole history. ``num_samples`` below the restored counter (trials already created) is a
    :class:`~raytune_opt.errors.ConfigError`.
    """

    def __init__(self, searcher: Searcher, num_samples: int) -> None:
        super().__init__(searcher)
        self.num_samples = num_samples

    def set_state(self, state: dict[str, Any]) -> None:
        created = state["counter"]
        if self.num_samples < created:
            raise ConfigError.invalid(
                "num_samples", self.num_samples, f"at least the {created} trials the experiment created"
            )
        super().set_state({**state, "total_samples": self.num_samples})
