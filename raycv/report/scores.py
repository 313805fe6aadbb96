"""The comparison table's numbers: per model, fold kappas, their mean and spread, and the
pooled out-of-fold kappa with its patient-bootstrap interval, accuracy and macro F1, and
the calibration of its probabilities (Brier score, ECE).

Point values are scikit-learn's, from predictions.csv in the config's class order, so
anyone can recompute them; only the intervals come from the bootstrap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from raycv.metrics import f1_per_class
from raycv.report.load import RunRecord
from raycv.statistics.bootstrap import Interval, bootstrap_kappa, repeat_confusions
from raycv.statistics.calibration import calibration


@dataclass
class ModelScores:
    model: str
    kappa_per_fold: list[float]  # NaN where one fold's kappa is undefined
    kappa_mean: float
    kappa_std: float  # population std over folds, as summary.json
    # all out-of-fold predictions together (with repeats: the mean over repeats of each
    # repeat's), patient-bootstrap CI
    kappa_pooled: Interval
    accuracy: float  # over every prediction row
    macro_f1: float  # over every prediction row
    f1_per_class: list[float]  # each class's F1 over every prediction row, in class order
    n_predicted: int  # visits the model predicts (an image model: those with its image)
    brier: float | None  # multi-class Brier score of its probabilities (0 is perfect)
    ece: float | None  # expected calibration error, 10 equal-width confidence bins


def sklearn_kappa(y_true, y_pred, n_classes: int, kappa_weights: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined kappa (one class) is NaN, said in the table
        return float(
            cohen_kappa_score(
                y_true,
                y_pred,
                labels=list(range(n_classes)),
                weights=None if kappa_weights == "none" else kappa_weights,
            )
        )


def confusions_by_model(run: RunRecord) -> dict[str, np.ndarray]:
    """Per model, (R, P, C, C) confusion counts per repeat and patient (same patient order
    for all; R = 1 for an unrepeated run)."""
    n = len(run.classes)
    return {
        m: repeat_confusions(run.patient_id, run.y, run.preds[m], n, run.predicted(m), run.repeats)
        for m in run.models
    }


def model_scores(run: RunRecord, confusions: dict, draws: np.ndarray) -> list[ModelScores]:
    n = len(run.classes)
    folds = run.folds
    calibrated = calibration(run.predictions, run.models, run.classes)
    out = []
    for m in run.models:
        known = run.predicted(m)
        y, pred = run.y[known], run.preds[m][known]
        # one kappa per (repeat, fold) unit, in summary.json's kappa_per_fold order
        repeats = run.repeats[known]
        per_fold = [
            sklearn_kappa(y[in_unit], pred[in_unit], n, run.kappa_weights)
            for r, k in run.units
            for in_unit in [(repeats == r) & (folds[known] == k)]
        ]
        out.append(
            ModelScores(
                model=m,
                kappa_per_fold=per_fold,
                kappa_mean=float(np.mean(per_fold)),
                kappa_std=float(np.std(per_fold)),
                kappa_pooled=bootstrap_kappa(confusions[m], draws, run.kappa_weights),
                accuracy=float(accuracy_score(y, pred)),
                macro_f1=float(
                    f1_score(y, pred, labels=list(range(n)), average="macro", zero_division=0)
                ),
                f1_per_class=[float(v) for v in f1_per_class(y, pred, n)],
                n_predicted=int(known.sum()),
                brier=calibrated[m]["brier"],
                ece=calibrated[m]["ece"],
            )
        )
    return out
