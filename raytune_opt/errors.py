"""One error type for every bad user input in raytune_opt.

Every message names the field, the bad value and what is allowed, so that a user can fix
the input without reading a traceback:

    >>> raise ConfigError.invalid("adam.lr", -1.0, "a number >= 0")
    ConfigError: adam.lr = -1.0 is not allowed: expected a number >= 0
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["ConfigError", "ConfigTypeError", "did_you_mean"]


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
