"""Every use of a Ray or torch private, each behind a small named function; the tested-version check.

The rest of the package never reaches into ``ray.*._internal``, ``torch._*`` or a private attribute
of a Ray/torch object: it calls a shim here. Each shim names, on its line, the upstream issue or
pull request it works around (or, where none was found, why the private is needed), and
``tests/compat/test_compat.py`` exercises every one against the installed Ray and torch, so an
internal that moves fails there, loudly, before it fails in a run.

One module per library reached into (add a shim to the module of the library it touches):

* :mod:`raytune_opt._compat.ray_tune` — Tune's schedulers, trials and searchers;
* :mod:`raytune_opt._compat.ray_train` — Ray Train inside a Tune trial;
* :mod:`raytune_opt._compat.torch` — ``torch.optim`` internals.
* :mod:`raytune_opt._compat.optuna` — Optuna's samplers where a release broke what Ray's
  ``OptunaSearch`` relies on (pickling).

Importing this package checks the installed Ray and torch against :data:`TESTED` and warns once
(:class:`UntestedVersionWarning`, never an error) when one is outside the tested range.
"""

from __future__ import annotations

import re
import warnings
from importlib import metadata

__all__ = ["TESTED", "UntestedVersionWarning", "check_versions"]

#: distribution → the ``[low, high)`` range of versions the shims are tested with (major.minor)
TESTED: dict[str, tuple[str, str]] = {"ray": ("2.60", "2.61"), "torch": ("2.13", "2.14")}

_ADVICE = {
    "ray": "pip install 'ray[tune,train,default]=={low}.*'",
    "torch": "pip install 'torch=={low}.*'",
}

_warned: set[str] = set()


class UntestedVersionWarning(UserWarning):
    """Ray or torch is outside the versions raytune_opt's workarounds are tested with."""


def _minor(version: str) -> tuple[int, int]:
    """``"2.60.0rc1"`` → ``(2, 60)``; ``"3"`` → ``(3, 0)``."""
    m = re.match(r"(\d+)(?:\.(\d+))?", version)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def check_versions(tested: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """Warn once per distribution installed outside its ``[low, high)`` range of ``tested``
    (default :data:`TESTED`); returns the warnings' messages (also those already given)."""
    out = []
    for dist, (low, high) in (tested or TESTED).items():
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        if _minor(low) <= _minor(installed) < _minor(high):
            continue
        message = (
            f"raytune_opt is tested with {dist}>={low},<{high}; {dist} {installed} is installed. "
            f"Its workarounds in raytune_opt/_compat reach into {dist} internals that may have moved: "
            f"run `pytest tests/compat` to check them, or install a tested version "
            f"({_ADVICE.get(dist, '{dist}=={low}.*').format(low=low, dist=dist)}). "
            "Silence with warnings.filterwarnings('ignore', category=UntestedVersionWarning)."
        )
        out.append(message)
        if dist not in _warned:
            _warned.add(dist)
            warnings.warn(message, UntestedVersionWarning, stacklevel=2)
    return out


check_versions()
