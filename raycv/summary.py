"""summary.json as one record: a finished run's numbers, written by the compute side
(lifecycle.write_results, raycv.statistics) and read by the report, tracking and tune.

It imports neither side. The file's format is the run-folder contract (README: the run
folder): `RunSummary.to_json()` is the JSON object summary.json holds, its keys in
the order they have always had, NaN written as null and numpy scalars as Python numbers;
`from_json` reads one back. A summary written by an earlier raycv reads too: before
cv.repeats it had no `repeats` (one) and no fold `repeat` (0); before the statistics no
`comparisons`, `subgroups`, `subgroups_bootstrap`, `brier`, `ece` (None); before masked
images no `n_predicted` (None); before ablation no `f1_per_class` (None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from raycv.errors import RaycvError


def json_safe(obj):
    """NaN (undefined kappa) -> null, numpy scalars -> Python: summary.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def _values(cls, obj: dict, where: str, earlier: dict | None = None) -> dict:
    """obj's values for the fields of record `cls`, `earlier` filling the keys an earlier
    raycv did not write; RaycvError naming any other key that is unknown or missing."""
    names = [f.name for f in fields(cls)]
    values = {**(earlier or {}), **obj}
    unknown = [k for k in obj if k not in names]
    missing = [n for n in names if n not in values]
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"no {missing}"
        raise RaycvError(
            f"{where}: a {cls.__name__} with {problem} (its keys: {names}): not a summary.json "
            "this raycv can read"
        )
    return values


@dataclass
class ModelSummary:
    """One model's scores over the prediction rows it predicts (results.summarize), with
    the calibration of its probabilities (raycv.statistics)."""

    kappa_mean: float | None  # mean over the (repeat, fold) units; None: undefined
    kappa_std: float | None  # population std over the units
    # all out-of-fold predictions together (with repeats: the mean over repeats of each's)
    kappa_pooled: float | None
    kappa_per_fold: list[float | None]  # one per unit, in (repeat, fold) order
    accuracy_mean: float | None
    macro_f1_mean: float | None
    n_predicted: int | None  # prediction rows it predicts (data.missing_images: mask)
    brier: float | None  # multi-class Brier score; None: no prediction row
    ece: float | None  # expected calibration error, 10 confidence bins
    # each class's F1 over all the model's prediction rows (pooled), in class order: the
    # rare class's is what a macro mean hides
    f1_per_class: dict[str, float] | None = None

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, obj: dict, where: str = "summary.json") -> ModelSummary:
        earlier = {"n_predicted": None, "brier": None, "ece": None, "f1_per_class": None}
        return cls(**_values(cls, obj, where, earlier))


@dataclass
class FoldSummary:
    """One (repeat, fold) unit: its inner-validation scores and what its fusion chose."""

    repeat: int
    fold: int
    n_test: int  # visits in its outer test fold
    val_kappa: dict[str, float | None]  # model -> kappa on the inner-validation split
    stage1_val_score: float | None  # early stopping's score (monitor) of stage 1
    stage2_val_score: float | None  # None: stage 2 never beat stage 1
    stage2_kept: bool | None  # None: no fusion in this config
    fusion_weights: dict[str, float]
    seconds: float

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, obj: dict, where: str = "summary.json") -> FoldSummary:
        return cls(**_values(cls, obj, where, {"repeat": 0}))


@dataclass
class RunSummary:
    """A finished run's numbers: summary.json."""

    kappa_weights: str  # 'none', 'linear' or 'quadratic'
    classes: list[str]  # class order: every kappa, matrix and per-class column follows it
    models: dict[str, ModelSummary]  # report order: branches, then fusion_stage1, fusion
    folds: list[FoldSummary]  # (repeat, fold) order
    wall_seconds: float
    repeats: int  # cv.repeats
    monitor: str  # early stopping's score: val_kappa or val_loss
    split_by: str | None = None  # cv.split_by (leave one site out): fold k is sites[k]
    sites: list[str] | None = None
    # raycv.statistics (the formulas: its modules' docstrings); None: not computed
    # [{"model", "baseline", "mean_difference", "t", "df", "p_value", "ci95"}]
    comparisons: list[dict] | None = None
    subgroups: dict | None = None  # {column: {value: {model: {"n", "kappa", "ci95"}}}}
    subgroups_bootstrap: dict | None = None  # {"resamples", "seed"} of the subgroup CIs

    @property
    def stage2_kept(self) -> list[bool | None]:
        """Per unit, whether its fusion kept stage 2 (None: no fusion)."""
        return [f.stage2_kept for f in self.folds]

    def to_json(self) -> dict:
        """summary.json's object, keys in the contract's order; optional ones only when set."""
        statistics = {
            "comparisons": self.comparisons,
            "subgroups": self.subgroups,
            "subgroups_bootstrap": self.subgroups_bootstrap,
        }
        out = {
            "kappa_weights": self.kappa_weights,
            "classes": list(self.classes),
            "models": {m: s.to_json() for m, s in self.models.items()},
            **{k: v for k, v in statistics.items() if v is not None},
            "stage2_kept": self.stage2_kept,
            "wall_seconds": self.wall_seconds,
            "repeats": self.repeats,
            "folds": [f.to_json() for f in self.folds],
            "monitor": self.monitor,
        }
        sites = {"split_by": self.split_by, "sites": self.sites}
        out.update({k: v for k, v in sites.items() if v is not None})
        return json_safe(out)

    @classmethod
    def from_json(cls, obj: dict, where: str = "summary.json") -> RunSummary:
        if "models" not in obj:
            raise RaycvError(f"{where} has no 'models': not a run folder's summary")
        # stage2_kept repeats the folds' own: the record derives it from them
        values = _values(cls, {k: v for k, v in obj.items() if k != "stage2_kept"}, where, EARLIER)
        values["models"] = {m: ModelSummary.from_json(s, where) for m, s in obj["models"].items()}
        values["folds"] = [FoldSummary.from_json(f, where) for f in obj["folds"]]
        return cls(**values)


# what a summary.json written by an earlier raycv lacks, and what that meant
EARLIER = {
    "repeats": 1,
    "split_by": None,
    "sites": None,
    "comparisons": None,
    "subgroups": None,
    "subgroups_bootstrap": None,
}


def read_summary(path: str | Path) -> RunSummary:
    """A run folder's summary.json (path: the file) as its record."""
    path = Path(path)
    return RunSummary.from_json(json.loads(path.read_text()), str(path))
