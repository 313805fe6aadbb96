"""The metadata branch: imputation + encoding + random forest, with out-of-fold probabilities.

The fusion must never train on in-sample forest probabilities (science rule 3, tests/test_science.py): a
forest's probabilities on its own training samples are near-perfect, so a fusion fit
on them learns to trust the forest far too much. Training-fold samples therefore get
probabilities from a patient-grouped inner CV; test samples get them from a forest fit
on the whole training fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from raycv.config import MetadataConfig
from raycv.errors import RaycvError

# What a stored forest may contain beyond what skops trusts by default: the fitted trees
# and numpy dtypes. Anything else in a file is refused before it is loaded.
TRUSTED_TYPES = ["numpy.dtype", "sklearn.tree._tree.Tree"]


def build_forest(features: pd.DataFrame, cfg: MetadataConfig, seed: int, n_jobs: int) -> Pipeline:
    """An unfitted pipeline; imputation and encoding are fitted with the forest, on its data."""
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
    encode = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    forest = RandomForestClassifier(
        n_estimators=cfg.n_estimators,
        max_depth=cfg.max_depth,
        min_samples_leaf=cfg.min_samples_leaf,
        class_weight=None if cfg.class_weight == "none" else cfg.class_weight,
        random_state=seed,
        n_jobs=n_jobs,
    )
    return Pipeline([("encode", encode), ("forest", forest)])


def aligned_proba(model: Pipeline, features: pd.DataFrame, n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities, columns in class order even if the fit lacked a class."""
    out = np.zeros((len(features), n_classes))
    out[:, model.classes_] = model.predict_proba(features)
    return out


def _categorical_as_object(features: pd.DataFrame) -> pd.DataFrame:
    # sklearn's imputer wants object columns with np.nan for missing categories
    out = features.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype(object).where(out[c].notna(), np.nan)
    return out


def predict_forest(model: Pipeline, features: pd.DataFrame, n_classes: int) -> np.ndarray:
    """(n, C) probabilities of a fitted pipeline for new visits, as the fold computed its
    test probabilities. Each column is read the way the forest was trained on it: a
    numeric column's text cells become missing (imputed), a categorical column's values
    text; categories never seen in training encode as none of the known ones."""
    encode = model.named_steps["encode"]
    kinds = {name: cols for name, _, cols in encode.transformers_ if name != "remainder"}
    X = features[list(model.feature_names_in_)].copy()
    for c in kinds.get("numeric", []):
        X[c] = pd.to_numeric(X[c], errors="coerce").astype(np.float64)
    for c in kinds.get("categorical", []):
        col = X[c]
        if pd.api.types.is_numeric_dtype(col):  # 3.0 read as a number where "3" was trained
            col = col.map(
                lambda v: v if v != v else (str(int(v)) if float(v).is_integer() else str(v))
            )
        X[c] = col.astype(object)
    return aligned_proba(model, _categorical_as_object(X), n_classes)


def forest_probabilities(
    features: pd.DataFrame,
    y: np.ndarray,
    patient_id: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    n_classes: int,
    cfg: MetadataConfig,
    seed: int,
    n_jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray, Pipeline]:
    """Out-of-fold probabilities for `train`, test probabilities, and the full-fold forest.

    Returns (oof (len(train), C), test (len(test), C), forest fit on all of `train`).
    """
    X = _categorical_as_object(features)
    X_train, y_train, groups = X.iloc[train], y[train], patient_id[train]
    oof = np.full((len(train), n_classes), np.nan)
    splitter = StratifiedGroupKFold(n_splits=cfg.inner_folds, shuffle=True, random_state=seed)
    for fit_idx, held_idx in splitter.split(X_train, y_train, groups):
        model = build_forest(X_train, cfg, seed, n_jobs).fit(
            X_train.iloc[fit_idx], y_train[fit_idx]
        )
        oof[held_idx] = aligned_proba(model, X_train.iloc[held_idx], n_classes)
    assert not np.isnan(oof).any(), "inner CV left a training sample without a probability"
    full = build_forest(X_train, cfg, seed, n_jobs).fit(X_train, y_train)
    return oof, aligned_proba(full, X.iloc[test], n_classes), full


def dump_forest(pipeline: Pipeline) -> bytes:
    """The fitted pipeline (imputation, encoding, forest) as skops bytes: no pickle."""
    import skops.io

    return skops.io.dumps(pipeline)


def load_forest(data: bytes, where: str) -> Pipeline:
    """skops bytes -> the fitted pipeline, refusing (one line naming `where`) a file
    holding any type outside skops' defaults and TRUSTED_TYPES. Runs no code from it."""
    import skops.io

    try:
        untrusted = set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
        if untrusted:
            raise RaycvError(
                f"{where}: the stored forest holds types raycv does not trust "
                f"({', '.join(sorted(untrusted))}); refused without loading it"
            )
        model = skops.io.loads(data, trusted=TRUSTED_TYPES)
    except RaycvError:
        raise
    except Exception as exc:  # skops raises many kinds on a damaged file
        raise RaycvError(f"{where}: cannot read the stored forest ({type(exc).__name__})") from None
    if not isinstance(model, Pipeline):
        raise RaycvError(f"{where}: the stored forest is a {type(model).__name__}, not a Pipeline")
    return model
