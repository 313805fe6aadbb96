"""A dataset folder (CONTRACTS section 1) -> a validated Dataset, or one DataError.

Everything is read through `Folder`, so a local path and a URI (`file://`,
`s3://`, `gs://`, ...) load the same way. Validation happens here, once and
before any training: a refusal names the file, row, column or class at fault.
The synthetic cohort goes through the same `read_table` / `assemble` code, minus
the file reading, so both sources obey the same rules.

Settings are resolved in this order: a value set in the config (not None) wins,
then dataset.yaml, then the built-in default ([I, P, R]; [metadata, thermal_map];
every column that is not an id or the label).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.fs as pafs
import yaml

from raycv.config import DEFAULT_CLASSES, DEFAULT_MODALITIES, ColumnsConfig, Config
from raycv.data import images
from raycv.data.dataset import Dataset, ImageSet
from raycv.errors import DataError
from raycv.storage import filesystem

METADATA_CSV = "metadata.csv"
DATASET_YAML = "dataset.yaml"
# Cell text read as a missing feature value. The id and label columns count only
# an empty cell as missing, so a sample called "NA" keeps its name.
_MISSING_TOKENS = ["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "<NA>", "#N/A"]
_YAML_KEYS = ("classes", "columns", "modalities", "features", "description")
# pandas < 3 parses floats only approximately unless asked; pandas 3 is exact by
# default (and deprecates the option). Exact parsing makes a written cohort read back
# bit-identical.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


# -- storage ------------------------------------------------------------------


class Folder:
    """A folder on the local disk or behind a URI that pyarrow.fs understands."""

    def __init__(self, location: str):
        self.location = str(location)
        try:
            self.fs, self.root = filesystem(self.location)
        except ValueError as exc:
            raise DataError(f"cannot open dataset location: {exc}") from None

    def show(self, rel: str = "") -> str:
        """The name a user recognises (the location as given), for messages."""
        return f"{self.location.rstrip('/')}/{rel}" if rel else self.location

    def kind(self, rel: str = "") -> pafs.FileType:
        return self.fs.get_file_info(self._path(rel)).type

    def names(self, rel: str) -> set[str]:
        """File names directly inside folder `rel` (one listing, not one query per file)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self._path(rel)))
        return {i.base_name for i in infos if i.type == pafs.FileType.File}

    def read(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self._path(rel)) as stream:
                return stream.read()
        except (pyarrow.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"{self.show(rel)}: cannot read ({exc})") from None

    def write(self, rel: str, data: bytes) -> None:
        parent = os.path.dirname(rel)
        self.fs.create_dir(self._path(parent), recursive=True)
        with self.fs.open_output_stream(self._path(rel)) as stream:
            stream.write(data)

    def _path(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root


# -- resolved settings ----------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the config, dataset.yaml and the defaults resolve to for one dataset."""

    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    features: tuple[str, ...]
    columns: ColumnsConfig
    image_size: int

    @property
    def image_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m != "metadata")


def resolve(config: Config, spec: dict, header: list[str]) -> Settings:
    """Apply the precedence config > dataset.yaml (`spec`) > defaults."""
    data = config.data
    default_columns = ColumnsConfig()
    spec_columns = spec.get("columns", {})
    columns = ColumnsConfig(
        **{
            role: (ours if ours != getattr(default_columns, role) else spec_columns.get(role, ours))
            for role, ours in vars(data.columns).items()
        }
    )
    roles = (columns.sample_id, columns.patient_id, columns.label)
    features = data.features
    if features is None:
        features = spec.get("features", [c for c in header if c not in roles])
    return Settings(
        classes=tuple(data.classes or spec.get("classes") or DEFAULT_CLASSES),
        modalities=tuple(data.modalities or spec.get("modalities") or DEFAULT_MODALITIES),
        features=tuple(features),
        columns=columns,
        image_size=data.image_size,
    )


def folder_settings(config: Config) -> Settings:
    folder = _open(config.data.path)
    return resolve(config, _read_spec(folder), _header(folder.read(METADATA_CSV), folder))


def _open(path: str) -> Folder:
    folder = Folder(path)
    if folder.kind() != pafs.FileType.Directory:
        raise DataError(f"dataset folder {folder.show()!r} does not exist (data.path)")
    if folder.kind(METADATA_CSV) != pafs.FileType.File:
        raise DataError(f"{folder.show(METADATA_CSV)} does not exist: a dataset needs one")
    return folder


