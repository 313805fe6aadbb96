"""A predictions table read for statistics: units of work, class indices, probabilities.

The table is predictions.csv as a run writes it, or one built by hand: a table without a
`repeat` column is an unrepeated run (repeat 0). A model has a prediction for a row
where its `pred_M` cell is filled; under `data.missing_images: mask` an image model's
cells are empty for a visit without its image, and every statistic leaves those rows out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def repeats(predictions: pd.DataFrame) -> np.ndarray:
    """(n,) repeat of each row; 0 everywhere for a table without a `repeat` column."""
    if "repeat" not in predictions:
        return np.zeros(len(predictions), dtype=np.int64)
    return predictions["repeat"].to_numpy(dtype=np.int64)


def units(predictions: pd.DataFrame) -> list[tuple[int, int, np.ndarray]]:
    """(repeat, fold, (n,) bool rows of that test fold), in (repeat, fold) order."""
    repeat, fold = repeats(predictions), predictions["fold"].to_numpy(dtype=np.int64)
    pairs = sorted(set(zip(repeat.tolist(), fold.tolist(), strict=True)))
    return [(r, k, (repeat == r) & (fold == k)) for r, k in pairs]


def predicted(predictions: pd.DataFrame, model: str) -> np.ndarray:
    """(n,) bool: the rows `model` has a prediction for."""
    return predictions[f"pred_{model}"].notna().to_numpy()


def class_index(values: pd.Series, classes: list[str]) -> np.ndarray:
    """(n,) index of each label into `classes` (their order, never alphabetical); -1 where
    the cell is empty."""
    index = {c: i for i, c in enumerate(classes)}
    return values.map(index).fillna(-1).to_numpy(dtype=np.int64)


def labels(predictions: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return class_index(predictions["label"].astype(object), classes)


def predicted_classes(predictions: pd.DataFrame, model: str, classes: list[str]) -> np.ndarray:
    """(n,) predicted class index of `model`; -1 where it has no prediction."""
    return class_index(predictions[f"pred_{model}"].astype(object), classes)


def probabilities(predictions: pd.DataFrame, model: str, classes: list[str]) -> np.ndarray:
    """(n, C) probabilities of `model` in class order; NaN rows where it has no prediction."""
    columns = [f"prob_{model}_{c}" for c in classes]
    return predictions[columns].to_numpy(dtype=np.float64)
