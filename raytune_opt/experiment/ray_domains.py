"""Ray Tune's own domains in the Python API: ``search={"space": {"lr": tune.loguniform(1e-4, 1e-1)}}``.

:func:`from_tune_domains` turns each ``tune.uniform`` / ``loguniform`` / ``randint`` / ``lograndint`` /
``choice`` / ``grid_search`` value of a ``search.space`` into the SearchSpace dict syntax
(``{"loguniform": [1e-4, 1e-1]}``) before validation, so the experiment stores and shows them like
YAML-written ones. Tune's ``randint(low, high)`` excludes ``high``; ``{"int": [low, high - 1]}``
includes it. A domain with no dict form (quantised ``q*``, ``sample_from``, ``randn``) is a ConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raytune_opt.errors import ConfigError

__all__ = ["from_tune_domains"]


def _convert(name: str, dom: Any) -> Any:
    from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Quantized, Uniform

    if isinstance(dom, Mapping) and set(dom) == {"grid_search"}:
        return {"grid": list(dom["grid_search"])}
    if not isinstance(dom, Domain):
        return dom
    sampler = dom.get_sampler()
    if isinstance(sampler, Quantized) or not isinstance(sampler, (Uniform, LogUniform)):
        raise ConfigError.invalid(
            f"search.space.{name}",
            f"a tune {type(dom).__name__} domain sampled by {type(sampler).__name__}",
            "tune.uniform, loguniform, randint, lograndint, choice or grid_search (no quantised or "
            "normal domain: write it in the SearchSpace syntax, e.g. {choice: [...]})",
        )
    log = isinstance(sampler, LogUniform)
    if isinstance(dom, Categorical):
        return {"choice": list(dom.categories)}
    if isinstance(dom, Integer):
        return {"int": [int(dom.lower), int(dom.upper) - 1], **({"log": True} if log else {})}
    if isinstance(dom, Float):
        return {"loguniform" if log else "uniform": [float(dom.lower), float(dom.upper)]}
    raise ConfigError.invalid(f"search.space.{name}", dom, "a Ray Tune domain with a SearchSpace form")


def from_tune_domains(space: Any) -> Any:
    """``space`` with every Ray Tune domain replaced by its SearchSpace dict form (other values, and a
    ``space`` that is not a mapping, unchanged: validation reports those)."""
    if not isinstance(space, Mapping):
        return space
    return {k: _convert(str(k), v) for k, v in space.items()}
