"""Patient-level bootstrap of Cohen's kappa, and of the paired difference of two models.

A patient's visits are correlated, so the unit of resampling is the patient, not the
sample: a resample draws patients with replacement and takes all their samples. Two
models are compared on the *same* resamples (paired), which cancels the variance that
comes from which patients happened to be drawn.

Fast because each patient's confusion counts are computed once: a resample is then a
weighted sum of those counts (weight = times the patient was drawn) and kappa follows
from the summed (C, C) matrix, all resamples at once. The formula is scikit-learn's
`cohen_kappa_score`; `kappa_from_confusion` on the full sample equals it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # two-sided percentile interval


@dataclass(frozen=True)
class Interval:
    estimate: float  # on the full sample (all patients once)
    low: float | None  # percentile bounds; None when too few resamples were defined
    high: float | None
    n_defined: int  # resamples where kappa was defined (two or more classes seen)

    def text(self, signed: bool = False) -> str:
        fmt = "{:+.3f}" if signed else "{:.3f}"
        if self.estimate != self.estimate:
            return "n/a"
        if self.low is None:
            return f"{fmt.format(self.estimate)} [CI n/a]"
        return f"{fmt.format(self.estimate)} [{self.low:.3f}, {self.high:.3f}]"


def kappa_weight_matrix(n_classes: int, kappa_weights: str) -> np.ndarray:
    """(C, C) disagreement weights, as scikit-learn builds them."""
    i, j = np.indices((n_classes, n_classes))
    if kappa_weights == "none":
        return (i != j).astype(float)
    if kappa_weights == "linear":
        return np.abs(i - j).astype(float)
    if kappa_weights == "quadratic":
        return ((i - j) ** 2).astype(float)
    raise ValueError(f"kappa_weights={kappa_weights!r}: expected none, linear or quadratic")


def kappa_from_confusion(confusion: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kappa of each (..., C, C) confusion matrix (rows true, columns predicted); NaN where
    undefined (scikit-learn's zero denominator: one class on both sides)."""
    confusion = confusion.astype(float)
    n = confusion.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        # (..., C, 1) * (..., 1, C) / n -> (..., C, C): agreement expected by chance
        expected = confusion.sum(-1)[..., :, None] * confusion.sum(-2)[..., None, :]
        expected = expected / n[..., None, None]
        observed = (weights * confusion).sum(axis=(-2, -1))
        chance = (weights * expected).sum(axis=(-2, -1))
        return np.where(chance > 0, 1.0 - observed / np.where(chance > 0, chance, 1.0), np.nan)


def patient_confusions(
    patient_id: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """(P, C, C) confusion counts per patient, patients in sorted-id order.

    keep: (n,) bool, the rows to count (e.g. the visits a model predicts); every patient
    keeps its place, so confusions of different row subsets share one set of draws.
    """
    _, patient = np.unique(np.asarray(patient_id), return_inverse=True)
    n_patients = patient.max() + 1
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if keep is not None:
        patient, y_true, y_pred = patient[keep], y_true[keep], y_pred[keep]
    cell = patient * n_classes * n_classes + y_true * n_classes + y_pred
    counts = np.bincount(cell, minlength=n_patients * n_classes * n_classes)
    return counts.reshape(n_patients, n_classes, n_classes)


def repeat_confusions(
    patient_id: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    keep: np.ndarray,
    repeat: np.ndarray,
) -> np.ndarray:
    """(R, P, C, C): patient_confusions of each repeat's rows (cv.repeats), patients in the
    same places in every repeat, so one set of draws resamples them all alike."""
    return np.stack(
        [
            patient_confusions(patient_id, y_true, y_pred, n_classes, keep & (repeat == r))
            for r in np.unique(repeat)
        ]
    )


def patient_draws(n_patients: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, P) times each patient is drawn in each resample (each row sums to P)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_patients, size=(n_boot, n_patients))
    # offset each resample's picks so one bincount counts every row at once
    flat = (picks + np.arange(n_boot)[:, None] * n_patients).ravel()
    return np.bincount(flat, minlength=n_boot * n_patients).reshape(n_boot, n_patients)


def resampled_kappas(confusions: np.ndarray, draws: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_boot,) kappa of each resample: (B, P) @ (P, C*C) -> (B, C, C) -> (B,)."""
    n_classes = confusions.shape[-1]
    summed = draws @ confusions.reshape(len(confusions), -1)
    return kappa_from_confusion(summed.reshape(-1, n_classes, n_classes), weights)


def _interval(estimate: float, resampled: np.ndarray) -> Interval:
    defined = resampled[~np.isnan(resampled)]
    # a CI from a minority of resamples would describe a different population
    if len(defined) < max(1, len(resampled) // 2):
        return Interval(float(estimate), None, None, len(defined))
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), len(defined))


def _per_repeat(confusions: np.ndarray) -> np.ndarray:
    """(P, C, C) -> (1, P, C, C); (R, P, C, C) as it is."""
    confusions = np.asarray(confusions)
    return confusions[None] if confusions.ndim == 3 else confusions


def pooled_kappa(confusions: np.ndarray, draws: np.ndarray, weights: np.ndarray):
    """(estimate, (n_boot,) resampled) of the pooled kappa: of all samples together, or
    with repeats ((R, P, C, C) confusions) the mean over repeats of each repeat's pooled
    kappa, every repeat on the same patient resample."""
    per_repeat = _per_repeat(confusions)
    estimate = np.mean([kappa_from_confusion(c.sum(0), weights) for c in per_repeat])
    resampled = np.mean([resampled_kappas(c, draws, weights) for c in per_repeat], axis=0)
    return float(estimate), resampled


def bootstrap_kappa(confusions: np.ndarray, draws: np.ndarray, kappa_weights: str) -> Interval:
    """Pooled kappa (see pooled_kappa) with its patient-bootstrap percentile interval."""
    weights = kappa_weight_matrix(confusions.shape[-1], kappa_weights)
    return _interval(*pooled_kappa(confusions, draws, weights))


def paired_difference(
    confusions_a: np.ndarray, confusions_b: np.ndarray, draws: np.ndarray, kappa_weights: str
) -> Interval:
    """kappa(a) - kappa(b), both on the same patient resamples; a model against itself
    gives exactly 0 in every resample."""
    weights = kappa_weight_matrix(confusions_a.shape[-1], kappa_weights)
    estimate_a, resampled_a = pooled_kappa(confusions_a, draws, weights)
    estimate_b, resampled_b = pooled_kappa(confusions_b, draws, weights)
    return _interval(estimate_a - estimate_b, resampled_a - resampled_b)
