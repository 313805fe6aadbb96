"""Result records: what one fold returns, and the run-level tables built from them.

Compute first, report after: everything here is a plain function of fold results, and
every number in summary.json can be recomputed from predictions.csv.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from raycv.metrics import accuracy, kappa, macro_f1


@dataclass
class FoldResult:
    fold: int
    test_index: np.ndarray  # (n_test,) indices into the Dataset
    probs: dict[str, np.ndarray]  # model -> (n_test, C) test probabilities, class order
    val_kappa: dict[str, float]  # model -> kappa on the inner-validation split
    history: list[dict] = field(default_factory=list)  # per phase and epoch
    stage1_val_score: float | None = None
    stage2_val_score: float | None = None  # None: stage 2 never beat stage 1
    stage2_kept: bool | None = None  # None: no fusion in this config
    fusion_weights: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FoldResult:
        return cls(**d)


def model_names(config) -> list[str]:
    """The models of a run, in report order: branches, then the fusion stages."""
    names = list(config.modalities)
    if len(names) >= 2:
        names += ["fusion_stage1", "fusion"]
    return names


def predictions_table(dataset, fold_of, results: list[FoldResult], models, classes) -> pd.DataFrame:
    """One row per sample, predicted on its outer test fold (CONTRACTS 3)."""
    frames = []
    for r in sorted(results, key=lambda r: r.fold):
        idx = r.test_index
        frame = {
            "sample_id": dataset.sample_id[idx],
            "patient_id": dataset.patient_id[idx],
            "fold": fold_of[idx],
            "label": np.asarray(classes, dtype=object)[dataset.y[idx]],
        }
        for m in models:
            p = r.probs[m]
            pred = np.asarray(classes, dtype=object)[p.argmax(1)]
            # a visit without an image of m (data.missing_images: mask): empty cells
            pred[np.isnan(p).any(1)] = None
            frame[f"pred_{m}"] = pred
            for c, name in enumerate(classes):
                frame[f"prob_{m}_{name}"] = p[:, c]
        frames.append(pd.DataFrame(frame))
    table = pd.concat(frames, ignore_index=True)
    # sample order of metadata.csv, so two runs' files compare line by line
    order = {s: i for i, s in enumerate(dataset.sample_id)}
    return table.sort_values("sample_id", key=lambda s: s.map(order)).reset_index(drop=True)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def summarize(predictions: pd.DataFrame, models, classes, kappa_weights: str) -> dict:
    """Per-model fold kappas, mean/std, pooled kappa, accuracy and macro F1 from predictions.

    Each model is scored on the visits it predicts (`n_predicted`): an image model has
    no prediction for a visit without its image (data.missing_images: mask).
    """
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for m in models:
        predicted = predictions[predictions[f"pred_{m}"].notna()]
        y_all = predicted["label"].map(index).to_numpy()
        pred_all = predicted[f"pred_{m}"].map(index).to_numpy()
        per_fold, acc, f1 = [], [], []
        for fold in sorted(predictions["fold"].unique()):
            part = predicted[predicted["fold"] == fold]
            y = part["label"].map(index).to_numpy()
            pred = part[f"pred_{m}"].map(index).to_numpy()
            per_fold.append(kappa(y, pred, len(classes), kappa_weights) if len(y) else math.nan)
            acc.append(accuracy(y, pred) if len(y) else math.nan)
            f1.append(macro_f1(y, pred, len(classes)) if len(y) else math.nan)
        out[m] = {
            "kappa_mean": _nan_to_none(float(np.mean(per_fold))),
            "kappa_std": _nan_to_none(float(np.std(per_fold))),
            "kappa_pooled": _nan_to_none(kappa(y_all, pred_all, len(classes), kappa_weights)),
            "kappa_per_fold": [_nan_to_none(k) for k in per_fold],
            "accuracy_mean": _nan_to_none(float(np.mean(acc))),
            "macro_f1_mean": _nan_to_none(float(np.mean(f1))),
            "n_predicted": len(predicted),
        }
    return out


def history_table(results: list[FoldResult]) -> pd.DataFrame:
    rows = [
        {"fold": r.fold, **row} for r in sorted(results, key=lambda r: r.fold) for row in r.history
    ]
    columns = [
        "fold",
        "phase",
        "branch",
        "epoch",
        "train_loss",
        "train_kappa",
        "val_loss",
        "val_kappa",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)
