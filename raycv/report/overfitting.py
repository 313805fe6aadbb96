"""The overfitting check the design asks for: train against inner-validation kappa, per
fold and phase, at the epoch early stopping kept; flagged where the gap exceeds 0.2.

Train kappa in history.csv is measured during the epoch (augmentation and dropout on),
so a gap is if anything understated; a large one still says the phase memorised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raycv.phases import PRETRAIN, TRAINED

GAP_LIMIT = 0.2


def phase_label(phase: str, branch) -> str:
    """'pretrain (thermal_map)' where several branches pretrain; the phase otherwise."""
    if phase == PRETRAIN and isinstance(branch, str) and branch:
        return f"{PRETRAIN} ({branch})"
    return phase


def phases_of(history: pd.DataFrame) -> list[tuple[str, str | None]]:
    """(phase, branch) pairs in training order; branch None where history has none."""
    has_branch = "branch" in history.columns
    keys = history[["phase", "branch"]] if has_branch else history[["phase"]].assign(branch=None)
    pairs = keys.drop_duplicates().itertuples(index=False, name=None)
    rank = {p: i for i, p in enumerate(TRAINED)}
    return sorted(pairs, key=lambda pb: (rank.get(pb[0], len(TRAINED)), str(pb[1])))


def kept_epoch(curve: pd.DataFrame, monitor: str) -> pd.Series:
    """The row early stopping restored: best inner-validation score, first on ties."""
    scores = curve[monitor].to_numpy(dtype=float)
    if np.isnan(scores).all():
        return curve.iloc[-1]
    best = np.nanargmax(scores) if monitor == "val_kappa" else np.nanargmin(scores)
    return curve.iloc[int(best)]


def overfitting_check(history: pd.DataFrame, monitor: str = "val_kappa") -> pd.DataFrame:
    """One row per fold and phase: epochs run, kept epoch, train and inner-validation kappa
    there, their gap, and whether the gap exceeds GAP_LIMIT."""
    rows = []
    for order, (phase, branch) in enumerate(phases_of(history)):
        part = history[history["phase"] == phase]
        if branch is not None:
            part = part[part["branch"] == branch]
        for fold, curve in part.groupby("fold", sort=True):
            curve = curve.sort_values("epoch")
            row = kept_epoch(curve, monitor)
            gap = float(row["train_kappa"]) - float(row["val_kappa"])
            rows.append(
                {
                    "order": order,
                    "fold": int(fold),
                    "phase": phase_label(phase, branch),
                    "epochs": len(curve),
                    "kept_epoch": int(row["epoch"]),
                    "train_kappa": float(row["train_kappa"]),
                    "val_kappa": float(row["val_kappa"]),
                    "gap": gap,
                    "flagged": bool(gap > GAP_LIMIT),
                }
            )
    columns = ["fold", "phase", "epochs", "kept_epoch", "train_kappa", "val_kappa", "gap"]
    table = pd.DataFrame(rows, columns=["order", *columns, "flagged"])
    # fold by fold, phases in training order
    return table.sort_values(["fold", "order"]).drop(columns="order").reset_index(drop=True)
