"""Classification metrics in the config's class order (never alphabetical)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score


def sklearn_weights(kappa_weights: str) -> str | None:
    """`metrics.kappa_weights` -> the `weights` argument of cohen_kappa_score."""
    return None if kappa_weights == "none" else kappa_weights


def kappa(y_true, y_pred, n_classes: int, kappa_weights: str = "quadratic") -> float:
    """Cohen's kappa over class indices 0..n_classes-1; NaN where undefined (one class only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = cohen_kappa_score(
            y_true, y_pred, labels=list(range(n_classes)), weights=sklearn_weights(kappa_weights)
        )
    return float(value)


def accuracy(y_true, y_pred) -> float:
    return float(accuracy_score(y_true, y_pred))


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    return float(
        f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0)
    )


def f1_per_class(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(C,) F1 of each class, in class order (0 for a class never predicted nor present)."""
    return f1_score(y_true, y_pred, labels=list(range(n_classes)), average=None, zero_division=0)


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(C, C) counts; rows = true class, columns = predicted, in class order."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def scores(y_true, probs: np.ndarray, kappa_weights: str) -> dict[str, float]:
    """kappa, accuracy and macro F1 of argmax predictions from (n, C) probabilities."""
    n_classes = probs.shape[1]
    y_pred = probs.argmax(axis=1)
    return {
        "kappa": kappa(y_true, y_pred, n_classes, kappa_weights),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, n_classes),
    }
