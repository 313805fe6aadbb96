"""The numbers a journal reviewer asks for beside the kappas: calibration (Brier, ECE),
corrected model comparisons (Nadeau & Bengio), kappa by subgroup.

Compute side: plain functions of the predictions table (and, for subgroups, the dataset's
metadata table, read without images), so summary.json's fields are the same whether a
run writes them or `raycv report RUN --set report.subgroups=[...]` recomputes them.
"""

from __future__ import annotations

import pandas as pd

from raycv.config import Config
from raycv.data import load_table, resolved_settings
from raycv.statistics.calibration import calibration
from raycv.statistics.corrected import comparisons
from raycv.statistics.subgroups import SubgroupError, check_columns, subgroup_scores

# the subgroup intervals a run writes; `raycv report --bootstrap/--seed` may redo them
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def subgroup_table(config: Config) -> pd.DataFrame | None:
    """The metadata table (indexed by sample_id) when report.subgroups names columns, each
    checked to be in it; None when it names none. Reads no image."""
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
    return table


def check_subgroups(config: Config) -> None:
    """Refuse an unknown report.subgroups column by name, before any training."""
    subgroup_table(config)


def with_statistics(
    summary: dict,
    predictions: pd.DataFrame,
    config: Config,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """`summary` (results.summarize's, in summary.json's shape) with brier and ece added
    to each model, then "comparisons", "subgroups" and the subgroups' bootstrap settings
    (the formulas are in each module's docstring); `summary` itself is left as it was."""
    models, classes = list(summary["models"]), list(summary["classes"])
    weights = summary["kappa_weights"]
    calibrated = calibration(predictions, models, classes)
    table = subgroup_table(config)
    groups = (
        {}
        if table is None
        else subgroup_scores(
            predictions,
            table,
            list(config.report.subgroups),
            models,
            classes,
            weights,
            n_boot,
            seed,
        )
    )
    out = {}
    for key, value in summary.items():
        if key == "models":
            value = {m: {**value[m], **calibrated[m]} for m in models}
        out[key] = value
        if key == "models":
            out["comparisons"] = comparisons(predictions, models, classes, weights)
            out["subgroups"] = groups
            out["subgroups_bootstrap"] = {"resamples": n_boot, "seed": seed}
    return out


__all__ = ["SubgroupError", "check_subgroups", "subgroup_table", "with_statistics"]
