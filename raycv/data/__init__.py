"""The data layer: dataset folders and the synthetic cohort -> one validated Dataset.

`load_dataset(config)` is the one entry point the rest of raycv uses; it reads
`data.path` when set, else generates the synthetic cohort. `resolve_config`
fills data.classes / .modalities / .features / .columns with what the dataset
resolves to, so a run's config.yaml is runnable as it is.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from raycv.config import Config
from raycv.data.check import summarize
from raycv.data.dataset import Dataset, ImageSet
from raycv.data.loading import folder_settings, load_folder, read_metadata
from raycv.data.settings import Settings
from raycv.data.synthetic import (
    synthesize,
    synthetic_dataset,
    synthetic_settings,
    synthetic_table,
    write_dataset,
)
from raycv.errors import DataError


def load_dataset(config: Config, labels: str = "required") -> Dataset:
    """The validated Dataset of a config: data.path if set, else the synthetic cohort.

    labels="optional": a folder without a label column loads as new visits to predict
    (notes["unlabelled"]; y is then 0 everywhere and means nothing).
    """
    if config.data.path is not None:
        return load_folder(config, labels_optional=labels == "optional")
    return synthetic_dataset(config)


def load_table(config: Config) -> pd.DataFrame:
    """The metadata of a config's dataset without reading (or drawing) a single image: one
    row per sample of metadata.csv (or the synthetic cohort), indexed by sample_id, every
    column but the ids and the label, numbers as float64 and text as str, NaN where
    missing. Checked as for a run (DataError naming the file, row or column)."""
    table = read_metadata(config) if config.data.path is not None else synthetic_table(config)
    frame = table.features.copy()
    frame.index = pd.Index(table.sample_id, name="sample_id")
    return frame


def resolved_settings(config: Config) -> Settings:
    """Classes, modalities, features and columns after config > dataset.yaml > defaults."""
    if config.data.path is not None:
        return folder_settings(config)
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


def check_dataset(path: str, config: Config | None = None) -> str:
    """Load and validate the folder at `path`; -> a short human summary (DataError if bad)."""
    config = config or Config()
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(path)))
    return summarize(load_dataset(config), where=str(path))


__all__ = [
    "DataError",
    "Dataset",
    "ImageSet",
    "Settings",
    "check_dataset",
    "load_dataset",
    "load_table",
    "resolve_config",
    "resolved_settings",
    "summarize",
    "synthesize",
    "write_dataset",
]
