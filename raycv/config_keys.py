"""`raycv config`: every config key, its value and its meaning, without reading the source.

The meaning of a key is the comment beside its field in config.py (on the field's line,
or the comment lines just above it; a field a subclass only re-defaults keeps its base
class's comment). The comments stay the one source: this module reads them with
`tokenize` instead of repeating them.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
from functools import cache
from typing import get_type_hints

import yaml

from raycv.config import Config
from raycv.config_coercion import is_dataclass_type


@cache
def field_comments(cls: type) -> dict[str, str]:
    """{field name: its comment} of a config dataclass, its base classes' included."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass) and klass is not object:
            out.update(_own_comments(klass))
    return out


def _own_comments(cls: type) -> dict[str, str]:
    source = inspect.getsource(cls)
    lines: dict[int, list[tokenize.TokenInfo]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        lines.setdefault(tok.start[0], []).append(tok)
    names = {f.name for f in dataclasses.fields(cls)}
    out, above = {}, []
    for number in sorted(lines):
        toks = [t for t in lines[number] if t.type not in (tokenize.INDENT, tokenize.DEDENT)]
        kinds = [t.type for t in toks]
        if kinds and kinds[0] == tokenize.COMMENT:  # a comment line: it may describe the next
            above.append(toks[0].string.lstrip("# ").strip())
            continue
        is_field = (
            len(toks) > 1
            and toks[0].type == tokenize.NAME
            and toks[0].string in names
            and toks[1].string == ":"
            and toks[0].start[1] == 4  # a class-level field, not a line inside a method
        )
        if is_field:
            trailing = [t.string.lstrip("# ").strip() for t in toks if t.type == tokenize.COMMENT]
            text = " ".join(above + trailing)
            if text:
                out[toks[0].string] = text
        if kinds and kinds[0] != tokenize.NL:
            above = []
    return out


def config_keys(config: Config) -> list[tuple[str, object, str]]:
    """(dotted key, value, meaning) of every key, in the order config.py declares them."""
    out = []

    def walk(obj, cls, prefix):
        comments = field_comments(cls)
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            value = getattr(obj, f.name)
            if is_dataclass_type(hints[f.name]):
                walk(value, hints[f.name], f"{prefix}{f.name}.")
            elif isinstance(value, dict) and any(
                dataclasses.is_dataclass(v) for v in value.values()
            ):
                sections = {k: dataclasses.asdict(v) for k, v in value.items()}
                out.append((f"{prefix}{f.name}", sections, comments.get(f.name, "")))
            else:
                out.append((f"{prefix}{f.name}", value, comments.get(f.name, "")))

    walk(config, Config, "")
    return out


def describe(config: Config) -> str:
    """One line per key: `key = value  # meaning`, values in YAML flow style."""
    rows = [
        (key, yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("..."), text)
        for key, value, text in config_keys(config)
    ]
    rows = [(k, v.strip(), t) for k, v, t in rows]
    width = min(48, max(len(f"{k} = {v}") for k, v, _ in rows))
    return "\n".join(f"{f'{k} = {v}':<{width}}  # {t}" if t else f"{k} = {v}" for k, v, t in rows)
