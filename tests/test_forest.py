"""The metadata branch gives the fusion out-of-fold probabilities only (science rule 3, tests/test_science.py)."""

import numpy as np
import pandas as pd

from raycv.config import MetadataConfig
from raycv.models.forest import forest_probabilities


def memorisable(n_patients=40, visits=3, seed=0):
    """Labels that are pure noise per patient, features that identify the patient."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_patients).astype(str), visits)
    y = np.repeat(rng.integers(0, 3, n_patients), visits)
    features = pd.DataFrame(
        {
            "patient_code": np.repeat(rng.normal(size=n_patients), visits),
            "site": np.repeat(rng.choice(["a", "b", None], n_patients), visits),
        }
    )
    return features, y, pid


def test_training_probabilities_are_out_of_fold_not_in_sample():
    features, y, pid = memorisable()
    train, test = np.arange(90), np.arange(90, 120)
    cfg = MetadataConfig(n_estimators=50, inner_folds=3)
    oof, test_p, full = forest_probabilities(features, y, pid, train, test, 3, cfg, seed=0)
    in_sample = np.zeros_like(oof)
    in_sample[:, full.classes_] = full.predict_proba(features.iloc[train])
    # a forest remembers its own training patients; the out-of-fold view cannot
    assert (in_sample.argmax(1) == y[train]).mean() > 0.95
    assert (oof.argmax(1) == y[train]).mean() < 0.6
    assert oof.shape == (90, 3) and test_p.shape == (30, 3)
    np.testing.assert_allclose(oof.sum(1), 1.0)


def test_probability_columns_follow_the_class_list_when_a_class_is_missing():
    features, y, pid = memorisable()
    y = np.where(y == 1, 0, y)  # class 1 never occurs: its column must stay 0, in place
    cfg = MetadataConfig(n_estimators=10, inner_folds=3)
    oof, test_p, _ = forest_probabilities(
        features, y, pid, np.arange(90), np.arange(90, 120), 3, cfg, 0
    )
    assert oof.shape == (90, 3) and (oof[:, 1] == 0).all() and (test_p[:, 1] == 0).all()
    np.testing.assert_allclose(test_p.sum(1), 1.0)


def test_the_forest_is_seeded():
    features, y, pid = memorisable()
    cfg = MetadataConfig(n_estimators=10, inner_folds=3)
    args = (features, y, pid, np.arange(90), np.arange(90, 120), 3, cfg)
    a, b = forest_probabilities(*args, seed=1), forest_probabilities(*args, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
