"""Names of the units of work: one outer fold of one repeat of the split.

An unrepeated run's units are `fold<k>`, the names its folders, checkpoints and logs
always had; repeat i > 0 of a repeated CV (cv.repeats) adds `r<i>-fold<k>`.
"""

from __future__ import annotations


def unit_name(repeat: int, fold: int) -> str:
    return f"fold{fold}" if repeat == 0 else f"r{repeat}-fold{fold}"


def parse_unit(unit: str) -> tuple[int, int]:
    """unit name -> (repeat, fold)."""
    repeat, _, fold = unit.rpartition("-")
    return (int(repeat[1:]) if repeat else 0), int(fold.removeprefix("fold"))


def unit_label(unit: str) -> str:
    """How logs say it: 'fold 2', or 'repeat 1 fold 2'."""
    repeat, fold = parse_unit(unit)
    return f"fold {fold}" if repeat == 0 else f"repeat {repeat} fold {fold}"


def unit_short(unit: str) -> str:
    """How the status line says it: 'f2', or 'r1f2'."""
    repeat, fold = parse_unit(unit)
    return f"f{fold}" if repeat == 0 else f"r{repeat}f{fold}"
