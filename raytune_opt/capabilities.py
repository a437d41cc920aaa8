"""What a trainable declares it supports; the search strategies check it before any trial runs.

    from raytune_opt.search import capabilities

    @capabilities(checkpoints=True, data_fraction=True)
    def my_trainable(config): ...

* ``checkpoints`` — it reports checkpoints (``tune.report(..., checkpoint=...)``) and resumes from
  ``tune.get_checkpoint()``: ``pbt`` and ``pb2`` clone trials from them;
* ``data_fraction`` — it trains on the share ``config["data_fraction"]`` of its training data and
  reports the loss on the whole validation set: ``fabolas`` chooses that share. A string names
  another config key (Fabolas' ``fidelity`` option).

The declaration is a plain attribute of the trainable, :data:`ATTR` (a dict), so it travels with
it wherever Ray pickles it; ``ray.tune.with_resources`` keeps it (it returns the same function, or
a subclass of the class). ``raytune_opt.train.trainable`` declares its own. A ``ray.tune.Trainable``
class that overrides ``save_checkpoint`` declares ``checkpoints`` by that (Ray's own contract).
Nothing is read from a trainable's source. This module sits beside :mod:`raytune_opt.errors`:
``train`` declares, ``search`` checks, and neither imports the other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from raytune_opt.errors import ConfigTypeError

__all__ = ["ATTR", "CAPABILITIES", "capabilities", "declare", "declared"]

#: the attribute holding a trainable's declaration
ATTR = "raytune_opt_capabilities"
#: what a trainable can declare
CAPABILITIES = ("checkpoints", "data_fraction")

T = TypeVar("T")


def declare(trainable: T, *, checkpoints: bool | None = None, data_fraction: bool | str | None = None) -> T:
    """Record on ``trainable`` what it supports (``None``: leave that capability as it was);
    returns ``trainable`` itself."""
    if not callable(trainable):
        raise ConfigTypeError.invalid("trainable", trainable, "a function or a ray.tune.Trainable class")
    if checkpoints is not None and not isinstance(checkpoints, bool):
        raise ConfigTypeError.invalid("capabilities.checkpoints", checkpoints, "True or False")
    if data_fraction is not None and not isinstance(data_fraction, (bool, str)):
        raise ConfigTypeError.invalid(
            "capabilities.data_fraction", data_fraction, "True, False or the config key of the fraction"
        )
    caps = dict(getattr(trainable, ATTR, None) or {})  # a class: also what its bases declare
    given = {"checkpoints": checkpoints, "data_fraction": data_fraction}
    caps.update({k: v for k, v in given.items() if v is not None})
    try:
        setattr(trainable, ATTR, caps)
    except AttributeError as e:  # a bound method or a builtin takes no attribute
        raise ConfigTypeError.invalid(
            "trainable", trainable, "a function or class (wrap a method in a function to declare it)"
        ) from e
    return trainable


def capabilities(
    *, checkpoints: bool | None = None, data_fraction: bool | str | None = None
) -> Callable[[T], T]:
    """Decorator form of :func:`declare`: ``@capabilities(checkpoints=True)``."""

    def decorate(trainable: T) -> T:
        return declare(trainable, checkpoints=checkpoints, data_fraction=data_fraction)

    return decorate


def declared(trainable: Any) -> dict[str, Any]:
    """What ``trainable`` declares (only the capabilities it declares are keys): its :data:`ATTR`,
    plus ``checkpoints`` for a ``ray.tune.Trainable`` class by whether it overrides
    ``save_checkpoint`` (unless declared otherwise)."""
    caps = dict(getattr(trainable, ATTR, None) or {})
    if "checkpoints" not in caps and inspect.isclass(trainable):
        from ray.tune import Trainable

        if issubclass(trainable, Trainable):
            caps["checkpoints"] = trainable.save_checkpoint is not Trainable.save_checkpoint
    return caps
