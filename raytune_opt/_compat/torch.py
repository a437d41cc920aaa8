"""torch internals that :mod:`raytune_opt.train` needs (tested against torch 2.13)."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

import raytune_opt._compat  # noqa: F401 - the tested-version check

__all__ = ["dynamo_disabled_functions", "without_dynamo_import", "set_last_lr"]

#: where ``torch._disable_dynamo`` caches ``torch._dynamo.disable(fn)`` on the wrapped function
_CACHE = "__dynamo_disable"


@functools.cache
def dynamo_disabled_functions() -> tuple[Callable[..., Any], ...]:
    """The functions torch's optimizer and lr-scheduler base classes wrap in ``torch._disable_dynamo``
    (``Optimizer.add_param_group``, ``zero_grad``, ``state_dict``, ``load_state_dict`` ...)."""
    # the wrapper's code, shared by every function it wraps (torch/_compile.py)
    code = torch._disable_dynamo(lambda: None).__code__
    return tuple(
        fn.__wrapped__
        for cls in (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
        for fn in vars(cls).values()
        if getattr(fn, "__code__", None) is code and hasattr(fn, "__wrapped__")
    )


@contextlib.contextmanager
def without_dynamo_import() -> Iterator[None]:
    """For the block, torch's optimizer methods marked ``torch._disable_dynamo`` run as they are
    instead of importing ``torch._dynamo`` on their first call (2 s of CPU in every new trial process).

    On its first call the wrapper imports ``torch._dynamo`` only to make the function skip
    ``torch.compile`` tracing, and caches ``torch._dynamo.disable(fn)`` on the function as
    ``__dynamo_disable``. A process that has not imported ``torch._dynamo`` traces nothing, so the
    plain function is the same call: that is cached instead, for the block only; with
    ``torch._dynamo`` already imported (a task compiling its model) nothing changes.
    """
    if "torch._dynamo" in sys.modules:
        yield
        return
    seeded = []
    for inner in dynamo_disabled_functions():
        if not hasattr(inner, _CACHE):
            # workaround https://github.com/pytorch/pytorch/pull/127325 (the cache this seeds):
            # no upstream issue found for the import itself, which costs 2 s in a process that
            # never compiles (PR #162595 stopped importing torch._dynamo with torch, not here)
            setattr(inner, _CACHE, inner)
            seeded.append(inner)
    try:
        yield
    finally:
        for inner in seeded:
            if getattr(inner, _CACHE, None) is inner:
                delattr(inner, _CACHE)


def set_last_lr(scheduler: torch.optim.lr_scheduler.LRScheduler, lrs: list[float]) -> None:
    """Make ``scheduler.get_last_lr()`` return ``lrs`` (after the optimizer's learning rates were set
    by hand, e.g. a PBT mutation on resume)."""
    # no upstream issue found: get_last_lr() returns the private _last_lr, which only step() sets;
    # a resumed trial sets the groups' lr itself and must not step the schedule an extra time
    scheduler._last_lr = list(lrs)