def _read_spec(folder: Folder) -> dict:
    """dataset.yaml -> a checked dict (empty when there is none)."""
    if folder.kind(DATASET_YAML) != pafs.FileType.File:
        return {}
    where = folder.show(DATASET_YAML)
    try:
        spec = yaml.safe_load(folder.read(DATASET_YAML)) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise DataError(f"{where}: expected a mapping with keys {', '.join(_YAML_KEYS)}")
    unknown = sorted(set(spec) - set(_YAML_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(_YAML_KEYS)}")
    for key, least in (("classes", 2), ("modalities", 1), ("features", 0)):
        if key in spec:
            spec[key] = _name_list(spec[key], least, f"{where}: {key}")
    columns = spec.get("columns", {})
    roles = list(vars(ColumnsConfig()))
    if not isinstance(columns, dict) or set(columns) - set(roles):
        raise DataError(f"{where}: columns must map some of {roles} to column names")
    spec["columns"] = {role: str(name) for role, name in columns.items()}
    return spec


def _name_list(value, least: int, what: str) -> list[str]:
    # YAML reads `classes: [1, 2, 3]` as ints; labels are read from the CSV as text
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise DataError(f"{what} must be a list of names, got {value!r}")
    names = [str(v) for v in value]
    if len(names) < least or len(set(names)) != len(names):
        raise DataError(f"{what} must hold {least} or more distinct names, got {names}")
    return names


# -- the table -------------------------------------------------------------------


def _header(data: bytes, folder: Folder) -> list[str]:
    text = data.decode("utf-8-sig", errors="replace")
    header = next(csv.reader(io.StringIO(text)), [])
    if not header:
        raise DataError(f"{folder.show(METADATA_CSV)} is empty: expected a header row")
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise DataError(f"{folder.show(METADATA_CSV)}: column(s) {dup} appear more than once")
    return header


def _parse_csv(data: bytes, header: list[str], settings: Settings, where: str) -> pd.DataFrame:
    roles = {settings.columns.sample_id, settings.columns.patient_id, settings.columns.label}
    try:
        return pd.read_csv(
            io.BytesIO(data),
            encoding="utf-8-sig",
            dtype={c: str for c in roles if c in header},  # '007' stays '007'
            keep_default_na=False,
            na_values={c: ([""] if c in roles else _MISSING_TOKENS) for c in header},
            **_EXACT_FLOATS,
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: cannot parse as CSV ({str(exc).splitlines()[0]})") from None


@dataclass(frozen=True)
class Table:
    """The checked metadata.csv: everything in a Dataset except the images."""

    sample_id: np.ndarray
    patient_id: np.ndarray
    y: np.ndarray
    features: pd.DataFrame


def _row(sample_id: np.ndarray, i: int) -> str:
    """How messages point at a row: counted from 1 after the header, with its id."""
    return f"row {i + 1} (sample_id {str(sample_id[i])!r})"


def read_table(frame: pd.DataFrame, settings: Settings, where: str) -> Table:
    """Check the metadata table and turn it into arrays; `where` names it in messages."""
    cols = settings.columns
    roles = {"sample_id": cols.sample_id, "patient_id": cols.patient_id, "label": cols.label}
    for role, name in roles.items():
        if name not in frame.columns:
            raise DataError(
                f"{where} has no column {name!r} (the {role} column, data.columns.{role}); "
                f"its columns are {list(frame.columns)}"
            )
    _check_feature_names(settings, list(frame.columns), set(roles.values()), where)
    if "metadata" in settings.modalities and not settings.features:
        raise DataError(
            f"data.modalities includes 'metadata' but {where} has no feature columns "
            f"(its columns are {list(frame.columns)}); drop 'metadata' or add features"
        )
    if len(frame) == 0:
        raise DataError(f"{where} has no rows")

    ids = {}
    for role, name in list(roles.items())[:2]:
        values = frame[name]
        if values.isna().any():
            i = int(np.flatnonzero(values.isna())[0])
            raise DataError(f"{where} row {i + 1}: empty {role} (column {name!r})")
        ids[role] = np.asarray(values.to_numpy(dtype=object), dtype=str)
    sample_id = ids["sample_id"]
    seen: dict[str, int] = {}
    for i, sid in enumerate(sample_id):
        if sid in seen:
            raise DataError(
                f"{where}: duplicate sample_id {str(sid)!r} in rows {seen[sid] + 1} and {i + 1}; "
                "each sample (visit) needs its own id"
            )
        seen[sid] = i
    y = _label_indices(frame[cols.label], settings.classes, sample_id, where)
    features = _features(frame, settings.features, sample_id, where)
    return Table(sample_id, ids["patient_id"], y, features)


def _check_feature_names(settings: Settings, header: list[str], roles: set, where: str) -> None:
    listed = list(settings.features)
    dup = sorted({f for f in listed if listed.count(f) > 1})
    if dup:
        raise DataError(f"data.features lists {dup} more than once")
    clash = [f for f in listed if f in roles]
    if clash:
        # a label among the features would leak the answer into the forest
        raise DataError(f"data.features lists {clash}, which are id or label columns")
    missing = [f for f in listed if f not in header]
    if missing:
        raise DataError(
            f"{where} has no feature column(s) {missing} (data.features); its columns are {header}"
        )


def _label_indices(labels: pd.Series, classes: tuple[str, ...], sample_id, where: str):
    empty = labels.isna().to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise DataError(f"{where} {_row(sample_id, i)}: empty label")
    index = {c: k for k, c in enumerate(classes)}
    text = labels.to_numpy(dtype=object)
    for i, label in enumerate(text):
        if label not in index:
            n_bad = sum(v not in index for v in text)
            raise DataError(
                f"{where} {_row(sample_id, i)}: unknown label {label!r} "
                f"({n_bad} row(s) in all); allowed classes: {list(classes)} (data.classes)"
            )
    return np.array([index[v] for v in text], dtype=np.int64)


def _features(frame: pd.DataFrame, names, sample_id, where: str) -> pd.DataFrame:
    """Numeric columns -> float64; anything else -> object dtype of str, NaN when missing.

    Plain object (not pandas' string dtype) keeps the sklearn code downstream simple.
    """
    out = {}
    for name in names:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            inf = np.isinf(values)
            if inf.any():
                i = int(np.flatnonzero(inf)[0])
                raise DataError(f"{where} {_row(sample_id, i)}: feature {name!r} is infinite")
            out[name] = pd.Series(values, dtype=np.float64)
        else:
            missing = col.isna().to_numpy()
            values = np.array([str(v) for v in col.to_numpy(dtype=object)], dtype=object)
            values[missing] = np.nan
            out[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


# -- images and assembly -------------------------------------------------------


def assemble(
    table: Table, maps: dict[str, Iterable[tuple[str, np.ndarray]]], settings: Settings
) -> Dataset:
    """Table + (name, raw map) pairs per image modality, in row order -> Dataset.

    Each map is checked and resized as it arrives, so a folder of large maps never
    sits in memory at full size.
    """
    size = settings.image_size
    stacks = {}
    for modality in settings.image_modalities:
        out = np.empty((len(table.sample_id), size, size), dtype=np.float32)
        count = 0
        for i, (name, arr) in enumerate(maps[modality]):
            out[i] = images.resize(images.check(arr, name), size)
            count += 1
        assert count == len(out), (modality, count, len(out))  # one map per row, by the callers
        stacks[modality] = ImageSet.single(out)
    return Dataset(
        sample_id=table.sample_id,
        patient_id=table.patient_id,
        y=table.y,
        classes=settings.classes,
        features=table.features,
        images=stacks,
    )


def _image_files(folder: Folder, table: Table, modality: str) -> list[str]:
    """Each sample's map file in `modality/`, all found before any is read."""
    if folder.kind(modality) != pafs.FileType.Directory:
        raise DataError(
            f"{folder.show(modality)}/ does not exist: image modality {modality!r} "
            f"(data.modalities) needs one map per sample there"
        )
    present = folder.names(modality)
    files = []
    for i, sid in enumerate(map(str, table.sample_id)):
        found = [sid + s for s in images.SUFFIXES if sid + s in present]
        if not found:
            raise DataError(
                f"{folder.show(f'{modality}/{sid}.npy')} (or .png) is missing: "
                f"the map of metadata.csv {_row(table.sample_id, i)}"
            )
        if len(found) > 1:
            raise DataError(f"{folder.show(f'{modality}/{sid}')}: both {found} exist; keep one")
        files.append(f"{modality}/{found[0]}")
    return files


def _decoded(folder: Folder, files: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    for rel in files:  # lazily: one raw map in memory at a time
        yield folder.show(rel), images.decode(folder.read(rel), folder.show(rel))


def load_folder(config: Config) -> Dataset:
    """data.path -> Dataset; refuses bad input before reading a single map."""
    folder = _open(config.data.path)
    data = folder.read(METADATA_CSV)
    header = _header(data, folder)
    settings = resolve(config, _read_spec(folder), header)
    where = folder.show(METADATA_CSV)
    table = read_table(_parse_csv(data, header, settings, where), settings, where)
    files = {m: _image_files(folder, table, m) for m in settings.image_modalities}
    return assemble(table, {m: _decoded(folder, f) for m, f in files.items()}, settings)
