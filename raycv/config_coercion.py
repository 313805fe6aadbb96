"""Nested YAML mappings and `--set key=value` text -> typed dataclasses, strictly.

The engine under raycv.config, generic over the dataclasses it builds: a field's type
hint is its contract. An unknown key or a value that cannot be coerced to the declared
type is refused with a ConfigError naming the dotted key, the value and what is allowed.
Coercion exists because plain YAML 1.1 reads `1e-7` as a string, and because `--set`
values arrive as text. What the keys mean, and which of them are checked together,
belongs to raycv.config.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Collection
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from raycv.errors import RaycvError


class ConfigError(RaycvError, ValueError):
    """A config key or value that cannot be used; the message names the key."""


def is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


# -- --set text ---------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r} is not of the form key=value")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r} has no key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse {raw!r} as YAML ({exc})") from None
    return key, value


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, making (or replacing non-mapping) parents as needed."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def flatten(tree: dict, keep_whole: Collection[str] = (), prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted key: leaf value}; the mappings named in keep_whole stay whole."""
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in keep_whole and value:
            out.update(flatten(value, keep_whole, f"{dotted}."))
        else:
            out[dotted] = value
    return out


# -- a nested mapping -> a dataclass ------------------------------------------


def build(cls, raw: dict, prefix: str = ""):
    """`cls(**raw)`, its nested dataclass fields built the same way and every other value
    coerced to its field's type; ConfigError for an unknown key or an unusable value.
    Each dataclass's own __post_init__ checks run as it is built."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(
                f"unknown config key {dotted!r}; allowed under "
                f"{prefix.rstrip('.') or 'the top level'}: {', '.join(names)}"
            )
        tp = hints[key]
        if is_dataclass_type(tp):
            kwargs[key] = build(tp, value if value is not None else {}, f"{dotted}.")
            continue
        if (section := _section_of_mapping(tp)) is not None:  # name -> section of its own
            if not isinstance(value or {}, dict):
                raise ConfigError(f"{dotted} must be a mapping, got {value!r}")
            kwargs[key] = {
                str(name): build(section, spec if spec is not None else {}, f"{dotted}.{name}.")
                for name, spec in (value or {}).items()
            }
            continue
        out = _coerce(value, tp)
        if out is _NO:
            raise ConfigError(f"{dotted}={value!r} is not allowed: expected {_describe(tp)}")
        kwargs[key] = out
    return cls(**kwargs)


def key_type(cls, dotted: str):
    """The declared type of a dotted key under dataclass `cls`; a key inside a mapping
    field (`fusion.weights.metadata`) has the mapping's value type. ConfigError if unknown."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        hints = get_type_hints(cls)
        if part not in hints:
            raise ConfigError(f"unknown config key {dotted!r}")
        tp = hints[part]
        if is_dataclass_type(tp):
            cls = tp
            continue
        if (section := _section_of_mapping(tp)) is not None and i <= len(parts) - 3:
            return key_type(section, ".".join(parts[i + 2 :]))  # image.modalities.<m>.<key>
        mapping = [a for a in (tp, *get_args(tp)) if get_origin(a) is dict]
        if mapping and i == len(parts) - 2:
            return get_args(mapping[0])[1]
        if i != len(parts) - 1:
            raise ConfigError(f"unknown config key {dotted!r}")
        return tp
    raise ConfigError(f"{dotted!r} names a section, not a key")


def _section_of_mapping(tp):
    """The dataclass V of a `dict[str, V]` field (a section per name), else None."""
    if get_origin(tp) is dict and is_dataclass_type(get_args(tp)[1]):
        return get_args(tp)[1]
    return None


def accepts(tp, value: Any) -> bool:
    """Whether `value` can be coerced to type `tp`."""
    return _coerce(value, tp) is not _NO


# -- values -> declared types -------------------------------------------------


def _describe(tp) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_describe(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0])}"
    if origin is dict:
        k, v = get_args(tp)
        return f"a mapping of {_describe(k)} to {_describe(v)}"
    return {int: "an int", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


_NO = object()


def _coerce(value: Any, tp) -> Any:
    """Return `value` as type `tp`, or _NO when it cannot be."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        return None if value is None or value == "null" else _NO
    if origin is Literal:
        for allowed in get_args(tp):
            if value == allowed or (isinstance(value, str) and value == str(allowed)):
                return allowed
        return _NO
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        # try exact-looking members first so "all" stays a string and 3 stays an int
        for arg in sorted(args, key=lambda a: a in (str, float)):
            out = _coerce(value, arg)
            if out is not _NO:
                return out
        return _NO
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return _NO
    if tp in (int, float):
        return _number(value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return _NO
    if origin is list:
        if not isinstance(value, list | tuple):
            return _NO
        (item_tp,) = get_args(tp)
        out = [_coerce(v, item_tp) for v in value]
        return _NO if any(v is _NO for v in out) else out
    if origin is dict:
        if not isinstance(value, dict):
            return _NO
        k_tp, v_tp = get_args(tp)
        out = {_coerce(k, k_tp): _coerce(v, v_tp) for k, v in value.items()}
        bad = any(k is _NO or v is _NO for k, v in out.items())
        return _NO if bad else out
    if tp is dict:
        return value if isinstance(value, dict) else _NO
    raise TypeError(f"config type {tp!r} has no coercion")  # a bug in this module


def _number(value: Any, tp: type) -> Any:
    """`value` as an int or float, or _NO; text is parsed ('1e-7' -> 1e-07), bools refused."""
    if isinstance(value, bool):
        return _NO
    if isinstance(value, str):
        try:
            value = tp(value)
        except ValueError:
            return _NO
    if isinstance(value, float) and tp is int:
        return int(value) if value.is_integer() else _NO
    return tp(value) if isinstance(value, int | float) else _NO
