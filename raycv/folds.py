"""Patient-grouped splits: outer folds, inner validation, and the checks that they can be made.

Every split here groups by patient (science rule 1, tests/test_science.py) and is stratified by label.
`plan_folds` runs every check for every fold before any training starts, so an
impossible split is refused up front with a message naming the fold and class.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from raycv.errors import DataError
from raycv.seeds import phase_seed, repeat_seed
from raycv.units import unit_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldSplit:
    """Sample indices (into the Dataset) of one outer fold of one repeat: a unit of work."""

    fold: int
    train: np.ndarray  # outer training fold: everything fitted sees only these
    test: np.ndarray  # outer test fold: only the final evaluation sees these
    inner_train: np.ndarray  # subset of train: what the CNN and fusion fit on
    inner_val: np.ndarray  # subset of train: early stopping and every in-fold choice
    repeat: int = 0  # which repetition of the split (cv.repeats)

    @property
    def unit(self) -> str:
        """The unit's name in folders, checkpoints and logs: fold<k>, or r<i>-fold<k> for
        repeat i > 0 (so an unrepeated run's names are what they always were)."""
        return unit_name(self.repeat, self.fold)


def _patients_per_class(patient_id, y, n_classes: int) -> np.ndarray:
    counts = np.zeros(n_classes, dtype=int)
    for c in range(n_classes):
        counts[c] = len(np.unique(patient_id[y == c]))
    return counts


def _check_groupable(
    patient_id, y, n_splits: int, classes, what: str, fix: str, strict_classes: bool = True
) -> None:
    """Refuse a split with fewer patients than parts. A class with fewer patients than parts
    is refused for outer folds (some test fold would lack it) and only warned about for inner
    splits, where it merely leaves a class out of some inner part."""
    n_patients = len(np.unique(patient_id))
    if n_patients < n_splits:
        raise DataError(f"{what} needs at least {n_splits} patients, got {n_patients}; {fix}")
    per_class = _patients_per_class(patient_id, y, len(classes))
    for c, count in enumerate(per_class):
        if 0 < count < n_splits:
            message = (
                f"{what}: class {classes[c]!r} has {count} patient(s), fewer than the "
                f"{n_splits} splits; {fix}"
            )
            if strict_classes:
                raise DataError(message)
            log.warning(message)


def outer_folds(patient_id, y, classes, n_folds: int, seed: int) -> np.ndarray:
    """(N,) fold number per sample, patient-grouped and label-stratified."""
    _check_groupable(
        patient_id, y, n_folds, classes, f"cv.folds={n_folds}", "lower cv.folds or add patients"
    )
    absent = [
        classes[c] for c, n in enumerate(_patients_per_class(patient_id, y, len(classes))) if n == 0
    ]
    if absent:
        raise DataError(f"class(es) {absent} of data.classes have no sample in the dataset")
    splitter = StratifiedGroupKFold(
        n_splits=n_folds, shuffle=True, random_state=phase_seed(seed, -1, "outer")
    )
    fold_of = np.full(len(y), -1, dtype=np.int64)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups=patient_id)):
        fold_of[test] = k
    assert (fold_of >= 0).all()
    return fold_of


def outer_splits(dataset, config, sites: pd.Series | None = None) -> np.ndarray:
    """(R, N) outer fold per sample in each of the R = cv.repeats repeats, or one row of
    one fold per value of cv.split_by (leave one site out; `sites`: that column's value of
    each sample, split_column's)."""
    cv = config.cv
    if cv.split_by is not None:
        assert sites is not None, "cv.split_by needs the split column's values"
        return site_folds(sites, dataset, cv.folds)[None]
    return np.stack(
        [
            outer_folds(
                dataset.patient_id, dataset.y, dataset.classes, cv.folds, repeat_seed(cv.seed, r)
            )
            for r in range(cv.repeats)
        ]
    )


def split_column(table: pd.DataFrame, dataset, column: str) -> pd.Series:
    """The cv.split_by column's value of each sample of `dataset`, from the metadata table
    (load_table's: every column of metadata.csv but the ids and the label, indexed by
    sample_id). Any column may be the split column, a feature of the run or not: the site
    is usually better left out of the features, since a held-out site's value is never
    seen in training."""
    if column not in table.columns:
        raise DataError(
            f"cv.split_by={column!r} is not a column of the metadata table; its columns are "
            f"{list(table.columns)}"
        )
    return table[column].reindex(pd.Index(dataset.sample_id, dtype=str)).rename(column)


