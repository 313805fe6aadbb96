"""Reports: tables, figures and pages built from a finished run folder, never by training.

`build_report` is imported lazily so that `raycv run`, which only needs the text tables,
does not pay for matplotlib and scikit-learn's report code at start-up.
"""

from __future__ import annotations

from pathlib import Path


def build_report(run_dir: Path, n_boot: int = 2000, seed: int = 0) -> list[Path]:
    """Write report.html, report.md and PNG figures into a run or tune folder."""
    from raycv.report.build import build_report as build

    return build(run_dir, n_boot, seed)


def try_build_report(run_dir: Path, n_boot: int = 2000, seed: int = 0) -> list[Path]:
    """build_report that logs a warning instead of raising (for the end of run and tune)."""
    from raycv.report.build import try_build_report as build

    return build(run_dir, n_boot, seed)
