"""The metadata columns `report.subgroups` names, read through the data layer for
raycv.statistics (which takes the table and never loads data itself): by a run before it
trains, and by `raycv report RUN --set report.subgroups=[...]` from the run's config.
Reads metadata.csv (or regenerates the synthetic cohort's), never an image."""

from __future__ import annotations

import pandas as pd

from raycv.config import Config, ConfigError
from raycv.data import load_table, resolved_settings


def check_columns(columns: list[str], available: list[str], roles: list[str], where: str) -> None:
    """Refuse, by name, a subgroup column that is not in the metadata table (or is an id or
    the label, which make no subgroup)."""
    if dup := sorted({c for c in columns if columns.count(c) > 1}):
        raise ConfigError(f"report.subgroups lists {dup} more than once; name each column once")
    if clash := [c for c in columns if c in roles]:
        raise ConfigError(
            f"report.subgroups={columns} names {clash}, an id or label column: a subgroup is "
            f"a value shared by several patients' visits; choose among {available}"
        )
    if unknown := [c for c in columns if c not in available]:
        raise ConfigError(
            f"report.subgroups names {unknown}, not a column of {where}; its columns are "
            f"{available} (fix the name or drop it from report.subgroups)"
        )


def subgroup_table(config: Config) -> pd.DataFrame | None:
    """The metadata table (indexed by sample_id) with the report.subgroups columns, in
    that order, each checked to be in it; None when report.subgroups names none."""
    columns = list(config.report.subgroups)
    if not columns:
        return None
    table = load_table(config)
    roles = resolved_settings(config).columns
    where = (
        f"data.path={config.data.path!r}'s metadata.csv"
        if config.data.path is not None
        else "the synthetic cohort's metadata"
    )
    check_columns(
        columns, list(table.columns), [roles.sample_id, roles.patient_id, roles.label], where
    )
    return table[columns]


def check_subgroups(config: Config) -> None:
    """Refuse an unknown report.subgroups column by name, before any training."""
    subgroup_table(config)
