"""Result records: what one fold returns, and the run-level tables built from them.

Compute first, report after: everything here is a plain function of fold results, and
every number in summary.json can be recomputed from predictions.csv.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from raycv.metrics import accuracy, f1_per_class, kappa, macro_f1
from raycv.summary import FoldSummary, ModelSummary
from raycv.units import unit_name


@dataclass
class FoldResult:
    fold: int
    test_index: np.ndarray  # (n_test,) indices into the Dataset
    probs: dict[str, np.ndarray]  # model -> (n_test, C) test probabilities, class order
    val_kappa: dict[str, float]  # model -> kappa on the inner-validation split
    history: list[dict] = field(default_factory=list)  # per phase and epoch
    stage1_val_score: float | None = None
    stage2_val_score: float | None = None  # None: stage 2 never beat stage 1
    stage2_kept: bool | None = None  # None: no fusion in this config
    fusion_weights: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    repeat: int = 0  # the repetition of the split (cv.repeats) this fold belongs to
    # images this fold passed through a timm backbone (0 where every frozen backbone's
    # output came from the cohort's frozen features: raycv.frozen_features)
    backbone_images: int = 0

    @property
    def unit(self) -> str:
        return unit_name(self.repeat, self.fold)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FoldResult:
        return cls(**d)


def model_names(config) -> list[str]:
    """The models of a run, in report order: branches, then the fusion stages."""
    names = list(config.modalities)
    if len(names) >= 2:
        names += ["fusion_stage1", "fusion"]
    return names


def predictions_table(dataset, results: list[FoldResult], models, classes) -> pd.DataFrame:
    """One row per sample and repeat, predicted on its outer test fold (README: the run folder)."""
    frames = []
    for r in sorted(results, key=lambda r: (r.repeat, r.fold)):
        idx = r.test_index
        frame = {
            "sample_id": dataset.sample_id[idx],
            "patient_id": dataset.patient_id[idx],
            "repeat": r.repeat,
            "fold": r.fold,
            "label": np.asarray(classes, dtype=object)[dataset.y[idx]],
        }
        for m in models:
            p = r.probs[m]
            pred = np.asarray(classes, dtype=object)[p.argmax(1)]
            # a visit without an image of m (data.missing_images: mask): empty cells
            pred[np.isnan(p).any(1)] = None
            frame[f"pred_{m}"] = pred
            for c, name in enumerate(classes):
                frame[f"prob_{m}_{name}"] = p[:, c]
        frames.append(pd.DataFrame(frame))
    table = pd.concat(frames, ignore_index=True)
    # repeat by repeat, each in metadata.csv's sample order: two runs compare line by line
    order = {s: i for i, s in enumerate(dataset.sample_id)}
    table["_order"] = table["sample_id"].map(order)
    table = table.sort_values(["repeat", "_order"], kind="stable").drop(columns="_order")
    return table.reset_index(drop=True)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _repeat_column(predictions: pd.DataFrame) -> np.ndarray:
    if "repeat" in predictions:
        return predictions["repeat"].to_numpy(dtype=int)
    return np.zeros(len(predictions), dtype=int)  # written before cv.repeats existed


def units(predictions: pd.DataFrame) -> list[tuple[int, int]]:
    """The (repeat, fold) units of a predictions table, in order."""
    pairs = zip(_repeat_column(predictions), predictions["fold"].to_numpy(dtype=int), strict=True)
    return sorted({(int(r), int(f)) for r, f in pairs})


def summarize(
    predictions: pd.DataFrame, models, classes, kappa_weights: str
) -> dict[str, ModelSummary]:
    """Per-model kappas per (repeat, fold) unit, their mean and std, the pooled kappa,
    accuracy, macro F1 and each class's pooled F1, from predictions.

    Pooled: the kappa of all out-of-fold predictions of a repeat together, averaged over
    repeats (each repeat predicts every visit once). Each model is scored on the visits it
    predicts (`n_predicted`, rows over all repeats): an image model has no prediction for
    a visit without its image (data.missing_images: mask).
    """
    index = {c: i for i, c in enumerate(classes)}
    repeat = _repeat_column(predictions)
    fold = predictions["fold"].to_numpy()
    in_unit = [(repeat == r) & (fold == f) for r, f in units(predictions)]
    in_repeat = [repeat == r for r in np.unique(repeat)]
    y = predictions["label"].map(index).to_numpy()
    n = len(classes)
    out = {}
    for m in models:
        known = predictions[f"pred_{m}"].notna().to_numpy()
        pred = predictions[f"pred_{m}"].map(index).fillna(-1).to_numpy(dtype=int)
        per_fold = _per_group(y, pred, known, in_unit, lambda a, b: kappa(a, b, n, kappa_weights))
        pooled = _per_group(y, pred, known, in_repeat, lambda a, b: kappa(a, b, n, kappa_weights))
        acc = _per_group(y, pred, known, in_unit, accuracy)
        f1 = _per_group(y, pred, known, in_unit, lambda a, b: macro_f1(a, b, n))
        out[m] = ModelSummary(
            kappa_mean=_nan_to_none(float(np.mean(per_fold))),
            kappa_std=_nan_to_none(float(np.std(per_fold))),
            kappa_pooled=_nan_to_none(float(np.mean(pooled))),
            kappa_per_fold=[_nan_to_none(k) for k in per_fold],
            accuracy_mean=_nan_to_none(float(np.mean(acc))),
            macro_f1_mean=_nan_to_none(float(np.mean(f1))),
            n_predicted=int(known.sum()),
            brier=None,  # calibration: raycv.statistics.with_statistics
            ece=None,
            f1_per_class=dict(
                zip(classes, map(float, f1_per_class(y[known], pred[known], n)), strict=True)
            ),
        )
    return out


def fold_summary(r: FoldResult) -> FoldSummary:
    """summary.json's record of one fold."""
    return FoldSummary(
        repeat=r.repeat,
        fold=r.fold,
        n_test=len(r.test_index),
        val_kappa=r.val_kappa,
        stage1_val_score=r.stage1_val_score,
        stage2_val_score=r.stage2_val_score,
        stage2_kept=r.stage2_kept,
        fusion_weights=r.fusion_weights,
        seconds=round(r.seconds, 2),
    )


def _per_group(y, pred, known, groups, metric) -> list[float]:
    """metric(y, pred) over the known rows of each group (NaN for a group with none)."""
    out = []
    for rows in groups:
        rows = rows & known
        out.append(metric(y[rows], pred[rows]) if rows.any() else math.nan)
    return out


def history_table(results: list[FoldResult]) -> pd.DataFrame:
    rows = [
        {"repeat": r.repeat, "fold": r.fold, **row}
        for r in sorted(results, key=lambda r: (r.repeat, r.fold))
        for row in r.history
    ]
    columns = [
        "repeat",
        "fold",
        "phase",
        "branch",
        "epoch",
        "train_loss",
        "train_kappa",
        "val_loss",
        "val_kappa",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)
