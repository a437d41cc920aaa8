"""Where an experiment's text comes from: reading its YAML, ``--set`` overrides, the line of every key,
and pydantic's errors turned into one located :class:`~raytune_opt.errors.ConfigError` line
(``file:line: key.path = value is not allowed: ...``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from raytune_opt.errors import ConfigError, did_you_mean, expected

__all__ = ["read_yaml", "apply_overrides", "key_lines", "config_error", "where"]


def read_yaml(path: Path) -> tuple[Any, str]:
    """The parsed document and its text; a ConfigError naming the file (and line) when it cannot be read."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the experiment file ({e.strerror or e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{at}: not valid YAML: {problem}") from None
    return raw, text


def apply_overrides(
    raw: Mapping[str, Any], overrides: Iterable[str], *, source: str = "--set"
) -> dict[str, Any]:
    """``["search.num_samples=8", "train.epochs=3"]`` applied to a copy of ``raw``; values parse as YAML
    (``=8`` is an int, ``=[adamw, lion]`` a list, ``=null`` None)."""
    out = json.loads(json.dumps(raw, default=str)) if raw else {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError.invalid("--set", item, "key.path=value, e.g. search.num_samples=8")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError.invalid(
                f"--set {key}", text, "a YAML value (number, string, list, mapping)"
            ) from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError.invalid(f"--set {key}", item, f"{part!r} holds {child!r}, not a section")
            node = child
        node[parts[-1]] = value
    return out


def key_lines(text: str) -> dict[str, int]:
    """``{"search.strategy": 7, ...}``: the line of every mapping key of a YAML document (1-based)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                path = f"{prefix}.{k.value}" if prefix else str(k.value)
                out[path] = k.start_mark.line + 1
                walk(v, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out[f"{prefix}[{i}]"] = v.start_mark.line + 1
                walk(v, f"{prefix}[{i}]")

    walk(root, "")
    return out


def where(source: str, lines: Mapping[str, int], path: str) -> str:
    """``file:line`` of the key ``path`` (or of its nearest parent that has a line), else ``file``."""
    key = path
    while key and key not in lines:
        key = key.rpartition(".")[0]
    return f"{source}:{lines[key]}" if key in lines else source


_UNION_TAG = re.compile(
    r"^(int|float|str|bool|none|list\[.*\]|dict\[.*\]|literal\[.*\]|function-.*|.*-.*\[.*\])$"
)


def config_error(
    e: ValidationError, source: str, lines: Mapping[str, int], sections: Mapping[str, type[BaseModel]]
) -> ConfigError:
    """The first pydantic error as one ConfigError line: where, key path, value, what is allowed.
    ``sections`` maps a key path (``""`` for the top) to its model, for the allowed keys of a typo."""
    errors = e.errors()
    err = errors[0]

    def clean(loc: tuple) -> list[str]:  # drop pydantic's union-member tags (int, literal['full'], ...)
        return [str(x) for x in loc if not _UNION_TAG.match(str(x))]

    loc = clean(err["loc"])
    same = [x for x in errors if clean(x["loc"]) == loc and x["type"] != "extra_forbidden"]
    path = ".".join(p for p in loc if not p.isdigit())
    path = "run" if path == "run_" else path.replace("run_.", "run.")
    at = where(source, lines, path)
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, _, name = path.rpartition(".")
        model = sections.get(parent)
        allowed = [f.alias or n for n, f in model.model_fields.items()] if model else []
        hint = did_you_mean(name, allowed)
        return ConfigError(f"{at}: {path} is not a known key{hint}; allowed: {', '.join(allowed)}")
    if kind == "missing":
        return ConfigError(f"{at}: {path} is required")
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    msgs = []
    for x in same or [err]:
        m = expected(x)
        if m not in msgs:
            msgs.append(m)
    msg = " or ".join(msgs)
    return ConfigError(f"{at}: {path} = {shown} is not allowed: {msg}")
