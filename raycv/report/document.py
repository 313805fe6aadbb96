"""The report as plain blocks (headings, lines, tables, figures) that html.py and
markdown.py both render, so the two pages always say the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Paragraph:
    text: str
    strong: bool = False  # a verdict: the line a reader should not miss


@dataclass
class Bullets:
    items: list[str]
    strong: bool = False


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    flagged: list[bool] | None = None  # rows to highlight (e.g. a train/validation gap)
    text_columns: tuple[int, ...] = (0,)  # left-aligned words; the others are numbers


@dataclass
class Figure:
    path: Path  # PNG beside the report
    caption: str


Block = Paragraph | Bullets | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)


def number(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"
