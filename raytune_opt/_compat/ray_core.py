"""Ray core internals that :mod:`raytune_opt.experiment` needs (tested against Ray 2.60)."""

from __future__ import annotations

import raytune_opt._compat  # noqa: F401 - the tested-version check

__all__ = ["token_auth_enabled"]


def token_auth_enabled() -> bool:
    """Whether this process's Ray uses token authentication (``RAY_AUTH_MODE=token``, Ray 2.60's
    default for a new local cluster): its dashboard then asks for the token before it shows anything."""
    # no upstream issue found: Ray exposes the mode only through ray._private.authentication
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    return bool(is_token_auth_enabled())