def site_folds(values: pd.Series, dataset, n_folds: int | None) -> np.ndarray:
    """(N,) one outer fold per value of the split column (`values`, one per sample of
    `dataset`), values in sorted order; refuses a column that has a missing value, varies
    within a patient, or has one value."""
    column = values.name
    if values.isna().any():
        i = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(
            f"cv.split_by={column!r}: sample {str(dataset.sample_id[i])!r} has no value; every "
            "visit needs its site"
        )
    text = site_text(values)
    spans = pd.Series(text).groupby(np.asarray(dataset.patient_id)).nunique()
    if (spans > 1).any():
        patient = str(spans[spans > 1].index[0])
        seen = sorted(set(text[np.asarray(dataset.patient_id) == patient]))
        raise DataError(
            f"cv.split_by={column!r} varies within patient {patient!r} ({seen}); it must be "
            "constant within every patient, or a patient would be in two folds"
        )
    sites = sorted(set(text))
    if len(sites) < 2:
        raise DataError(
            f"cv.split_by={column!r} has one value ({sites[0]!r}); it needs two or more"
        )
    if n_folds is not None and n_folds != len(sites):
        raise DataError(
            f"cv.folds={n_folds} with cv.split_by={column!r}, which has {len(sites)} values "
            f"{sites}: leave cv.folds unset (one fold per value) or set it to {len(sites)}"
        )
    index = {site: k for k, site in enumerate(sites)}
    return np.array([index[v] for v in text], dtype=np.int64)


def site_text(values: pd.Series) -> np.ndarray:
    """A site's name as the folds and the report spell it: a whole number without '.0'
    (a numeric column is read as float64), anything else as its text."""
    return np.array(
        [f"{v:g}" if isinstance(v, float) else str(v) for v in values.to_numpy()], dtype=object
    )


def site_names(values: pd.Series) -> list[str]:
    """The value each fold of site_folds holds, in fold order (for the report's labels)."""
    return sorted(set(site_text(values)))


