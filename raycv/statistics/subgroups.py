"""Kappa by subgroup: does the model work as well for every value of a metadata column?

`report.subgroups` names metadata columns. Each column's rows are grouped by value:

- a text column: one group per value, in sorted order;
- a numeric column: quartiles of its visits' values, each group labelled by the range of
  values it holds ("[48, 61]"); a column with at most four distinct values keeps one group
  per value instead ("0", "1"), as quartiles of two values would merge or split them;
- a missing value: its own group, "missing", last.

Per group and model: n (the prediction rows of that group the model predicts; with
repeats a visit counts once per repeat), kappa pooled over them (scikit-learn's, with the
run's weights and class order) and a 95% patient-bootstrap interval (the group's patients
resampled, all their rows of the group taken; raycv.statistics.bootstrap).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from raycv.errors import RaycvError
from raycv.metrics import sklearn_weights
from raycv.statistics.bootstrap import bootstrap_kappa, patient_confusions, patient_draws
from raycv.statistics.predictions import labels, predicted, predicted_classes

MISSING = "missing"
N_QUANTILES = 4


class SubgroupError(RaycvError, ValueError):
    """Predictions whose visits the metadata table does not hold."""


def _number(value: float) -> str:
    return f"{value:g}"


def group_labels(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """(label of each row, labels in report order) for one column's values."""
    present = values.dropna()
    label = pd.Series(MISSING, index=values.index, dtype=object)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric:
        label[present.index] = present.astype(str)
        order = sorted(label[present.index].unique())
    elif present.nunique() <= N_QUANTILES:
        label[present.index] = present.map(_number)
        order = [_number(v) for v in sorted(present.unique())]
    else:
        quartile = pd.qcut(present, N_QUANTILES, labels=False, duplicates="drop")
        order = []
        for q in sorted(quartile.unique()):
            members = present[quartile == q]
            text = f"[{_number(members.min())}, {_number(members.max())}]"
            label[members.index] = text
            order.append(text)
    if present.size < values.size:
        order.append(MISSING)
    return label, order


def column_values(predictions: pd.DataFrame, table: pd.DataFrame, column: str) -> pd.Series:
    """The column's value on each prediction row (table indexed by sample_id)."""
    sample_id = predictions["sample_id"].astype(str)
    absent = ~sample_id.isin(table.index)
    if absent.any():
        raise SubgroupError(
            f"the metadata has no sample {sample_id[absent].iloc[0]!r} of predictions.csv "
            f"({int(absent.sum())} in all): the dataset changed since the run"
        )
    return pd.Series(table[column].reindex(sample_id).to_numpy(), index=predictions.index)


def subgroup_scores(
    predictions: pd.DataFrame,
    table: pd.DataFrame,
    columns: list[str],
    models: list[str],
    classes: list[str],
    kappa_weights: str,
    n_boot: int,
    seed: int,
) -> dict:
    """summary.json's "subgroups": {column: {value: {model: {"n", "kappa", "ci95"}}}}."""
    y = labels(predictions, classes)
    preds = {m: predicted_classes(predictions, m, classes) for m in models}
    known = {m: predicted(predictions, m) for m in models}
    patient_id = predictions["patient_id"].astype(str).to_numpy()
    out = {}
    for column in columns:
        label, order = group_labels(column_values(predictions, table, column))
        out[column] = {}
        for value in order:
            rows = (label == value).to_numpy()
            # one set of draws per group, over its patients: the models are resampled alike
            n_patients = len(np.unique(patient_id[rows]))
            draws = patient_draws(n_patients, n_boot, seed)
            out[column][value] = {
                m: _group_score(
                    y[rows],
                    preds[m][rows],
                    known[m][rows],
                    patient_id[rows],
                    draws,
                    classes,
                    kappa_weights,
                )
                for m in models
            }
    return out


def _group_score(y, pred, known, patient_id, draws, classes, kappa_weights) -> dict:
    n = int(known.sum())
    if n == 0:
        return {"n": 0, "kappa": None, "ci95": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one class in a group: kappa undefined, said as null
        value = float(
            cohen_kappa_score(
                np.asarray(classes, dtype=object)[y[known]],
                np.asarray(classes, dtype=object)[pred[known]],
                labels=list(classes),
                weights=sklearn_weights(kappa_weights),
            )
        )
    confusions = patient_confusions(patient_id, y, np.where(known, pred, 0), len(classes), known)
    interval = bootstrap_kappa(confusions, draws, kappa_weights)
    ci = None if interval.low is None else [interval.low, interval.high]
    return {"n": n, "kappa": value if value == value else None, "ci95": ci}
