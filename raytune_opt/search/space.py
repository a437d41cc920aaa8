"""One search space that every strategy understands (seed section 4, "Search Space").

A :class:`SearchSpace` is an ordered set of :class:`Param` s, each a domain and an optional
condition. It is written once, as a dict or YAML::

    optimizer:    {choice: [sgd, adam, lion]}
    lr:           {loguniform: [1.0e-5, 1.0e-1]}
    batch_size:   {int: [16, 256], log: true}
    momentum:     {uniform: [0.9, 0.99], when: {optimizer: sgd}}
    betas_0:      {uniform: [0.8, 0.99], when: {optimizer: [adam, lion]}}
    depth:        {grid: [1, 2, 3]}
    epochs:       10                      # fixed value ({value: ...} for a fixed dict)

and converted to what each strategy needs:

* :meth:`SearchSpace.to_tune` — Ray Tune's ``param_space`` (``tune.uniform`` ... ``tune.grid_search``);
* :meth:`SearchSpace.to_hyperopt` — hyperopt's space, conditions as nested ``hp.choice``;
* :meth:`SearchSpace.to_configspace` — a ``ConfigSpace.ConfigurationSpace`` with
  ``EqualsCondition`` / ``InCondition`` (no quantisation: ConfigSpace 1.x removed ``q``, Ray issue #46995);
* :meth:`SearchSpace.encoding` — the unit cube [0, 1]^d used by QMC and the botorch strategies.

A configuration is a flat dict holding the fixed values and the *active* parameters only:
a parameter whose condition does not hold is absent, never ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raytune_opt import keys
from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = ["Float", "Int", "Choice", "Fixed", "Param", "SearchSpace", "Encoding"]

_DOMAIN_KEYS = ("uniform", "loguniform", "int", "choice", "grid", "value")


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``, uniform in ``log`` scale when ``log``."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (both included), uniform in ``log`` scale when ``log``."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of ``values``; ``grid=True`` asks the ``grid`` strategy to try each of them."""

    values: tuple[Any, ...]
    grid: bool = False


@dataclass(frozen=True)
class Fixed:
    """A constant, passed to every trial unchanged."""

    value: Any


Domain = Float | Int | Choice | Fixed


@dataclass(frozen=True)
class Param:
    """A named domain, active only when ``parent``'s value is one of ``values`` (if ``when`` is set)."""

    name: str
    domain: Domain
    when: tuple[str, tuple[Any, ...]] | None = None

    @property
    def searched(self) -> bool:
        return not isinstance(self.domain, Fixed)


def _check_domain(name: str, domain: Domain) -> None:
    """Raise a ``ConfigError`` for a domain that no strategy could sample."""
    if isinstance(domain, (Float, Int)):
        kind = "int" if isinstance(domain, Int) else "loguniform" if domain.log else "uniform"
        for bound in (domain.low, domain.high):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                raise ConfigTypeError.invalid(
                    f"{name}.{kind}", [domain.low, domain.high], "two finite numbers"
                )
            if isinstance(domain, Int) and int(bound) != bound:
                raise ConfigError.invalid(
                    f"{name}.int", [domain.low, domain.high], "two integers [low, high]"
                )
        if domain.low >= domain.high:
            raise ConfigError.invalid(
                f"{name}.{kind}",
                [domain.low, domain.high],
                "[low, high] with low < high (use a fixed value instead)",
            )
        if domain.log and domain.low <= 0:
            raise ConfigError.invalid(
                f"{name}.{kind}", [domain.low, domain.high], "bounds > 0 on a log scale (or log: false)"
            )
    elif isinstance(domain, Choice):
        if len(domain.values) == 0:
            key = "grid" if domain.grid else "choice"
            raise ConfigError.invalid(f"{name}.{key}", list(domain.values), "a non-empty list of values")
        if len(set(map(repr, domain.values))) != len(domain.values):
            raise ConfigError.invalid(f"{name}.choice", list(domain.values), "distinct values")


