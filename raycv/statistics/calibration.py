"""Calibration beside discrimination: Brier score, expected calibration error, the bins of
a reliability diagram. Kappa says whether the classes come out in the right order; these
say whether a model's probabilities can be read as probabilities.

- brier: mean over prediction rows of sum over classes (p_c - [y = c])^2 (0 is perfect;
  always guessing uniformly over C classes scores 1 - 1/C).
- ece: over 10 equal-width bins of the top-class probability (confidence), the sum of
  (n_b / N) * |accuracy_b - confidence_b|; bin b holds confidences in (b/10, (b+1)/10],
  bin 0 also holds 0; accuracy = [argmax = label].

Rows where a model has no prediction (empty probability cells, data.missing_images: mask)
are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raycv.statistics.predictions import labels, predicted, probabilities

N_BINS = 10
# bin edges 0, 0.1, ..., 1.0 as k / 10, so 0.3 is the same double as the literal 0.3
EDGES = np.arange(N_BINS + 1) / N_BINS


def confidence_bins(confidence: np.ndarray) -> np.ndarray:
    """(n,) bin of each confidence: b where b/10 < c <= (b+1)/10; 0 also holds c = 0."""
    # side="left": a confidence equal to an edge goes into the bin it closes
    return np.clip(np.searchsorted(EDGES, confidence, side="left") - 1, 0, N_BINS - 1)


def brier(probs: np.ndarray, y: np.ndarray) -> float:
    """(n, C) probabilities, (n,) class indices -> the multi-class Brier score."""
    onehot = np.eye(probs.shape[1])[y]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


@dataclass(frozen=True)
class Reliability:
    """Per bin: rows, mean confidence and accuracy (NaN in an empty bin)."""

    count: np.ndarray  # (N_BINS,)
    confidence: np.ndarray  # (N_BINS,)
    accuracy: np.ndarray  # (N_BINS,)

    @property
    def ece(self) -> float:
        share = self.count / self.count.sum()
        gap = np.abs(self.accuracy - self.confidence)
        return float(np.sum(np.where(self.count > 0, share * np.nan_to_num(gap), 0.0)))


def reliability(probs: np.ndarray, y: np.ndarray) -> Reliability:
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    bins = confidence_bins(confidence)
    count = np.bincount(bins, minlength=N_BINS).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, confidence, minlength=N_BINS) / count
        accuracy = np.bincount(bins, correct, minlength=N_BINS) / count
    return Reliability(count.astype(np.int64), mean_conf, accuracy)


def ece(probs: np.ndarray, y: np.ndarray) -> float:
    return reliability(probs, y).ece


def model_rows(predictions, model: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(n', C) probabilities and (n',) labels of the rows `model` predicts."""
    rows = predicted(predictions, model)
    return probabilities(predictions, model, classes)[rows], labels(predictions, classes)[rows]


def calibration(predictions, models: list[str], classes: list[str]) -> dict[str, dict]:
    """{model: {"brier", "ece"}} over the rows each model predicts (None if it has none)."""
    out = {}
    for m in models:
        probs, y = model_rows(predictions, m, classes)
        if len(y) == 0:
            out[m] = {"brier": None, "ece": None}
        else:
            out[m] = {"brier": brier(probs, y), "ece": ece(probs, y)}
    return out
