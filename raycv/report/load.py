"""Reading a finished run folder or tune folder for a report; never writes.

Class order comes from summary.json (the config's order), never from the labels seen:
every matrix, per-class column and kappa weight depends on it. config.yaml is read by
the config's own loader, so every setting has its value, defaults filled in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raycv import config as config_mod
from raycv.config import Config
from raycv.errors import RaycvError
from raycv.summary import RunSummary, read_summary

SINGLE_MODALITY_EXCLUDED = ("fusion_stage1", "fusion")


@dataclass
class RunRecord:
    """What a report needs from one run folder, labels already as class indices."""

    path: Path
    name: str
    classes: list[str]
    kappa_weights: str  # 'none', 'linear' or 'quadratic'
    models: list[str]  # report order: branches, then fusion_stage1, fusion
    predictions: pd.DataFrame  # predictions.csv as written
    y: np.ndarray  # (n,) true class index per sample
    preds: dict[str, np.ndarray]  # model -> (n,) predicted class index, -1: no prediction
    summary: RunSummary
    history: pd.DataFrame | None  # None: the run has no history.csv
    config: Config  # config.yaml, as the run resolved it

    @property
    def folds(self) -> np.ndarray:
        return self.predictions["fold"].to_numpy()

    @property
    def repeats(self) -> np.ndarray:
        """(n,) repeat of each row (cv.repeats); 0 for a run written before repeats."""
        if "repeat" not in self.predictions:
            return np.zeros(len(self.predictions), dtype=int)
        return self.predictions["repeat"].to_numpy(dtype=int)

    @property
    def units(self) -> list[tuple[int, int]]:
        """The (repeat, fold) units, in summary.json's kappa_per_fold order."""
        return sorted(set(zip(self.repeats.tolist(), self.folds.tolist(), strict=True)))

    def unit_labels(self) -> list[str]:
        """A column label per unit: "fold k", "r<i> f<k>" with repeats, the site's name when
        each fold is one site (cv.split_by)."""
        sites = self.summary.sites
        if sites and len(sites) == len(self.units):
            return [str(site) for site in sites]
        if len({r for r, _ in self.units}) > 1:
            return [f"r{r} f{k}" for r, k in self.units]
        return [f"fold {k}" for _, k in self.units]

    @property
    def patient_id(self) -> np.ndarray:
        return self.predictions["patient_id"].to_numpy()

    @property
    def single_modalities(self) -> list[str]:
        return [m for m in self.models if m not in SINGLE_MODALITY_EXCLUDED]

    def predicted(self, model: str) -> np.ndarray:
        """(n,) bool: the rows `model` has a prediction for."""
        return self.preds[model] >= 0

    @property
    def has_fusion(self) -> bool:
        return "fusion" in self.models and "fusion_stage1" in self.models

    @property
    def monitor(self) -> str:
        return self.summary.monitor


@dataclass
class TuneRecord:
    """A finished search: its trials, its summary (best trial, nested estimate), best/."""

    path: Path
    trials: pd.DataFrame
    summary: dict
    best: RunRecord


def is_tune_folder(path: Path) -> bool:
    return (path / "trials.csv").is_file() and (path / "best").is_dir()


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise RaycvError(
            f"{path} is missing: {what} (is the run finished? `raycv run ... --resume` completes it)"
        )
    return path


def load_run(path: str | Path) -> RunRecord:
    path = Path(path)
    if not (path / "config.yaml").is_file() and not (path / "summary.json").is_file():
        raise RaycvError(
            f"{path} is not a raycv run folder (no config.yaml, no summary.json): pass a "
            "folder that `raycv run` or `raycv tune` wrote, e.g. runs/<name>"
        )
    summary = read_summary(_need(path / "summary.json", "the run's summary"))
    config = config_mod.load(_need(path / "config.yaml", "the run's config"))
    classes, models = list(summary.classes), list(summary.models)
    table_file = _need(path / "predictions.csv", "the out-of-fold predictions")
    # labels and ids as text: a class named "1" must not become the integer 1
    text_columns = ["sample_id", "patient_id", "label", *(f"pred_{m}" for m in models)]
    predictions = pd.read_csv(table_file, dtype={c: str for c in text_columns})
    index = {c: i for i, c in enumerate(classes)}

    def as_index(column: str, may_be_empty: bool = False) -> np.ndarray:
        """Class indices; -1 for an empty cell where allowed (an image model's visit
        without its image, data.missing_images: mask)."""
        codes = predictions[column].map(index)
        bad = codes.isna() & (predictions[column].notna() | (not may_be_empty))
        if bad.any():
            value = predictions.loc[bad, column].iloc[0]
            raise RaycvError(f"{table_file}: {column} holds {value!r}, not one of {classes}")
        return codes.fillna(-1).to_numpy(dtype=int)

    history_file = path / "history.csv"
    return RunRecord(
        path=path,
        name=config.name,
        classes=classes,
        kappa_weights=summary.kappa_weights,
        models=models,
        predictions=predictions,
        y=as_index("label"),
        preds={m: as_index(f"pred_{m}", may_be_empty=True) for m in models},
        summary=summary,
        history=pd.read_csv(history_file) if history_file.is_file() else None,
        config=config,
    )


def load_tune(path: str | Path) -> TuneRecord:
    path = Path(path)
    summary = json.loads(_need(path / "summary.json", "the search's summary").read_text())
    if "nested" not in summary or "best" not in summary:
        raise RaycvError(f"{path / 'summary.json'} has no best trial or nested estimate")
    # searched values stay as written ("all" beside 1, 2, 3 for unfreeze_depth)
    trials = pd.read_csv(path / "trials.csv", dtype={"trial_id": str})
    return TuneRecord(path=path, trials=trials, summary=summary, best=load_run(path / "best"))
