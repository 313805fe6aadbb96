"""The numbers a journal reviewer asks for beside the kappas: calibration (Brier, ECE),
corrected model comparisons (Nadeau & Bengio), kappa by subgroup.

Compute side: plain functions of the predictions table (and, for subgroups, the metadata
table its caller reads: raycv.subgroup_data), so summary.json's fields are the same
whether a run writes them or `raycv report RUN --set report.subgroups=[...]` recomputes
them. Knows nothing of configs or of how data is loaded.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from raycv.statistics.calibration import calibration
from raycv.statistics.corrected import comparisons
from raycv.statistics.subgroups import SubgroupError, subgroup_scores
from raycv.summary import RunSummary

# the subgroup intervals a run writes; `raycv report --bootstrap/--seed` may redo them
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def with_statistics(
    summary: RunSummary,
    predictions: pd.DataFrame,
    subgroups: pd.DataFrame | None = None,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> RunSummary:
    """`summary` with its statistics (re)computed from predictions: brier and ece of each
    model, the comparisons, and kappa per value of each column of `subgroups` (the
    metadata table indexed by sample_id, one column per report.subgroups column, in
    order; None: no subgroups) with the bootstrap settings of their intervals. The
    formulas are in each module's docstring; `summary` itself is left as it was."""
    models, classes, weights = list(summary.models), summary.classes, summary.kappa_weights
    calibrated = calibration(predictions, models, classes)
    groups = (
        {}
        if subgroups is None
        else subgroup_scores(
            predictions, subgroups, list(subgroups.columns), models, classes, weights, n_boot, seed
        )
    )
    return dataclasses.replace(
        summary,
        models={m: dataclasses.replace(s, **calibrated[m]) for m, s in summary.models.items()},
        comparisons=comparisons(predictions, models, classes, weights),
        subgroups=groups,
        subgroups_bootstrap={"resamples": n_boot, "seed": seed},
    )


__all__ = ["SubgroupError", "with_statistics"]
