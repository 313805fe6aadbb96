"""A checker of a finished run folder against the run-folder contract (README: the run folder), shared by e2e tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, f1_score

from raycv import config as config_mod

FILES = (
    "config.yaml",
    "folds.csv",
    "predictions.csv",
    "summary.json",
    "history.csv",
    "provenance.json",
)


def check_run_folder(path: str | Path) -> dict:
    """Assert every contract of a run folder; returns summary.json for further checks."""
    path = Path(path)
    for name in FILES:
        assert (path / name).is_file(), f"{name} missing from {path}"
    config = config_mod.load(path / "config.yaml")  # runnable as it is
    classes = config.classes
    models = list(config.modalities) + (
        ["fusion_stage1", "fusion"] if len(config.modalities) > 1 else []
    )

    folds = pd.read_csv(path / "folds.csv", dtype={"sample_id": str, "patient_id": str})
    assert list(folds.columns) == ["sample_id", "patient_id", "repeat", "fold"]
    spans = folds.groupby(["repeat", "patient_id"])["fold"].nunique()
    assert (spans == 1).all(), "a patient spans folds"
    repeats = sorted(folds["repeat"].unique())
    assert repeats == list(range(config.cv.repeats))

    pred = pd.read_csv(path / "predictions.csv", dtype={"sample_id": str, "patient_id": str})
    expected = ["sample_id", "patient_id", "repeat", "fold", "label"]
    for m in models:
        expected += [f"pred_{m}"] + [f"prob_{m}_{c}" for c in classes]
    assert list(pred.columns) == expected
    assert len(pred) == len(folds) and not pred.duplicated(["sample_id", "repeat"]).any()
    key = ["repeat", "sample_id"]
    assert (
        pred.set_index(key)["fold"] == folds.set_index(key)["fold"].loc[pred.set_index(key).index]
    ).all()
    for m in models:
        known = pred[f"pred_{m}"].notna()  # empty: no image of the visit (missing_images: mask)
        probs = pred.loc[known, [f"prob_{m}_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        assert (np.asarray(classes)[probs.argmax(1)] == pred.loc[known, f"pred_{m}"]).all()
        assert pred.loc[~known, [f"prob_{m}_{c}" for c in classes]].isna().all().all()

    summary = json.loads((path / "summary.json").read_text())
    weights = None if summary["kappa_weights"] == "none" else summary["kappa_weights"]
    assert summary["kappa_weights"] == config.metrics.kappa_weights
    assert summary["classes"] == classes and set(summary["models"]) == set(models)
    for m, s in summary["models"].items():
        scored = pred[pred[f"pred_{m}"].notna()]

        def kappa(part, m=m):
            return cohen_kappa_score(
                part["label"], part[f"pred_{m}"], weights=weights, labels=classes
            )

        per_fold = [kappa(part) for _, part in scored.groupby(["repeat", "fold"], sort=True)]
        np.testing.assert_allclose(s["kappa_per_fold"], per_fold, atol=1e-9)
        np.testing.assert_allclose(s["kappa_mean"], np.mean(per_fold), atol=1e-9)
        np.testing.assert_allclose(s["kappa_std"], np.std(per_fold), atol=1e-9)
        # pooled: each repeat's out-of-fold predictions together, averaged over repeats
        pooled = np.mean([kappa(part) for _, part in scored.groupby("repeat", sort=True)])
        np.testing.assert_allclose(s["kappa_pooled"], pooled, atol=1e-9)
        assert 0 <= s["accuracy_mean"] <= 1 and 0 <= s["macro_f1_mean"] <= 1
        assert s["n_predicted"] == len(scored)
        # each class's F1, pooled over the model's prediction rows
        f1 = f1_score(scored["label"], scored[f"pred_{m}"], labels=classes, average=None)
        assert list(s["f1_per_class"]) == classes
        np.testing.assert_allclose(list(s["f1_per_class"].values()), f1, atol=1e-9)
    n_folds = folds["fold"].nunique()
    n_units = len(folds.groupby(["repeat", "fold"]))
    assert len(summary["stage2_kept"]) == n_units and summary["wall_seconds"] > 0

    history = pd.read_csv(path / "history.csv")
    for column in (
        "repeat",
        "fold",
        "phase",
        "branch",
        "epoch",
        "train_loss",
        "train_kappa",
        "val_loss",
        "val_kappa",
    ):
        assert column in history.columns
    assert set(history["phase"]) <= {"pretrain", "stage1", "stage2"}
    if config.image_modalities:  # a forest alone trains no epochs: its history is empty
        assert set(history["fold"]) == set(range(n_folds))
    assert set(history.loc[history["phase"] == "pretrain", "branch"]) == set(
        config.image_modalities
    )

    prov = json.loads((path / "provenance.json").read_text())
    for key in (
        "raycv_version",
        "git_commit",
        "python",
        "versions",
        "dataset_fingerprint",
        "command_line",
        "started",
        "ended",
        "machine",
    ):
        assert key in prov, key
    assert set(prov["versions"]) >= {"ray", "torch", "scikit-learn", "numpy", "pandas"}
    assert {"cpus", "gpus"} <= set(prov["machine"])
    # what loading the data found, whoever wrote the folder (run, tune trial, best/)
    assert set(prov["data"]) == {"layout", "warnings", "dropped"}, prov.get("data")

    for r, k in folds.groupby(["repeat", "fold"]).groups:
        fold_dir = path / "checkpoints" / (f"fold{k}" if r == 0 else f"r{r}-fold{k}")
        for m in config.image_modalities:
            assert (fold_dir / f"pretrain_{m}.pt").is_file()  # the pretrained image branch
        if "metadata" in config.modalities:
            assert (fold_dir / "forest.pt").is_file()  # the fitted forest, its probabilities
        if len(models) > 1:
            assert (fold_dir / "stage2.pt").is_file()  # the final fusion model
    return summary
