"""Tracking callbacks: ``run.callbacks`` in the YAML (and ``Experiment.run(callbacks=...)``), through
Ray's own logger callbacks.

    run:
      callbacks:
        - mlflow: {tracking_uri: file:./mlruns}      # ray.air.integrations.mlflow.MLflowLoggerCallback
        - wandb: {project: quickstart, mode: offline}  # ray.air.integrations.wandb.WandbLoggerCallback
        - comet: {online: false}                     # ray.air.integrations.comet.CometLoggerCallback
        - aim: {repo: ./aim}                         # ray.tune.logger.aim.AimLoggerCallback

Each entry is one ``{name: {options}}`` pair; the options are the callback's own keyword arguments
(those it forwards, e.g. ``mode`` to ``wandb.init``, are checked against that function when the
package is installed). ``experiment_name`` (MLflow, Aim) and ``project`` (W&B) default to the
experiment's name; W&B's ``mode: offline`` (or ``disabled``) also sets ``WANDB_MODE`` in this
process, which Ray's callback reads to skip asking for an API key. An unknown name or option, or a
callback whose package is not installed, is one :class:`~raytune_opt.errors.ConfigError` before Ray
starts (:func:`check_callbacks`, run while the plan is built). From Python, ``callbacks`` may also hold
ready ``ray.tune.Callback`` instances. (MLflow 3.x (3.17 tested) refuses a ``file:`` store unless
``MLFLOW_ALLOW_FILE_STORE=true``; ``sqlite:///mlflow.db`` is its recommended local store.)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = ["CALLBACKS", "check_callbacks", "make_callbacks"]


@dataclass(frozen=True)
class _Kind:
    module: str  # where Ray defines the callback
    cls: str
    package: str  # the module it needs
    pip: str  # ... and the pip package that provides it
    forwards: str | None = None  # the function its **kwargs go to
    name_option: str | None = None  # the option that defaults to the experiment's name


#: the callbacks ``run.callbacks`` knows, by name
CALLBACKS: dict[str, _Kind] = {
    "mlflow": _Kind("ray.air.integrations.mlflow", "MLflowLoggerCallback", "mlflow", "mlflow",
                    name_option="experiment_name"),
    "wandb": _Kind("ray.air.integrations.wandb", "WandbLoggerCallback", "wandb", "wandb",
                   forwards="wandb.init", name_option="project"),
    "comet": _Kind("ray.air.integrations.comet", "CometLoggerCallback", "comet_ml", "comet-ml",
                   forwards="comet_ml.Experiment"),
    "aim": _Kind("ray.tune.logger.aim", "AimLoggerCallback", "aim", "aim", forwards="aim.Run",
                 name_option="experiment_name"),
}  # fmt: skip


def _entry(i: int, entry: Any) -> tuple[str, dict[str, Any]]:
    where = f"run.callbacks[{i}]"
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise ConfigTypeError.invalid(
            where, entry, "one {name: {options}} pair, e.g. {mlflow: {}} (or from Python a ray.tune.Callback)"
        )
    ((name, options),) = entry.items()
    if name not in CALLBACKS:
        raise ConfigError.unknown(f"{where} name", name, CALLBACKS)
    options = {} if options is None else options
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise ConfigTypeError.invalid(f"{where}.{name}", options, "a mapping of the callback's options")
    return str(name), dict(options)


def _accepted(fn: Any) -> tuple[set[str], bool]:
    """The keyword names ``fn`` takes (``self`` aside) and whether it takes ``**kwargs``."""
    params = list(inspect.signature(fn).parameters.values())
    names = {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _resolve(dotted: str) -> Any:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def check_callbacks(entries: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Check ``run.callbacks``: known names, installed packages, options the callback (or the function
    it forwards them to) takes. Returns ``[(name, options), ...]``; a ConfigError for the first
    problem."""
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigTypeError.invalid("run.callbacks", entries, "a list of {name: {options}}")
    out = []
    for i, entry in enumerate(entries):
        name, options = _entry(i, entry)
        kind = CALLBACKS[name]
        if importlib.util.find_spec(kind.package) is None:
            raise ConfigError(
                f"run.callbacks[{i}]: the {name} callback needs the {kind.pip!r} package, which is not "
                f"installed: pip install {kind.pip}"
            )
        names, _ = _accepted(getattr(importlib.import_module(kind.module), kind.cls).__init__)
        extra = set(options) - names
        if extra and kind.forwards is not None:
            forwarded, anything = _accepted(_resolve(kind.forwards))
            names |= forwarded
            extra = set() if anything else extra - forwarded
        if extra:
            bad = sorted(extra)[0]
            raise ConfigError.unknown(f"run.callbacks[{i}].{name} option", bad, names)
        out.append((name, options))
    return out


def make_callbacks(entries: Sequence[Any], experiment: str) -> list[Any]:
    """The Ray callbacks of ``entries`` (checked by :func:`check_callbacks`; ``ray.tune.Callback``
    instances pass through), their name option defaulting to ``experiment``."""
    from ray.tune import Callback

    ready = [e for e in entries if isinstance(e, Callback)]
    specs = [e for e in entries if not isinstance(e, Callback)]
    out = list(ready)
    for name, options in check_callbacks(specs):
        kind = CALLBACKS[name]
        if kind.name_option is not None:
            options.setdefault(kind.name_option, experiment)
        if name == "wandb" and options.get("mode") in ("offline", "disabled"):
            # Ray's callback asks for an API key unless WANDB_MODE says offline (its _set_api_key)
            os.environ.setdefault("WANDB_MODE", options["mode"])
        out.append(getattr(importlib.import_module(kind.module), kind.cls)(**options))
    return out
