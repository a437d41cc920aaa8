"""One error type for every bad user input in raytune_opt.

Every message names the field, the bad value and what is allowed, so that a user can fix
the input without reading a traceback:

    >>> raise ConfigError.invalid("adam.lr", -1.0, "a number >= 0")
    Traceback (most recent call last):
    ...
    raytune_opt.errors.ConfigError: adam.lr = -1.0 is not allowed: expected a number >= 0
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConfigError",
    "ConfigTypeError",
    "PreviousRunAliveError",
    "StorageFullError",
    "did_you_mean",
    "expected",
]


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ConfigError(ValueError):
    """Bad user input: raised before any work starts, with a one-line message."""

    @classmethod
    def invalid(cls, field: str, value: Any, allowed: str) -> ConfigError:
        """``field = value`` is not allowed; ``allowed`` says what is."""
        return cls(f"{field} = {value!r} is not allowed: expected {allowed}")

    @classmethod
    def unknown(cls, field: str, value: Any, choices: Iterable[str]) -> ConfigError:
        """``value`` is not one of ``choices`` (listed, with a did-you-mean for near misses)."""
        choices = sorted(choices)
        return cls(
            f"{field} = {value!r} is not known{did_you_mean(value, choices)}; "
            f"choose one of: {', '.join(choices)}"
        )


class ConfigTypeError(ConfigError, TypeError):
    """Bad user input of the wrong type (a ``ConfigError`` that is also a ``TypeError``)."""


class StorageFullError(OSError):
    """A write of the run failed for want of space: the disk is full (``ENOSPC``), a quota is spent
    (``EDQUOT``) or a file hit the file size limit (``EFBIG``). The experiment folder keeps what was
    written, Tune's last saved state included: the message says how to resume."""

    def __init__(self, folder: str, cause: OSError) -> None:
        super().__init__(
            cause.errno,
            f"the storage of {folder} is full: {cause}. Free space (or raise the quota or file size "
            f"limit), then `raytune-opt resume {folder}` continues from Tune's last saved state",
        )
        self.folder = folder
        self.cause = cause

    def __str__(self) -> str:
        return str(self.strerror)


class PreviousRunAliveError(RuntimeError):
    """``resume`` found trial actors of the experiment's previous run (a driver killed a moment ago)
    still alive on the cluster after its wait: resumed now, two processes would write the same trial
    folders. The message names the actors and how to stop them; nothing of the experiment was
    changed."""


def expected(err: dict[str, Any]) -> str:
    """What one pydantic error (an item of ``ValidationError.errors()``) allowed, in our words:
    ``"expected an integer >= 1"``, ``"expected one of 'fp32', 'bf16'"`` …; pydantic's own message
    (or our ConfigError's, raised in a validator) otherwise."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        op, name = bounds[kind]
        limit = ctx.get(name)
        what = "an integer" if isinstance(limit, int) and not isinstance(limit, bool) else "a number"
        return (
            f"expected {what} {op} {limit:g}" if isinstance(limit, float) else f"expected {what} {op} {limit}"
        )
    words = {
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "float_parsing": "a number",
        "bool_type": "True or False",
        "bool_parsing": "True or False",
        "string_type": "a string",
        "dict_type": "a mapping",
        "list_type": "a list",
    }
    if kind in words:
        return f"expected {words[kind]}"
    if kind == "literal_error" and "expected" in ctx:
        return f"expected one of {ctx['expected']}"
    msg = str(err.get("msg", "")).replace("\n", " ")
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg
