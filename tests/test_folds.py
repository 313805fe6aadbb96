"""Patient-grouped splits: invariants over many tiny cohorts, and every refusal."""

import numpy as np
import pandas as pd
import pytest

from raycv.data.dataset import Dataset
from raycv.errors import DataError
from raycv.folds import folds_table, outer_folds, plan_folds, read_folds_file
from tests.conftest import tiny_config

CLASSES = ("I", "P", "R")


def cohort(n_patients, visits=3, seed=0, class_p=(0.3, 0.55, 0.15)):
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"p{i:03d}" for i in range(n_patients)], visits)
    y = rng.choice(3, size=len(pid), p=class_p)
    n = len(pid)
    return Dataset(
        sample_id=np.array([f"s{i}" for i in range(n)]),
        patient_id=pid,
        y=y,
        classes=CLASSES,
        features=pd.DataFrame({"x": rng.normal(size=n)}),
        images={"thermal_map": np.zeros((n, 8, 8), np.float32)},
    )


def assert_patient_disjoint(plans, patient_id):
    tested = np.concatenate([p.test for p in plans])
    assert sorted(tested) == list(range(len(patient_id)))  # every sample tested exactly once
    for p in plans:
        assert not set(patient_id[p.train]) & set(patient_id[p.test])
        assert not set(patient_id[p.inner_train]) & set(patient_id[p.inner_val])
        assert set(p.inner_train) | set(p.inner_val) == set(p.train)
        assert not set(p.inner_val) & set(p.test)


@pytest.mark.parametrize(
    "n_patients, folds, seed", [(20, 2, 0), (30, 3, 1), (45, 5, 2), (60, 3, 7)]
)
def test_outer_and_inner_splits_are_patient_disjoint(n_patients, folds, seed):
    data = cohort(n_patients, seed=seed)
    config = tiny_config(f"cv.folds={folds}", f"cv.seed={seed}", "metadata.inner_folds=2")
    fold_of = outer_folds(data.patient_id, data.y, CLASSES, folds, seed)
    assert set(fold_of) == set(range(folds))
    plans = plan_folds(data, fold_of, config)
    assert_patient_disjoint(plans, data.patient_id)


def test_folds_depend_on_the_seed_only():
    data = cohort(30)
    a = outer_folds(data.patient_id, data.y, CLASSES, 3, seed=0)
    assert np.array_equal(a, outer_folds(data.patient_id, data.y, CLASSES, 3, seed=0))
    assert not np.array_equal(a, outer_folds(data.patient_id, data.y, CLASSES, 3, seed=1))


def test_fewer_patients_than_folds_is_refused():
    data = cohort(4)
    with pytest.raises(DataError, match=r"cv.folds=5 needs at least 5 patients, got 4"):
        outer_folds(data.patient_id, data.y, CLASSES, 5, 0)


def test_a_class_with_fewer_patients_than_folds_is_refused():
    data = cohort(30, visits=1, class_p=(0.5, 0.5, 0.0))
    y = data.y.copy()
    y[:2] = 2  # class R: 2 patients
    with pytest.raises(DataError, match=r"class 'R' has 2 patient\(s\), fewer than the 3 splits"):
        outer_folds(data.patient_id, y, CLASSES, 3, 0)


def test_an_impossible_inner_split_is_refused_naming_the_fold():
    data = cohort(12, visits=2)  # 8 training patients per fold, 10 inner parts asked for
    config = tiny_config("cv.folds=3", "cv.inner_val_fraction=0.1", "metadata.inner_folds=2")
    fold_of = outer_folds(data.patient_id, data.y, CLASSES, 3, 0)
    with pytest.raises(DataError, match=r"fold 0: the inner validation split"):
        plan_folds(data, fold_of, config)


def test_an_impossible_forest_inner_cv_is_refused():
    data = cohort(12, visits=2)
    config = tiny_config("cv.folds=3", "metadata.inner_folds=10", "cv.inner_val_fraction=0.45")
    fold_of = outer_folds(data.patient_id, data.y, CLASSES, 3, 0)
    with pytest.raises(DataError, match=r"forest's inner CV \(metadata.inner_folds=10\)"):
        plan_folds(data, fold_of, config)


def test_folds_file_round_trips(tmp_path):
    data = cohort(30)
    fold_of = outer_folds(data.patient_id, data.y, CLASSES, 3, 0)
    path = tmp_path / "folds.csv"
    folds_table(data, fold_of).to_csv(path, index=False)
    assert np.array_equal(read_folds_file(path, data.sample_id, data.patient_id), fold_of[None])


def test_folds_file_with_a_patient_in_two_folds_is_refused(tmp_path):
    data = cohort(30)
    fold_of = outer_folds(data.patient_id, data.y, CLASSES, 3, 0)
    fold_of[0] = (fold_of[0] + 1) % 3  # first visit of p000 moves fold
    path = tmp_path / "folds.csv"
    folds_table(data, fold_of).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"patient 'p000' spans two folds"):
        read_folds_file(path, data.sample_id, data.patient_id)


def test_folds_file_missing_a_sample_is_refused(tmp_path):
    data = cohort(30)
    fold_of = outer_folds(data.patient_id, data.y, CLASSES, 3, 0)
    path = tmp_path / "folds.csv"
    folds_table(data, fold_of).iloc[1:].to_csv(path, index=False)
    with pytest.raises(DataError, match=r"have no fold, e.g. 's0'"):
        read_folds_file(path, data.sample_id, data.patient_id)
