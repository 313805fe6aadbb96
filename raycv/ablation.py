"""An ablation's results, side by side: combinations.csv, comparisons.csv, summary.json.

Computed from the combinations' run folders on disk (combos/<name>/predictions.csv and
summary.json), so every number can be recomputed from the files. Each combination's
model is its fusion, or its single model. The formulas:

- kappa_pooled_ci_low/high: the pooled kappa's 95% patient bootstrap (2000 resamples,
  seed 0; the same patient draws for every combination);
- inner_val_kappa_mean: the mean over (repeat, fold) units of the model's kappa on the
  unit's inner-validation split (what a choice among combinations may look at);
- f1_<class>: F1 of that class over all the model's prediction rows (pooled);
- comparisons: each other combination against the reference, the corrected resampled
  t-test (raycv.statistics.corrected) over the units, on the visits both predict, and
  p_holm, Holm's adjustment over every row (raycv.statistics.holm);
- nested_kappa: per unit the combination best on its inner-validation kappa, scored on
  its outer fold, averaged (raycv.statistics.nested): the honest estimate of "pick the
  best combination, then use it"; best_by_inner_val's own kappa_mean is optimistic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raycv.combinations import Combination
from raycv.runfolder import RunFolder
from raycv.statistics.bootstrap import bootstrap_kappa, patient_draws, repeat_confusions
from raycv.statistics.corrected import compare
from raycv.statistics.holm import holm
from raycv.statistics.nested import nested_estimate
from raycv.statistics.predictions import labels, predicted, predicted_classes, repeats
from raycv.summary import RunSummary, json_safe, read_summary
from raycv.units import unit_name

COMBOS = "combos"  # the combinations' run folders, under the ablation folder
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
KEYS = ("repeat", "sample_id")  # a prediction row: one visit in one repeat


@dataclass
class AblationSummary:
    """An ablation's summary.json."""

    combinations: dict[str, dict]  # name -> its combinations.csv row, in run order
    reference: str
    comparisons: list[dict]  # comparisons.csv's rows
    best_by_inner_val: str  # the combination with the best inner_val_kappa_mean
    nested_kappa: float
    nested_per_fold: list[dict]  # per unit: the combination chosen and its two kappas
    shared_phases: list[str]  # what every combination loaded instead of computing it
    wall_seconds: float

    def to_json(self) -> dict:
        return json_safe(
            {
                "combinations": self.combinations,
                "reference": self.reference,
                "comparisons": self.comparisons,
                "best_by_inner_val": self.best_by_inner_val,
                "nested_kappa": self.nested_kappa,
                "nested_per_fold": self.nested_per_fold,
                "shared_phases": self.shared_phases,
                "wall_seconds": self.wall_seconds,
            }
        )

    @classmethod
    def from_json(cls, obj: dict) -> AblationSummary:
        return cls(**obj)


def read_ablation(folder: str | Path) -> AblationSummary:
    return AblationSummary.from_json(json.loads((Path(folder) / "summary.json").read_text()))


def ablation_summary(
    run_folder: RunFolder,
    combos: list[Combination],
    ref: Combination,
    shared_phases: list[str],
    wall: float,
) -> AblationSummary:
    """Read every combination's run folder under `folder`, write the ablation's tables
    (combinations.csv, comparisons.csv, summary.json) and return its summary."""
    folder = run_folder.path
    runs = {c.name: read_summary(folder / COMBOS / c.name / "summary.json") for c in combos}
    merged = merged_predictions(folder, combos, list(runs[ref.name].classes))
    rows = [combination_row(c, runs[c.name], merged) for c in combos]
    table = pd.DataFrame(rows)
    comparisons = comparison_rows(merged, combos, ref, runs[ref.name])
    units = [unit_name(f.repeat, f.fold) for f in runs[ref.name].folds]
    nested = nested_estimate(unit_kappas(combos, runs, units), units, "combination")
    best = table.loc[table["inner_val_kappa_mean"].astype(float).idxmax(), "combination"]
    summary = AblationSummary(
        combinations={r["combination"]: r for r in rows},
        reference=ref.name,
        comparisons=comparisons,
        best_by_inner_val=str(best),
        nested_kappa=nested["kappa_mean"],
        nested_per_fold=nested["per_fold"],
        shared_phases=shared_phases,
        wall_seconds=round(wall, 2),
    )
    run_folder.write_csv("combinations.csv", table)
    run_folder.write_csv("comparisons.csv", pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS))
    run_folder.write_json("summary.json", summary.to_json())
    return summary


