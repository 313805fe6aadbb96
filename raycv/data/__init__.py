"""The data layer: dataset folders and the synthetic cohort -> one validated Dataset.

`load_dataset(config)` is the one entry point the rest of raycv uses; it reads
`data.path` when set, else generates the synthetic cohort. `resolve_config`
fills data.classes / .modalities / .features / .columns with what the dataset
resolves to, so a run's config.yaml is runnable as it is. `write_preview` draws what
the image model is given for a few visits (raycv.data.preview), reading no other image.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from raycv.config import Config
from raycv.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from raycv.data.dataset import Dataset
    from raycv.data.loading import Source
    from raycv.data.settings import Settings

# Loaded on first use: the modules that read and draw images import PIL and matplotlib,
# and a lane's worker, which only unpickles a Dataset (raycv.data.dataset), would import
# them before its first fold (~0.25 s of a 2-core machine's start-up, issue 21).
_FROM = {
    "Dataset": "raycv.data.dataset",
    "ImageSet": "raycv.data.dataset",
    "Settings": "raycv.data.settings",
    "summarize": "raycv.data.check",
    "synthesize": "raycv.data.synthetic",
    "write_dataset": "raycv.data.synthetic",
}


def __getattr__(name: str):
    if name in _FROM:
        return getattr(importlib.import_module(_FROM[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_dataset(config: Config, labels: str = "required") -> Dataset:
    """The validated Dataset of a config: data.path if set, else the synthetic cohort.

    labels="optional": a folder without a label column loads as new visits to predict
    (notes["unlabelled"]; y is then 0 everywhere and means nothing).
    """
    from raycv.data.loading import assemble

    return assemble(open_source(config, labels))


def open_source(config: Config, labels: str = "required") -> Source:
    """A config's dataset before its images are read (raycv.data.loading.Source)."""
    if config.data.path is not None:
        from raycv.data.loading import folder_source

        return folder_source(config, labels_optional=labels == "optional")
    from raycv.data.synthetic import synthetic_source

    return synthetic_source(config)


def write_preview(config: Config, path: str | Path, per_class: int | None = None) -> str:
    """Draw the contact sheet of a config's cohort into the PNG `path` (raycv.data.preview;
    per_class: its PER_CLASS by default); -> one line saying what it shows. DataError if
    the dataset cannot be read."""
    from raycv.data import preview

    per_class = preview.PER_CLASS if per_class is None else per_class
    sheet = preview.sheet(open_source(config), per_class)
    preview.write(sheet, path)
    return preview.describe(sheet)


def load_table(config: Config) -> pd.DataFrame:
    """The metadata of a config's dataset without reading (or drawing) a single image: one
    row per sample of metadata.csv (or the synthetic cohort), indexed by sample_id, every
    column but the ids and the label, numbers as float64 and text as str, NaN where
    missing. Checked as for a run (DataError naming the file, row or column)."""
    import pandas as pd

    from raycv.data.loading import read_metadata
    from raycv.data.synthetic import synthetic_table

    table = read_metadata(config) if config.data.path is not None else synthetic_table(config)
    frame = table.features.copy()
    frame.index = pd.Index(table.sample_id, name="sample_id")
    return frame


def resolved_settings(config: Config) -> Settings:
    """Classes, modalities, features and columns after config > dataset.yaml > defaults."""
    if config.data.path is not None:
        from raycv.data.loading import folder_settings

        return folder_settings(config)
    from raycv.data.synthetic import synthetic_settings

    return synthetic_settings(config)


def resolve_config(config: Config) -> Config:
    """A copy of `config` with the data settings the dataset resolves to written in."""
    s = resolved_settings(config)
    data = dataclasses.replace(
        config.data,
        classes=list(s.classes),
        modalities=list(s.modalities),
        features=list(s.features),
        columns=dataclasses.replace(s.columns),
        colormaps=dict(s.colormaps),
    )
    return dataclasses.replace(config, data=data)


def check_dataset(path: str, config: Config | None = None, preview_png: str | None = None) -> str:
    """Load and validate the folder at `path`; -> a short human summary (DataError if bad).
    With `preview_png`, also draw the contact sheet of what the image model is given."""
    config = config or Config()
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(path)))
    from raycv.data.check import summarize

    text = summarize(load_dataset(config), where=str(path))
    if preview_png is not None:
        text += f"\npreview: {preview_png}: {write_preview(config, preview_png)}"
    return text


__all__ = [
    "DataError",
    "Dataset",
    "ImageSet",
    "Settings",
    "check_dataset",
    "load_dataset",
    "load_table",
    "open_source",
    "resolve_config",
    "resolved_settings",
    "summarize",
    "synthesize",
    "write_dataset",
    "write_preview",
]
