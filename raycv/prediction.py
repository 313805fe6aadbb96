"""`raycv predict`: a finished run's fold models applied to new visits, as one ensemble.

Every check happens before any model is loaded: the run folder has everything predict
needs, and the new data has every feature column the forest was trained on, every
image modality the run used (visits without images follow data.missing_images) and,
if labelled, only the run's classes. Then each fold's models predict every visit
(raycv.ensemble) and, per model, the probabilities are averaged over the folds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from raycv import config as config_mod
from raycv.config import Config, ConfigError
from raycv.data import load_dataset
from raycv.data.dataset import Dataset
from raycv.ensemble import ensemble, fold_probabilities, load_fold_models, missing_files
from raycv.errors import RaycvError
from raycv.metrics import kappa
from raycv.results import model_names
from raycv.storage import copy_tree, exists, filesystem, is_uri
from raycv.units import unit_name

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Prediction:
    table: pd.DataFrame  # one row per visit (README: predicting new patients)
    config: Config  # the run's
    folds: list[str]  # the units whose models predicted
    labelled: bool
    notes: dict  # what loading the new data found (warnings, dropped visits, ...)


def predict(
    run: str | Path, data: str | Path, fold: int | None = None, overrides: list[str] = ()
) -> pd.DataFrame:
    """The ensemble's predictions for the visits of dataset folder `data` (one row each):
    `sample_id, patient_id`, `label` if it has one, per model `pred_M`, `prob_M_<class>`,
    then `n_folds` and per model `fold_sd_M`. fold: that fold's models alone."""
    return predict_visits(run, data, fold, overrides).table


def predict_visits(
    run: str | Path, data: str | Path, fold: int | None = None, overrides: list[str] = ()
) -> Prediction:
    with local_run(run) as run_dir:
        config = run_config(run_dir)
        folds = run_folds(run_dir, config, fold)
        dataset, labelled = new_visits(config, data, overrides)
        models = [load_fold_models(run_dir, config, k) for k in folds]
    per_fold = fold_probabilities(models, dataset, config)
    table = prediction_table(dataset, labelled, ensemble(per_fold), config, len(folds))
    return Prediction(table, config, folds, labelled, dataset.notes)


@contextlib.contextmanager
def local_run(run: str | Path) -> Iterator[Path]:
    """The run folder as a local path: a URI's files predict reads, copied to a temp dir."""
    if not is_uri(run):
        path = Path(run)
        if not path.is_dir():
            raise RaycvError(f"run folder {str(run)!r} does not exist")
        yield path
        return
    try:
        fs, remote = filesystem(str(run))
    except ValueError as exc:
        raise RaycvError(f"run folder: {exc}") from None
    if not exists(fs, f"{remote}/config.yaml"):
        raise RaycvError(f"run folder {str(run)!r} has no config.yaml: not a finished run folder")
    local = Path(tempfile.mkdtemp(prefix="raycv-predict-"))
    try:
        local_fs = filesystem(str(local))[0]
        # predict reads the run's config and its checkpoints, nothing else
        with fs.open_input_stream(f"{remote}/config.yaml") as src:
            (local / "config.yaml").write_bytes(src.read())
        copy_tree(fs, f"{remote}/checkpoints", local_fs, str(local / "checkpoints"))
        yield local
    finally:
        shutil.rmtree(local, ignore_errors=True)


def run_config(run_dir: Path) -> Config:
    """The run's resolved config (config.yaml), refused in one line if it is not one."""
    path = run_dir / "config.yaml"
    if not path.is_file() or not (run_dir / "checkpoints").is_dir():
        what = "config.yaml" if not path.is_file() else "checkpoints/"
        raise RaycvError(f"{run_dir} has no {what}: not a finished raycv run folder")
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        raise RaycvError(f"{path}: {exc}") from None


def run_folds(run_dir: Path, config: Config, fold: int | None) -> list[str]:
    """The (repeat, fold) units whose models predict: every unit of every repeat, or
    fold K of repeat 0 alone; refuses a run missing any file they need."""
    n = config.cv.folds
    if fold is not None and not 0 <= fold < n:
        raise RaycvError(f"--fold {fold}: the run has folds 0..{n - 1}")
    units = [unit_name(r, k) for r in range(config.cv.repeats) for k in range(n)]
    folds = units if fold is None else [unit_name(0, fold)]
    missing = missing_files(run_dir, config, folds)
    if missing:
        shown = ", ".join(str(p.relative_to(run_dir)) for p in missing[:3])
        raise RaycvError(
            f"{run_dir} lacks {len(missing)} checkpoint file(s) predict needs ({shown}"
            f"{', ...' if len(missing) > 3 else ''}): the run is unfinished (finish it with "
            "`raycv run CONFIG --resume`) or was written before raycv 0.2 (rerun it with "
            "--overwrite)"
        )
    return folds