def merged_predictions(folder: Path, combos: list[Combination], classes: list[str]) -> pd.DataFrame:
    """One predictions table of every combination's model, its pred_/prob_ columns named
    after the combination (pred_metadata+thermal_map), on the rows every run shares."""
    merged = None
    for c in combos:
        table = pd.read_csv(
            folder / COMBOS / c.name / "predictions.csv",
            dtype={"sample_id": str, "patient_id": str},
        )
        own = {f"pred_{c.model}": f"pred_{c.name}"}
        own |= {f"prob_{c.model}_{k}": f"prob_{c.name}_{k}" for k in classes}
        if merged is None:
            ids = ["sample_id", "patient_id", "repeat", "fold", "label"]
            merged = table[[*ids, *own]].rename(columns=own)
        else:
            part = table[[*KEYS, *own]].rename(columns=own)
            merged = merged.merge(part, on=list(KEYS), validate="one_to_one")
    return merged


def combination_row(combo: Combination, run: RunSummary, merged: pd.DataFrame) -> dict:
    """One row of combinations.csv."""
    scores, classes = run.models[combo.model], list(run.classes)
    y = labels(merged, classes)
    known = predicted(merged, combo.name)
    pred = predicted_classes(merged, combo.name, classes)
    n = len(classes)
    confusions = repeat_confusions(
        merged["patient_id"].to_numpy(), y, pred, n, known, repeats(merged)
    )
    draws = patient_draws(confusions.shape[1], BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
    interval = bootstrap_kappa(confusions, draws, run.kappa_weights)
    val = [f.val_kappa.get(combo.model) for f in run.folds]
    val = [v for v in val if v is not None and v == v]
    return {
        "combination": combo.name,
        "n_modalities": len(combo.modalities),
        "kappa_mean": scores.kappa_mean,
        "kappa_std": scores.kappa_std,
        "kappa_pooled": scores.kappa_pooled,
        "kappa_pooled_ci_low": interval.low,
        "kappa_pooled_ci_high": interval.high,
        "inner_val_kappa_mean": float(np.mean(val)) if val else None,
        "accuracy_mean": scores.accuracy_mean,
        "macro_f1_mean": scores.macro_f1_mean,
        **{f"f1_{c}": scores.f1_per_class[c] for c in classes},
        "brier": scores.brier,
        "ece": scores.ece,
        "n_predicted": scores.n_predicted,
    }


COMPARISON_COLUMNS = [
    "combination",
    "reference",
    "mean_difference",
    "t",
    "df",
    "p_value",
    "p_holm",
    "ci95_low",
    "ci95_high",
]


def comparison_rows(
    merged: pd.DataFrame, combos: list[Combination], ref: Combination, ref_run: RunSummary
) -> list[dict]:
    """comparisons.csv: every other combination against the reference, Holm over all rows."""
    rows = []
    for c in combos:
        if c == ref:
            continue
        test = compare(merged, c.name, ref.name, list(ref_run.classes), ref_run.kappa_weights)
        low, high = test.ci95 if test.ci95 is not None else (None, None)
        rows.append(
            {
                "combination": c.name,
                "reference": ref.name,
                "mean_difference": test.mean_difference,
                "t": test.t,
                "df": test.df,
                "p_value": test.p_value,
                "ci95_low": low,
                "ci95_high": high,
            }
        )
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return [{k: row[k] for k in COMPARISON_COLUMNS} for row in rows]


def unit_kappas(
    combos: list[Combination], runs: dict[str, RunSummary], units: list[str]
) -> pd.DataFrame:
    """Per combination: its model's inner-validation and outer kappa of every unit."""
    rows = []
    for c in combos:
        run = runs[c.name]
        row = {"combination": c.name}
        outer = run.models[c.model].kappa_per_fold
        for unit, fold, kappa in zip(units, run.folds, outer, strict=True):
            row[f"val_kappa_{unit}"] = fold.val_kappa.get(c.model)
            row[f"outer_kappa_{unit}"] = kappa
        rows.append(row)
    return pd.DataFrame(rows).astype({"combination": str})
