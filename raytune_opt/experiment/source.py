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

__all__ = ["read_yaml", "load_yaml", "apply_overrides", "key_lines", "config_error", "where"]


#: the largest experiment file read (bytes), the deepest nesting and the most nodes it may expand to
#: (aliases counted at every use): bounds that a hand-written experiment never nears, and that stop a
#: "billion laughs" file or a runaway generator before they exhaust memory or time
MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000

#: YAML 1.2's floats (``1e-3``, ``1E5``, ``.5``): PyYAML reads YAML 1.1, where ``1e-3`` is a string
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats and duplicate mapping keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a mapping key must be a plain value, got {key!r}", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key]}; YAML keeps only the last)",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    _Loader.yaml_implicit_resolvers[_first] = [
        r for r in _Loader.yaml_implicit_resolvers.get(_first, []) if r[0] != "tag:yaml.org,2002:float"
    ]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _check_size(root: yaml.Node | None, where: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH, expanding (aliases at every use) to more than
    MAX_NODES nodes, or whose aliases refer to themselves."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int, path: frozenset[int]) -> int:
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if id(node) in path:
            raise ConfigError(f"{where}:{node.start_mark.line + 1}: an alias refers to itself")
        if id(node) in sizes:
            return sizes[id(node)]
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [x for pair in node.value for x in pair]
        inner = path | {id(node)}
        total = 1 + sum(size(c, depth + 1, inner) for c in children)
        if total > MAX_NODES:
            raise ConfigError(
                f"{where}: expands to more than {MAX_NODES} values (aliases counted at each use)"
            )
        sizes[id(node)] = total
        return total

    if root is not None:
        size(root, 0, frozenset())


def load_yaml(text: str, where: str) -> Any:
    """Parse an experiment's YAML text: YAML 1.2 numbers, duplicate keys refused, bounded in size,
    depth and alias expansion; every problem one ConfigError line naming ``where`` (and the line)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_BYTES} bytes: not an experiment file")
    try:
        root = yaml.compose(text, Loader=_Loader)
        _check_size(root, where)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None else where
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{at}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply (at most {MAX_DEPTH} levels)") from None


def read_yaml(path: Path) -> tuple[Any, str]:
    """The parsed document and its text; a ConfigError naming the file (and line) when it cannot be
    read (missing, not UTF-8, too large) or parsed (:func:`load_yaml`)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES} bytes: not an experiment file")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the experiment file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    return load_yaml(text, str(path)), text


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
        parts = key.split(".")
        if len(parts) > MAX_DEPTH:
            raise ConfigError.invalid("--set", key[:80], f"a key path of at most {MAX_DEPTH} parts")
        value = load_yaml(text, f"--set {key}")
        parts = _join_optimizer_key(parts)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError.invalid(f"--set {key}", item, f"{part!r} holds {child!r}, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _join_optimizer_key(parts: list[str]) -> list[str]:
    """``search.space.adamw.lr`` addresses the space's entry ``"adamw.lr"`` (an optimizer-aware key,
    :mod:`raytune_opt.keys`), not a section ``adamw`` with a key ``lr``."""
    if len(parts) >= 4 and parts[:2] == ["search", "space"]:
        from raytune_opt import keys, optim

        if parts[2] in optim.available():
            return [*parts[:2], keys.key(parts[2], parts[3]), *parts[4:]]
    return parts


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