def read_folds_file(path: str | Path, sample_id, patient_id) -> np.ndarray:
    """(R, N) fold per sample and repeat from a `folds.csv` (sample_id, fold, optional
    repeat: one row per sample and repeat); refuses patients spanning folds."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"cv.folds_file {str(path)!r} does not exist")
    table = pd.read_csv(path, dtype={"sample_id": str})
    for column in ("sample_id", "fold"):
        if column not in table.columns:
            raise DataError(f"{path}: missing column {column!r} (needs sample_id, fold)")
    if "repeat" not in table.columns:
        table["repeat"] = 0
    try:
        table["repeat"] = table["repeat"].astype(int)
    except (TypeError, ValueError):
        raise DataError(f"{path}: column 'repeat' must hold integers") from None
    repeats = sorted(table["repeat"].unique())
    if repeats != list(range(len(repeats))):
        raise DataError(f"{path}: repeats must be numbered 0..R-1, got {repeats}")
    return np.stack(
        [_one_repeat(table[table["repeat"] == r], path, sample_id, patient_id, r) for r in repeats]
    )


def _one_repeat(table: pd.DataFrame, file: Path, sample_id, patient_id, repeat: int) -> np.ndarray:
    path = f"{file} (repeat {repeat})" if repeat else str(file)  # how messages name it
    if table["sample_id"].duplicated().any():
        dup = table.loc[table["sample_id"].duplicated(), "sample_id"].iloc[0]
        raise DataError(f"{path}: sample_id {dup!r} appears more than once")
    fold_by_id = dict(zip(table["sample_id"], table["fold"], strict=True))
    missing = [s for s in sample_id if s not in fold_by_id]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} sample(s) of the dataset have no fold, e.g. {str(missing[0])!r}"
        )
    try:
        fold_of = np.array([int(fold_by_id[s]) for s in sample_id], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: column 'fold' must hold integers") from None
    values = np.unique(fold_of)
    if values.min() != 0 or not np.array_equal(values, np.arange(len(values))):
        raise DataError(f"{path}: folds must be numbered 0..K-1, got {values.tolist()}")
    if len(values) < 2:
        raise DataError(f"{path}: needs at least 2 folds, got {len(values)}")
    spans = pd.Series(fold_of).groupby(np.asarray(patient_id)).nunique()
    if (spans > 1).any():
        patient = str(spans[spans > 1].index[0])
        raise DataError(
            f"{path}: patient {patient!r} spans two folds; a patient's samples must share one fold"
        )
    return fold_of


def inner_split(train, patient_id, y, fraction: float, seed: int, fold: int):
    """Split an outer training fold into (inner_train, inner_val), grouped by patient."""
    n_splits = max(2, round(1.0 / fraction))
    splitter = StratifiedGroupKFold(
        n_splits=n_splits, shuffle=True, random_state=phase_seed(seed, fold, "inner")
    )
    fit_part, val_part = next(splitter.split(np.zeros(len(train)), y[train], patient_id[train]))
    return train[fit_part], train[val_part]


def plan_folds(dataset, fold_of: np.ndarray, config) -> list[FoldSplit]:
    """Every (repeat, fold) unit with its inner splits, after checking each split can be
    made; fold_of: (R, N), or (N,) for one repeat. Units in (repeat, fold) order."""
    fold_of = np.atleast_2d(fold_of)
    plans = []
    for r, folds in enumerate(fold_of):
        plans += _plan_repeat(dataset, folds, config, r)
    return plans


def _plan_repeat(dataset, fold_of: np.ndarray, config, repeat: int) -> list[FoldSplit]:
    classes = dataset.classes
    n_folds = int(fold_of.max()) + 1
    seed = repeat_seed(config.cv.seed, repeat)
    named = f"repeat {repeat} " if repeat else ""
    n_inner = max(2, round(1.0 / config.cv.inner_val_fraction))
    plans = []
    for k in range(n_folds):
        train = np.flatnonzero(fold_of != k)
        test = np.flatnonzero(fold_of == k)
        if len(test) == 0:
            raise DataError(
                f"{named}fold {k} has no samples; folds must be numbered 0..{n_folds - 1}"
            )
        pid, y = dataset.patient_id[train], dataset.y[train]
        _check_groupable(
            pid,
            y,
            n_inner,
            classes,
            f"{named}fold {k}: the inner validation split (cv.inner_val_fraction="
            f"{config.cv.inner_val_fraction})",
            "raise cv.inner_val_fraction, lower cv.folds or add patients",
            strict_classes=False,
        )
        if "metadata" in config.modalities:
            _check_groupable(
                pid,
                y,
                config.metadata.inner_folds,
                classes,
                f"{named}fold {k}: the forest's inner CV (metadata.inner_folds="
                f"{config.metadata.inner_folds})",
                "lower metadata.inner_folds or add patients",
                strict_classes=False,
            )
        inner_train, inner_val = inner_split(
            train, dataset.patient_id, dataset.y, config.cv.inner_val_fraction, seed, k
        )
        plans.append(FoldSplit(k, train, test, inner_train, inner_val, repeat))
    check_no_leak(plans, dataset.patient_id)
    return plans


def check_no_leak(plans: list[FoldSplit], patient_id) -> None:
    """Internal invariants: patient-disjoint splits, every sample tested exactly once."""
    tested = np.concatenate([p.test for p in plans])
    assert len(tested) == len(np.unique(tested)) == len(patient_id), "a sample is not tested once"
    for p in plans:
        assert not set(patient_id[p.train]) & set(patient_id[p.test]), f"fold {p.fold} leaks"
        assert not set(patient_id[p.inner_train]) & set(patient_id[p.inner_val])
        assert len(p.inner_train) + len(p.inner_val) == len(p.train)


def folds_table(dataset, fold_of: np.ndarray) -> pd.DataFrame:
    """The `folds.csv` of a run folder (usable as cv.folds_file): one row per sample and
    repeat, `sample_id, patient_id, repeat, fold`."""
    fold_of = np.atleast_2d(fold_of)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "sample_id": dataset.sample_id,
                    "patient_id": dataset.patient_id,
                    "repeat": r,
                    "fold": folds,
                }
            )
            for r, folds in enumerate(fold_of)
        ],
        ignore_index=True,
    )
