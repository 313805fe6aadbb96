"""Nadeau & Bengio's corrected resampled t-test of a per-fold kappa difference.

Cross-validation's test folds are disjoint but its training sets overlap, so the J per-fold
differences d of two models are correlated and the plain paired t-test over folds (variance
s^2 / J) is too confident. Nadeau & Bengio (Machine Learning 52, 2003) inflate the variance
by the share of data each model was tested on against trained on:

    variance = (1/J + n_test/n_train) * s^2,   t = mean(d) / sqrt(variance),   df = J - 1

with s^2 the sample variance of d (ddof 1) and n_test/n_train the mean over units (repeat,
fold) of a unit's test visits over all other visits of its repeat. Two-sided p from
Student's t; ci95 = mean(d) +- t(0.975, df) * sqrt(variance). Where every difference is the
same (variance 0) t, p and ci95 are undefined (None), not infinite.

A unit's difference is taken on the visits both models predict: under
`data.missing_images: mask` an image model has no prediction for a visit without its
image, and comparing kappas over different visits would mix the models with the visits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from raycv.metrics import kappa
from raycv.statistics.predictions import labels, predicted, predicted_classes, repeats, units

LEVEL = 0.95
SINGLE_MODALITY_EXCLUDED = ("fusion_stage1", "fusion")


@dataclass(frozen=True)
class CorrectedTTest:
    mean_difference: float | None  # None: no unit with a defined difference
    t: float | None  # None where the variance is 0 (or fewer than two units)
    df: int
    p_value: float | None
    ci95: tuple[float, float] | None
    units: int  # J: units (repeat, fold) with a defined difference
    test_train_ratio: float  # mean n_test / n_train over those units


def corrected_t_test(differences, test_train_ratio: float) -> CorrectedTTest:
    """The corrected resampled t-test of per-unit differences `d` (J of them)."""
    d = np.asarray(differences, dtype=np.float64)
    j = len(d)
    mean = float(d.mean()) if j else None
    if j < 2 or np.ptp(d) == 0:  # no spread to test against: nothing is defined but the mean
        return CorrectedTTest(mean, None, j - 1, None, None, j, float(test_train_ratio))
    variance = (1.0 / j + test_train_ratio) * float(d.var(ddof=1))
    se = math.sqrt(variance)
    t = mean / se
    p = float(2.0 * stats.t.sf(abs(t), j - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, j - 1)) * se
    return CorrectedTTest(mean, t, j - 1, p, (mean - half, mean + half), j, float(test_train_ratio))


def unit_differences(
    predictions, model: str, baseline: str, classes: list[str], kappa_weights: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per unit (repeat, fold): kappa(model) - kappa(baseline) on the visits both predict,
    and n_test / n_train; units where either kappa is undefined (one class) are left out."""
    y = labels(predictions, classes)
    pred_a = predicted_classes(predictions, model, classes)
    pred_b = predicted_classes(predictions, baseline, classes)
    both = predicted(predictions, model) & predicted(predictions, baseline)
    repeat = repeats(predictions)
    n = len(classes)
    differences, ratios = [], []
    for r, _fold, rows in units(predictions):
        test = int(rows.sum())
        train = int((repeat == r).sum()) - test  # every other visit of this repeat
        common = rows & both
        if not common.any() or train == 0:
            continue
        d = kappa(y[common], pred_a[common], n, kappa_weights) - kappa(
            y[common], pred_b[common], n, kappa_weights
        )
        if d == d:  # NaN: kappa undefined in this unit
            differences.append(d)
            ratios.append(test / train)
    return np.asarray(differences), np.asarray(ratios)


def compare(
    predictions, model: str, baseline: str, classes: list[str], kappa_weights: str
) -> CorrectedTTest:
    d, ratios = unit_differences(predictions, model, baseline, classes, kappa_weights)
    return corrected_t_test(d, float(ratios.mean()) if len(ratios) else math.nan)


def comparison_pairs(models: list[str]) -> list[tuple[str, str]]:
    """(fusion, baseline) for each single-modality model, then fusion against stage 1."""
    if "fusion" not in models or "fusion_stage1" not in models:
        return []
    singles = [m for m in models if m not in SINGLE_MODALITY_EXCLUDED]
    return [("fusion", m) for m in singles] + [("fusion", "fusion_stage1")]


def comparisons(predictions, models: list[str], classes: list[str], kappa_weights: str) -> list:
    """summary.json's "comparisons": one record per pair of comparison_pairs."""
    out = []
    for model, baseline in comparison_pairs(list(models)):
        test = compare(predictions, model, baseline, classes, kappa_weights)
        out.append(
            {
                "model": model,
                "baseline": baseline,
                "mean_difference": test.mean_difference,
                "t": test.t,
                "df": test.df,
                "p_value": test.p_value,
                "ci95": list(test.ci95) if test.ci95 is not None else None,
            }
        )
    return out