def _parse_param(name: str, spec: Any) -> Param:
    """One entry of the dict/YAML form (see the module docstring) → :class:`Param`."""
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, (Float, Int, Choice, Fixed)):
        return Param(name, spec)
    if not isinstance(spec, Mapping):
        return Param(name, Fixed(spec))
    spec = dict(spec)
    when = spec.pop("when", None)
    log = spec.pop("log", None)
    keys = [k for k in spec if k in _DOMAIN_KEYS]
    extra = [k for k in spec if k not in _DOMAIN_KEYS]
    if len(keys) != 1 or extra:
        raise ConfigError.invalid(
            name,
            dict(spec),
            f"one of {', '.join(_DOMAIN_KEYS)} (plus optional 'log' and 'when'); "
            "write a fixed dict as {value: {...}}",
        )
    kind, arg = keys[0], spec[keys[0]]
    if kind in ("uniform", "loguniform", "int"):
        if not isinstance(arg, Sequence) or isinstance(arg, str) or len(arg) != 2:
            raise ConfigTypeError.invalid(f"{name}.{kind}", arg, "a pair [low, high]")
        low, high = arg
        if kind == "int":
            domain: Domain = Int(low, high, bool(log))
        else:
            domain = Float(low, high, kind == "loguniform" or bool(log))
    elif kind in ("choice", "grid"):
        if not isinstance(arg, Sequence) or isinstance(arg, str):
            raise ConfigTypeError.invalid(f"{name}.{kind}", arg, "a list of values")
        domain = Choice(tuple(arg), grid=kind == "grid")
    else:
        domain = Fixed(arg)
    if log is not None and kind not in ("uniform", "loguniform", "int"):
        raise ConfigError.invalid(f"{name}.log", log, "log only on uniform/loguniform/int domains")
    cond = None
    if when is not None:
        if not isinstance(when, Mapping) or len(when) != 1:
            raise ConfigError.invalid(f"{name}.when", when, "one {parent: value or [values]} pair")
        ((parent, values),) = when.items()
        values = tuple(values) if isinstance(values, (list, tuple, set)) else (values,)
        cond = (parent, values)
    return Param(name, domain, cond)


