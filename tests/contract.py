"""A checker of a finished run folder against CONTRACTS section 3, shared by e2e tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

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
    assert list(folds.columns) == ["sample_id", "patient_id", "fold"]
    assert (folds.groupby("patient_id")["fold"].nunique() == 1).all(), "a patient spans folds"

    pred = pd.read_csv(path / "predictions.csv", dtype={"sample_id": str, "patient_id": str})
    expected = ["sample_id", "patient_id", "fold", "label"]
    for m in models:
        expected += [f"pred_{m}"] + [f"prob_{m}_{c}" for c in classes]
    assert list(pred.columns) == expected
    assert len(pred) == len(folds) and pred["sample_id"].is_unique
    assert (pred.set_index("sample_id")["fold"] == folds.set_index("sample_id")["fold"]).all()
    for m in models:
        probs = pred[[f"prob_{m}_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        assert (np.asarray(classes)[probs.argmax(1)] == pred[f"pred_{m}"]).all()

    summary = json.loads((path / "summary.json").read_text())
    weights = None if summary["kappa_weights"] == "none" else summary["kappa_weights"]
    assert summary["kappa_weights"] == config.metrics.kappa_weights
    assert summary["classes"] == classes and set(summary["models"]) == set(models)
    for m, s in summary["models"].items():
        per_fold = [
            cohen_kappa_score(part["label"], part[f"pred_{m}"], weights=weights, labels=classes)
            for _, part in pred.groupby("fold", sort=True)
        ]
        np.testing.assert_allclose(s["kappa_per_fold"], per_fold, atol=1e-9)
        np.testing.assert_allclose(s["kappa_mean"], np.mean(per_fold), atol=1e-9)
        np.testing.assert_allclose(s["kappa_std"], np.std(per_fold), atol=1e-9)
        pooled = cohen_kappa_score(
            pred["label"], pred[f"pred_{m}"], weights=weights, labels=classes
        )
        np.testing.assert_allclose(s["kappa_pooled"], pooled, atol=1e-9)
        assert 0 <= s["accuracy_mean"] <= 1 and 0 <= s["macro_f1_mean"] <= 1
    n_folds = folds["fold"].nunique()
    assert len(summary["stage2_kept"]) == n_folds and summary["wall_seconds"] > 0

    history = pd.read_csv(path / "history.csv")
    for column in ("fold", "phase", "epoch", "train_loss", "train_kappa", "val_loss", "val_kappa"):
        assert column in history.columns
    assert set(history["phase"]) <= {"pretrain", "stage1", "stage2"}
    assert set(history["fold"]) == set(range(n_folds))

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

    for k in range(n_folds):
        fold_dir = path / "checkpoints" / f"fold{k}"
        for m in config.image_modalities:
            assert (fold_dir / f"pretrain_{m}.pt").is_file()  # the pretrained image branch
        if len(models) > 1:
            assert (fold_dir / "stage2.pt").is_file()  # the final fusion model
    return summary
