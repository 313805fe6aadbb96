"""The nested estimate of a selection: choose per unit, score on that unit's outer fold.

Choosing the best candidate (a search's trial, an ablation's combination) by its mean
inner-validation kappa still lets unit k's choice see patients that are other units' test
patients, so the chosen candidate's outer kappas are optimistic. The nested estimate picks,
per (repeat, fold) unit, the candidate best on that unit's own inner-validation kappa and
takes its outer kappa there, which the choice never saw; the mean over units is the honest
estimate of "pick the best, then use it" (README: science rule 7).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raycv.errors import RaycvError
from raycv.units import parse_unit, unit_label


def nested_estimate(table: pd.DataFrame, units: list[str], candidate: str) -> dict:
    """table: one row per candidate (its name in column `candidate`), with columns
    val_kappa_<unit> and outer_kappa_<unit>. Ties go to the first row. -> {"kappa_mean",
    "per_fold": [{"repeat", "fold", candidate, "val_kappa", "outer_kappa"}]}."""
    picks = []
    for unit in units:
        val, outer = f"val_kappa_{unit}", f"outer_kappa_{unit}"
        scored = table.dropna(subset=[val, outer])
        if scored.empty:
            raise RaycvError(f"no {candidate} has both kappas of {unit_label(unit)}")
        best = scored.loc[scored[val].astype(float).idxmax()]
        repeat, fold = parse_unit(unit)
        picks.append(
            {
                "repeat": repeat,
                "fold": fold,
                candidate: best[candidate],
                "val_kappa": float(best[val]),
                "outer_kappa": float(best[outer]),
            }
        )
    return {"kappa_mean": float(np.mean([p["outer_kappa"] for p in picks])), "per_fold": picks}