class SearchSpace:
    """An ordered set of parameters (parents before their conditional children).

    Build it from a dict (``SearchSpace({...})``), YAML (:meth:`from_yaml`), Ray Tune domains
    (:meth:`from_tune`) or the optimizer registry (:meth:`for_optimizers`). Invalid domains and
    conditions raise a ``ConfigError`` here, before any trial runs.
    """

    def __init__(self, spec: Mapping[str, Any] | Sequence[Param]) -> None:
        if isinstance(spec, SearchSpace):
            params = list(spec.params.values())
        elif isinstance(spec, Mapping):
            params = [_parse_param(str(k), v) for k, v in spec.items()]
        elif isinstance(spec, Sequence) and all(isinstance(p, Param) for p in spec):
            params = list(spec)
        else:
            raise ConfigTypeError.invalid(
                "search space", type(spec).__name__, "a dict, a YAML file or Params"
            )
        by_name: dict[str, Param] = {}
        for p in params:
            if p.name in by_name:
                raise ConfigError.invalid("search space", p.name, "each parameter named once")
            _check_domain(p.name, p.domain)
            by_name[p.name] = p
        for p in params:
            if p.when is None:
                continue
            parent, values = p.when
            if parent not in by_name:
                raise ConfigError.unknown(f"{p.name}.when (parent parameter)", parent, by_name)
            pdom = by_name[parent].domain
            if not isinstance(pdom, Choice):
                raise ConfigError.invalid(
                    f"{p.name}.when",
                    {parent: list(values)},
                    f"a condition on a choice parameter ({parent} is not one)",
                )
            bad = [v for v in values if v not in pdom.values]
            if bad or not values:
                raise ConfigError.invalid(
                    f"{p.name}.when", {parent: list(values)}, f"values of {parent}: {list(pdom.values)}"
                )
        self.params: dict[str, Param] = {p.name: p for p in self._topological(by_name)}

    @staticmethod
    def _topological(by_name: dict[str, Param]) -> list[Param]:
        """Parents before children, otherwise in the order given; a cycle is a ``ConfigError``."""
        out: list[Param] = []
        state: dict[str, int] = {}

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise ConfigError.invalid("when", " -> ".join((*chain, name)), "conditions without a cycle")
            state[name] = 1
            p = by_name[name]
            if p.when is not None:
                visit(p.when[0], (*chain, name))
            state[name] = 2
            out.append(p)

        for name in by_name:
            visit(name, ())
        return out

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path_or_text: str | Path) -> SearchSpace:
        """Parse a YAML file (or a YAML string) of the dict form."""
        import yaml

        is_file = isinstance(path_or_text, Path) or (
            "\n" not in path_or_text and path_or_text.endswith((".yaml", ".yml"))
        )
        text = Path(path_or_text).read_text() if is_file else str(path_or_text)
        data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ConfigTypeError.invalid(
                "search space YAML", type(data).__name__, "a mapping of parameter: domain"
            )
        return cls(data)

    @classmethod
    def from_tune(cls, param_space: Mapping[str, Any]) -> SearchSpace:
        """Read a flat Ray Tune ``param_space``: ``tune.uniform``, ``loguniform``, ``randint``,
        ``lograndint``, ``choice``, ``grid_search`` and constants."""
        from ray.tune.search.sample import Categorical, Integer, LogUniform, Quantized
        from ray.tune.search.sample import Float as TFloat

        out: dict[str, Any] = {}
        for name, dom in param_space.items():
            if isinstance(dom, Mapping) and set(dom) == {"grid_search"}:
                out[name] = Choice(tuple(dom["grid_search"]), grid=True)
            elif isinstance(dom, (TFloat, Integer, Categorical)):
                if isinstance(dom.get_sampler(), Quantized):
                    raise ConfigError.invalid(name, dom, "no quantised domain (q): use choice or int instead")
                if isinstance(dom, Categorical):
                    out[name] = Choice(tuple(dom.categories))
                elif isinstance(dom, Integer):
                    out[name] = Int(dom.lower, dom.upper - 1, isinstance(dom.get_sampler(), LogUniform))
                else:
                    out[name] = Float(dom.lower, dom.upper, isinstance(dom.get_sampler(), LogUniform))
            elif hasattr(dom, "sample") or callable(dom):
                raise ConfigError.invalid(
                    name, dom, "uniform, loguniform, randint, lograndint, choice or grid_search"
                )
            else:
                out[name] = Fixed(dom)
        return cls(out)

    @classmethod
    def merged(cls, optimizers: Sequence[str] | None, space: Mapping[str, Any] | None) -> SearchSpace | None:
        """``for_optimizers(optimizers)`` with ``space`` entries added or overriding its ranges (an
        override keeps the optimizer's condition unless it states its own); ``None`` when both are
        empty. What an experiment's ``search`` section means: its plan and its report both use it."""
        user = cls(space) if space else None
        if not optimizers:
            return user
        base = cls.for_optimizers(optimizers)
        if user is None:
            return base
        mine = {p.name: p for p in user}
        params = []
        for p in base:
            q = mine.pop(p.name, None)
            params.append(p if q is None else Param(q.name, q.domain, q.when or p.when))
        return cls([*params, *mine.values()])

    @classmethod
    def for_optimizers(cls, names: Sequence[str] | None = None, **fixed: Any) -> SearchSpace:
        """The conditional space over ``optimizer`` and each optimizer's own hyperparameters.

        Ranges come from ``raytune_opt.optim.available()`` (each ``HParam``'s ``low``/``high``/``log``
        or ``choices``); a hyperparameter without a range stays at its default. Children are named
        ``"<optimizer>.<hparam>"`` (e.g. ``lion.lr``) because the same hyperparameter has a different
        range per optimizer (the seed: Lion's lr below AdamW's, its weight decay above).
        ``fixed`` adds constants (e.g. ``epochs=10``).
        """
        from raytune_opt import optim

        registry = optim.available()
        names = list(registry) if names is None else list(names)
        if not names:
            raise ConfigError.invalid("optimizers", names, "at least one optimizer name")
        for n in names:
            if n not in registry:
                raise ConfigError.unknown("optimizers", n, registry)
        spec: dict[str, Any] = {"optimizer": Choice(tuple(names))}
        for n in names:
            for h in registry[n].hparams.values():
                if h.choices is not None:
                    dom: Domain = Choice(tuple(h.choices))
                elif h.low is not None and h.high is not None:
                    is_int = isinstance(h.default, int) and not isinstance(h.default, bool)
                    dom = (
                        Int(int(h.low), int(h.high), h.log)
                        if is_int
                        else Float(float(h.low), float(h.high), h.log)
                    )
                else:
                    continue
                name = keys.key(n, h.name)
                spec[name] = Param(name, dom, ("optimizer", (n,)))
        spec.update(fixed)
        return cls(spec)

    # ------------------------------------------------------------------ queries
    def __repr__(self) -> str:
        return f"SearchSpace({list(self.params.values())!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and list(self.params.values()) == list(other.params.values())

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params.values())

    def __len__(self) -> int:
        return len(self.params)

    @property
    def constants(self) -> dict[str, Any]:
        """The fixed values (unconditional ones), as a Ray Tune ``param_space`` would hold them."""
        return {p.name: p.domain.value for p in self if isinstance(p.domain, Fixed) and p.when is None}

    @property
    def conditional(self) -> bool:
        return any(p.when is not None for p in self)

    @property
    def grid_params(self) -> list[str]:
        """Names of ``grid`` domains (only the ``grid`` strategy enumerates them)."""
        return [p.name for p in self if isinstance(p.domain, Choice) and p.domain.grid]

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether ``name``'s condition holds in ``config`` (its parent present, with an allowed value)."""
        p = self.params[name]
        if p.when is None:
            return True
        parent, values = p.when
        return parent in config and config[parent] in values

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check that ``config`` holds every active parameter within its domain and no inactive one."""
        for p in self:
            active = self.is_active(p.name, config)
            if not active:
                if p.name in config:
                    raise ConfigError.invalid(p.name, config[p.name], f"absent: inactive unless {p.when}")
                continue
            if p.name not in config:
                raise ConfigError.invalid(p.name, None, "a value: the parameter is active")
            v, d = config[p.name], p.domain
            ok = (
                (isinstance(d, Fixed) and v == d.value)
                or (isinstance(d, Choice) and v in d.values)
                or (isinstance(d, Float) and d.low <= v <= d.high)
                or (isinstance(d, Int) and int(v) == v and d.low <= v <= d.high)
            )
            if not ok:
                raise ConfigError.invalid(p.name, v, f"a value of {d}")
        return dict(config)

    def clip(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Clip numeric values into their domains (PBT's perturbations multiply by 0.8 / 1.2)."""
        out = dict(config)
        for p in self:
            if p.name in out and isinstance(p.domain, (Float, Int)):
                out[p.name] = _clamp(p.domain, out[p.name])
        return out

    def with_params(
        self, spec: Mapping[str, Any] | SearchSpace | None = None, /, **params: Any
    ) -> SearchSpace:
        """A new space: this one plus the parameters of ``spec`` and ``params`` (the dict form of the
        module docstring, :class:`Param` s or domains), e.g. an extra hyperparameter of the training::

            >>> space = SearchSpace.for_optimizers(["adamw"]).with_params(
            ...     {"adamw.amsgrad": {"choice": [False, True], "when": {"optimizer": "adamw"}}},
            ...     batch_size={"choice": [64, 128]},
            ... )
            >>> [p.name for p in space][-2:]
            ['adamw.amsgrad', 'batch_size']

        Use the mapping for dotted names (``"lion.lr"``). A name already in the space is a
        ``ConfigError`` (to change a range, ``space.without(name).with_params(...)``, or give the
        experiment's ``search.space`` entry, which overrides); new conditions may refer to this
        space's choices. ``space | {...}`` is the same (:meth:`__or__`)."""
        if spec is not None and not isinstance(spec, (Mapping, SearchSpace)):
            raise ConfigTypeError.invalid(
                "with_params", type(spec).__name__, "a dict of parameter: domain, or a SearchSpace"
            )
        first = (
            list(spec)
            if isinstance(spec, SearchSpace)
            else [_parse_param(str(k), v) for k, v in (spec or {}).items()]
        )
        new = [*first, *(_parse_param(k, v) for k, v in params.items())]
        clash = [p.name for p in new if p.name in self.params]
        if clash:
            raise ConfigError.invalid(
                "with_params",
                clash,
                f"names not already in the space (to change a range: space.without({clash[0]!r})"
                ".with_params(...))",
            )
        return SearchSpace([*self, *new])

    def __or__(self, other: Any) -> SearchSpace:
        """``space | {"batch_size": {"choice": [64, 128]}}``: :meth:`with_params` (a name in both is
        a ``ConfigError``, not an override as in ``dict | dict``)."""
        if not isinstance(other, (Mapping, SearchSpace)):
            return NotImplemented
        return self.with_params(other)

    def __ror__(self, other: Any) -> SearchSpace:
        """``{...} | space``: the dict's parameters first, then this space's."""
        if not isinstance(other, Mapping):
            return NotImplemented
        return SearchSpace(other).with_params(self)

    def without(self, *names: str) -> SearchSpace:
        """The space less ``names`` (and less any parameter conditioned on them)."""
        keep = [p for p in self if p.name not in names and (p.when is None or p.when[0] not in names)]
        return SearchSpace(keep)

    # ------------------------------------------------------------------ sampling
    def encoding(self, categorical: str = "ordinal") -> Encoding:
        """The unit-cube encoding: ``"ordinal"`` (one column per parameter) or ``"onehot"`` categories."""
        return Encoding(self, categorical)

    def sample(self, rng: np.random.Generator | int | None = None) -> dict[str, Any]:
        """One configuration drawn uniformly (in each domain's scale); only active parameters."""
        enc = self.encoding()
        return enc.decode(np.random.default_rng(rng).random(enc.n_dims))

    def grid(self, points: int = 3) -> list[dict[str, Any]]:
        """Every combination: choices and grids in full, numeric domains at ``points`` evenly spaced values.

        Conditional parameters are expanded only under the parent values that activate them.
        """
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ConfigError.invalid("grid.points", points, "an integer >= 2")
        configs: list[dict[str, Any]] = [{}]
        for p in self:
            values = _grid_values(p.domain, points)
            new: list[dict[str, Any]] = []
            for c in configs:
                if self.is_active(p.name, c):
                    new.extend({**c, p.name: v} for v in values)
                else:
                    new.append(c)
            configs = new
        return configs

    # ------------------------------------------------------------------ conversions
    def to_tune(self) -> dict[str, Any]:
        """Ray Tune's ``param_space``.

        ``grid`` domains become ``tune.grid_search``; a conditional parameter becomes a
        ``tune.sample_from`` that draws from its domain when active and gives ``None`` otherwise
        (Ray's variant generator cannot omit a key; the strategies of ``make_tune_config`` never
        use this form, they sample through the space itself and omit inactive parameters).
        """
        from ray import tune

        out: dict[str, Any] = {}
        for p in self:
            d = p.domain
            if isinstance(d, Fixed):
                dom: Any = d.value
            elif isinstance(d, Choice):
                dom = tune.grid_search(list(d.values)) if d.grid else tune.choice(list(d.values))
            elif isinstance(d, Int):
                dom = (tune.lograndint if d.log else tune.randint)(d.low, d.high + 1)
            else:
                dom = (tune.loguniform if d.log else tune.uniform)(d.low, d.high)
            if p.when is not None:
                dom = tune.sample_from(_ConditionalSample(p.when[0], p.when[1], dom))
            out[p.name] = dom
        return out

    def to_hyperopt(self) -> dict[str, Any]:
        """hyperopt's space: unconditional parameters at the top, each choice with conditional
        children as ``hp.choice(name, [{"__value__": v, child: ...}, ...])`` (labels ``child|parent=v``).

        :meth:`from_hyperopt` flattens a sample of it back into a configuration.
        """
        children: dict[str, list[Param]] = {}
        for p in self:
            if p.when is not None:
                children.setdefault(p.when[0], []).append(p)

        def node(p: Param, label: str) -> Any:
            from hyperopt import hp

            d = p.domain
            if isinstance(d, Fixed):
                return d.value
            if isinstance(d, Float):
                if d.log:
                    return hp.loguniform(label, math.log(d.low), math.log(d.high))
                return hp.uniform(label, d.low, d.high)
            if isinstance(d, Int):
                if d.log:  # log-uniform over [low - ½, high + ½], rounded
                    return hp.qloguniform(label, math.log(d.low - 0.5), math.log(d.high + 0.5), 1)
                return hp.uniformint(label, d.low, d.high)
            kids = children.get(p.name, [])
            if not kids:
                return hp.choice(label, list(d.values))
            options = []
            for v in d.values:
                branch: dict[str, Any] = {"__value__": v}
                for k in kids:
                    if v in k.when[1]:
                        branch[k.name] = node(k, f"{k.name}|{label}={v}")
                options.append(branch)
            return hp.choice(label, options)

        return {p.name: node(p, p.name) for p in self if p.when is None}

    def from_hyperopt(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Flatten a sample of :meth:`to_hyperopt` into a configuration (ints cast back to ``int``)."""
        out: dict[str, Any] = {}

        def walk(d: Mapping[str, Any]) -> None:
            for k, v in d.items():
                if isinstance(v, Mapping) and "__value__" in v:
                    out[k] = v["__value__"]
                    walk({kk: vv for kk, vv in v.items() if kk != "__value__"})
                else:
                    out[k] = v

        walk(sample)
        return self._cast(out)

    def to_configspace(self, seed: int | None = None) -> Any:
        """A ``ConfigSpace.ConfigurationSpace``: ``Float``/``Integer``/``Categorical``/``Constant``,
        conditions as ``EqualsCondition`` (one value) or ``InCondition`` (several).

        Categories are stored as their index (``"0"``, ``"1"``, ...) so that any value type works;
        :meth:`from_configspace` maps them back.
        """
        from ConfigSpace import (
            Categorical,
            ConfigurationSpace,
            Constant,
            EqualsCondition,
            InCondition,
        )
        from ConfigSpace import (
            Float as CSFloat,
        )
        from ConfigSpace import (
            Integer as CSInteger,
        )

        cs = ConfigurationSpace(seed=seed)
        hps: dict[str, Any] = {}
        for p in self:
            d = p.domain
            if isinstance(d, Fixed):
                hps[p.name] = Constant(p.name, "0")
            elif isinstance(d, Choice):
                hps[p.name] = Categorical(p.name, [str(i) for i in range(len(d.values))])
            elif isinstance(d, Int):
                hps[p.name] = CSInteger(p.name, (d.low, d.high), log=d.log)
            else:
                hps[p.name] = CSFloat(p.name, (d.low, d.high), log=d.log)
        cs.add(list(hps.values()))
        for p in self:
            if p.when is None:
                continue
            parent, values = p.when
            pvals = self.params[parent].domain.values
            idx = [str(pvals.index(v)) for v in values]
            cond = (
                EqualsCondition(hps[p.name], hps[parent], idx[0])
                if len(idx) == 1
                else InCondition(hps[p.name], hps[parent], idx)
            )
            cs.add(cond)
        return cs

    def from_configspace(self, configuration: Mapping[str, Any]) -> dict[str, Any]:
        """A ``ConfigSpace.Configuration`` (or its dict) → configuration with the original values."""
        out: dict[str, Any] = {}
        for p in self:
            if p.name not in configuration:
                continue
            v, d = configuration[p.name], p.domain
            if isinstance(d, Fixed):
                out[p.name] = d.value
            elif isinstance(d, Choice):
                out[p.name] = d.values[int(v)]
            else:
                out[p.name] = v
        return self._cast(out)

    def _cast(self, config: dict[str, Any]) -> dict[str, Any]:
        """Python ``int``/``float`` for numeric domains (samplers hand back numpy scalars), inside
        the declared bounds (:func:`_clamp`: hyperopt's and ConfigSpace's log scales round-trip
        through ``exp(log x)``; hyperopt's quantised log-int may round ``low − ½`` down)."""
        for p in self:
            if p.name in config and isinstance(p.domain, (Int, Float)):
                config[p.name] = _clamp(p.domain, float(config[p.name]))
        return config


@dataclass(frozen=True)
class _ConditionalSample:
    """``tune.sample_from`` body: the domain's sample when ``parent`` ∈ ``values``, else ``None``."""

    parent: str
    values: tuple[Any, ...]
    domain: Any

    def __call__(self, spec: Any) -> Any:
        if spec.config.get(self.parent) not in self.values:
            return None
        return self.domain.sample() if hasattr(self.domain, "sample") else self.domain


def _clamp(d: Float | Int, v: float) -> float | int:
    """``v`` as a value of ``d``, inside ``[low, high]``: a Python ``float``, or for ``Int`` the
    nearest ``int``. Every conversion into a configuration ends here, so no strategy suggests a
    value outside the declared bounds: a log-scale round trip lands up to an ulp outside them
    (``exp(log 1e-05) = 9.999999999999997e-06``)."""
    if isinstance(d, Int):
        return int(min(max(round(v), d.low), d.high))
    return float(min(max(v, d.low), d.high))


def _grid_values(d: Domain, points: int) -> list[Any]:
    if isinstance(d, Fixed):
        return [d.value]
    if isinstance(d, Choice):
        return list(d.values)
    t = np.linspace(0.0, 1.0, points)
    if d.log:
        vals = np.exp(math.log(d.low) + t * (math.log(d.high) - math.log(d.low)))
    else:
        vals = d.low + t * (d.high - d.low)
    if isinstance(d, Int):
        return sorted({_clamp(d, v) for v in vals})
    return [_clamp(d, v) for v in vals]


class Encoding:
    """The space as the unit cube [0, 1]^d, for QMC sequences and Gaussian processes.

    Columns, in parameter order (fixed values take none):

    * ``Float``: ``u = (x - low) / (high - low)``, or ``(log x - log low) / (log high - log low)``;
    * ``Int``: the same over ``[low, high + 1)``, decoded as ``floor`` (each integer gets an
      equal share of the cube, in log scale when ``log``), encoded at its cell's centre;
    * ``Choice``: ``"ordinal"`` — one column, ``index = floor(u · k)``, encoded at ``(index + ½) / k``;
      ``"onehot"`` — ``k`` columns, decoded as the ``argmax``.

    An inactive parameter is encoded at 0.5 (numeric/ordinal) or all-zero (one-hot), a fixed
    point that the Gaussian process can ignore.
    """

    def __init__(self, space: SearchSpace, categorical: str = "ordinal") -> None:
        if categorical not in ("ordinal", "onehot"):
            raise ConfigError.unknown("encoding.categorical", categorical, ("ordinal", "onehot"))
        self.space = space
        self.categorical = categorical
        self.columns: dict[str, slice] = {}
        d = 0
        for p in space:
            if isinstance(p.domain, Fixed):
                continue
            width = len(p.domain.values) if isinstance(p.domain, Choice) and categorical == "onehot" else 1
            self.columns[p.name] = slice(d, d + width)
            d += width
        self.n_dims = d

    @property
    def bounds(self) -> np.ndarray:
        """``[[0, ..., 0], [1, ..., 1]]`` — botorch's ``bounds`` (2 × d)."""
        return np.stack([np.zeros(self.n_dims), np.ones(self.n_dims)])

    @property
    def integer_columns(self) -> list[int]:
        """Columns that decode to a discrete value (ints, ordinal and one-hot categories)."""
        return [
            i
            for name, sl in self.columns.items()
            if not isinstance(self.space.params[name].domain, Float)
            for i in range(sl.start, sl.stop)
        ]

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        x = np.full(self.n_dims, 0.5)
        for name, sl in self.columns.items():
            d = self.space.params[name].domain
            if name not in config:
                if isinstance(d, Choice) and self.categorical == "onehot":
                    x[sl] = 0.0
                continue
            v = config[name]
            if isinstance(d, Choice):
                i = d.values.index(v)
                if self.categorical == "onehot":
                    x[sl] = 0.0
                    x[sl.start + i] = 1.0
                else:
                    x[sl] = (i + 0.5) / len(d.values)
            elif isinstance(d, Int):
                lo, hi = d.low, d.high + 1
                if d.log:
                    x[sl] = (0.5 * (math.log(v) + math.log(v + 1)) - math.log(lo)) / (
                        math.log(hi) - math.log(lo)
                    )
                else:
                    x[sl] = (v + 0.5 - lo) / (hi - lo)
            elif d.log:
                x[sl] = (math.log(v) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))
            else:
                x[sl] = (v - d.low) / (d.high - d.low)
        return x

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, Any]:
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        config: dict[str, Any] = {}
        for p in self.space:
            if not self.space.is_active(p.name, config):
                continue
            d = p.domain
            if isinstance(d, Fixed):
                config[p.name] = d.value
                continue
            sl = self.columns[p.name]
            if isinstance(d, Choice):
                k = len(d.values)
                i = (
                    int(np.argmax(x[sl]))
                    if self.categorical == "onehot"
                    else min(int(x[sl.start] * k), k - 1)
                )
                config[p.name] = d.values[i]
                continue
            u = float(x[sl.start])
            if isinstance(d, Int):
                lo, hi = d.low, d.high + 1
                v = (
                    math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
                    if d.log
                    else lo + u * (hi - lo)
                )
                config[p.name] = int(min(max(math.floor(v), d.low), d.high))
            elif d.log:
                log_lo, log_hi = math.log(d.low), math.log(d.high)
                config[p.name] = _clamp(d, math.exp(log_lo + u * (log_hi - log_lo)))
            else:
                config[p.name] = _clamp(d, d.low + u * (d.high - d.low))
        return config