# Data settings a user may change for new data; everything else is the run's.
_DATA_KEYS = (
    "data.missing_images",
    "data.na_values",
    "data.encoding",
    "data.colormaps",
    "data.max_off_colormap",
)


def new_visits(config: Config, data: str | Path, overrides: list[str]) -> tuple[Dataset, bool]:
    """The new visits, read with the run's data settings (features, modalities, classes,
    columns, image size, colormaps, missing_images) and `--set` changes to data.* keys."""
    parsed = [config_mod.parse_override(o) for o in overrides]
    for key, _ in parsed:
        if not any(key == k or key.startswith(k + ".") for k in _DATA_KEYS):
            raise ConfigError(
                f"--set {key}: predict applies the run's models as trained; only "
                f"{', '.join(_DATA_KEYS)} may change for new data"
            )
    raw = config.to_dict()
    raw["data"]["path"] = str(data)
    data_config = config_mod.from_dict(raw, parsed)
    _check_columns(data_config)
    dataset = load_dataset(data_config, labels="optional")
    return dataset, not dataset.notes.get("unlabelled", False)


def _check_columns(config: Config) -> None:
    """Every feature column the forest was trained on, by name; extra ones listed once."""
    from raycv.data.loading import read_header

    header = read_header(config)
    cols = config.data.columns
    used = set(config.data.features) | {cols.sample_id, cols.patient_id, cols.label}
    if "metadata" in config.modalities:
        missing = [f for f in config.data.features if f not in header]
        if missing:
            raise RaycvError(
                f"{config.data.path}/metadata.csv lacks feature column(s) {missing} that "
                "the run's forest was trained on; add them (empty cells are imputed)"
            )
    extra = [c for c in header if c not in used]
    if extra:
        log.warning("ignoring column(s) the run did not use: %s", ", ".join(map(str, extra)))


def prediction_table(
    dataset: Dataset, labelled: bool, per_model: dict, config: Config, n_folds: int
) -> pd.DataFrame:
    classes = np.asarray(config.classes, dtype=object)
    table = {"sample_id": dataset.sample_id, "patient_id": dataset.patient_id}
    if labelled:
        table["label"] = dataset.labels
    spread = {}
    for m in model_names(config):
        mean, sd = per_model[m]
        known = ~np.isnan(mean).any(1)
        pred = classes[np.nan_to_num(mean).argmax(1)]
        pred[~known] = None  # no image of this modality (data.missing_images: mask)
        table[f"pred_{m}"] = pred
        for c, name in enumerate(config.classes):
            table[f"prob_{m}_{name}"] = mean[:, c]
        spread[f"fold_sd_{m}"] = sd
    table["n_folds"] = n_folds
    return pd.DataFrame({**table, **spread})


def scores_text(prediction: Prediction) -> str:
    """What the command prints: every model's kappa (labelled data) or class counts."""
    config, table = prediction.config, prediction.table
    lines = []
    if prediction.labelled:
        lines.append(
            f"kappa ({config.metrics.kappa_weights}) of the {len(prediction.folds)}-fold "
            "ensemble on these visits"
        )
        index = {c: i for i, c in enumerate(config.classes)}
        for m in model_names(config):
            known = table[f"pred_{m}"].notna()
            y = table.loc[known, "label"].map(index).to_numpy()
            pred = table.loc[known, f"pred_{m}"].map(index).to_numpy()
            k = kappa(y, pred, len(index), config.metrics.kappa_weights)
            lines.append(f"  {m:<16} {k:6.3f}   ({int(known.sum())} visits)")
    else:
        lines.append(
            f"predicted classes of the {len(prediction.folds)}-fold ensemble (no label column)"
        )
        for m in model_names(config):
            counts = table[f"pred_{m}"].value_counts()
            shown = "  ".join(f"{c}: {int(counts.get(c, 0))}" for c in config.classes)
            lines.append(f"  {m:<16} {shown}")
    return "\n".join(lines)
