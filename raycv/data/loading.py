"""A dataset folder -> a validated Dataset, or one DataError.

The steps, each refusing bad input with a message naming the file, row or column:
metadata.csv (`table`), where each visit's images are (`layout`), visits without
images (`missing`), then the images themselves, streamed one file at a time, cropped
to their box and resized as they arrive (`reader`). The steps before the images make a
`Source`, which `assemble` reads into a Dataset: all of it, or the few visits a preview
shows (`Source.take`). The synthetic cohort makes its own Source and goes through the
same `read_table` / `assemble` code, minus the file reading, so both obey the same rules.

What loading found goes into `Dataset.notes` (plain data, not fingerprinted), for
`data check`, the run log and provenance.json:

- "layout": "folders", "images.csv" or "synthetic";
- "warnings": one line each, e.g. a column read as numbers despite a few text cells
  (also logged as warnings by raycv.data.table);
- "dropped": {modality: [sample ids]} left out by data.missing_images=drop;
- "images": {modality: {"images", "visits": {"0", "1", "several"}, "height",
  "width" ([min, max] before resizing: of the crops, for boxes), "kinds" ({file kind:
  count}), "channels" (1 for a map, 3 for a photo of data.rgb), "colormap" (None for
  photos), "off_colormap" ({"files", "max_share"}), "crops" ({"images",
  "frame_height", "frame_width", "margin"}: images cut from boxes, their files' sizes,
  data.crop_margin), "resize" (data.resize), "ignored" (files that are no visit's image)}}.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow.fs as pafs
import yaml

from raycv.config import ColumnsConfig, Config
from raycv.data import images, missing
from raycv.data.dataset import Dataset, ImageSet
from raycv.data.folder import Folder
from raycv.data.layout import ImageRef, Located, locate
from raycv.data.reader import ModalityReader
from raycv.data.settings import Settings, resolve
from raycv.data.table import Table, decode_text, header, parse_csv, read_table
from raycv.errors import DataError

METADATA_CSV = "metadata.csv"
DATASET_YAML = "dataset.yaml"
_YAML_KEYS = ("classes", "columns", "modalities", "features", "colormaps", "description")


def folder_settings(config: Config) -> Settings:
    folder = _open(config.data.path)
    where = folder.show(METADATA_CSV)
    text = decode_text(folder.read(METADATA_CSV), config.data.encoding, where)
    return resolve(config, _read_spec(folder), header(text, where))


def read_header(config: Config) -> list[str]:
    """The column names of data.path's metadata.csv (nothing else is read)."""
    folder = _open(config.data.path)
    where = folder.show(METADATA_CSV)
    return header(decode_text(folder.read(METADATA_CSV), config.data.encoding, where), where)


def read_metadata(config: Config) -> Table:
    """data.path's metadata.csv checked as for a run, every column but the ids and the
    label read as a feature (numbers or text, as the forest would see them); no image is
    located or read. For reports by subgroup, which may name a column the run left out."""
    folder = _open(config.data.path)
    where = folder.show(METADATA_CSV)
    text = decode_text(folder.read(METADATA_CSV), config.data.encoding, where)
    names = header(text, where)
    settings = resolve(config, _read_spec(folder), names)
    roles = (settings.columns.sample_id, settings.columns.patient_id, settings.columns.label)
    settings = dataclasses.replace(settings, features=tuple(c for c in names if c not in roles))
    return read_table(parse_csv(text, names, settings, where), settings, where)


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
    colormaps = spec.get("colormaps", {})
    if not isinstance(colormaps, dict) or not all(isinstance(v, str) for v in colormaps.values()):
        raise DataError(f"{where}: colormaps must map image modalities to colormap names")
    spec["colormaps"] = {str(m): name for m, name in colormaps.items()}
    return spec


def _name_list(value, least: int, what: str) -> list[str]:
    # YAML reads `classes: [1, 2, 3]` as ints; labels are read from the CSV as text
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise DataError(f"{what} must be a list of names, got {value!r}")
    names = [str(v) for v in value]
    if len(names) < least or len(set(names)) != len(names):
        raise DataError(f"{what} must hold {least} or more distinct names, got {names}")
    return names


# -- images and assembly -------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A dataset before its images are read: the checked table, where each visit's images
    are, and how to decode one of them."""

    table: Table
    located: Located
    fetch: Callable[[ImageRef], images.Raw]  # one image (the crop of its box), decoded
    settings: Settings

    def kept(self) -> tuple[np.ndarray, dict[str, list[str]]]:
        """(keep: (N,) bool, dropped ids per modality): data.missing_images applied to the
        visits without an image (the refusal, for `refuse`)."""
        s = self.settings
        counts = self.located.counts()
        return missing.apply(
            s.missing_images, counts, self.table, "metadata" in s.modalities, self.located.hint
        )

    def take(self, keep: np.ndarray) -> Source:
        """The visits where `keep` (bool) is true, in order."""
        return dataclasses.replace(
            self, table=self.table.take(keep), located=self.located.take(keep)
        )


def assemble(source: Source) -> Dataset:
    """A Source -> Dataset: every image decoded, checked and resized.

    Visits without images are refused, dropped or masked first (data.missing_images);
    then each image is checked and resized as it arrives into one preallocated array
    per modality ((K, S, S), or (K, 3, S, S) for a photo modality), so a folder of large
    maps or photos never sits in memory at full size.
    """
    keep, dropped = source.kept()
    table, located, settings = source.table, source.located, source.settings
    if not keep.all():
        table = table.take(keep)
    size, n = settings.image_size, len(table.sample_id)
    sets, stats = {}, {}
    for modality in settings.image_modalities:
        per_visit = [f for f, k in zip(located.files[modality], keep, strict=True) if k]
        counts = np.array([len(f) for f in per_visit], dtype=np.int64)
        reader = ModalityReader(
            modality,
            settings.colormaps,
            settings.max_off_colormap,
            size,
            settings.resize,
            photo=modality in settings.rgb,
        )
        shape = (size, size) if reader.channels == 1 else (reader.channels, size, size)
        pixels = np.empty((int(counts.sum()), *shape), dtype=np.float32)
        for j, ref in enumerate(itertools.chain.from_iterable(per_visit)):
            pixels[j] = reader.read(source.fetch(ref))
        sets[modality] = ImageSet(pixels, np.repeat(np.arange(n, dtype=np.int64), counts))
        found = reader.summary()
        if "crops" in found:
            found["crops"]["margin"] = settings.crop_margin.get(modality, 0)
        stats[modality] = {
            **found,
            "resize": settings.resize,
            "visits": {
                "0": int((counts == 0).sum()),
                "1": int((counts == 1).sum()),
                "several": int((counts > 1).sum()),
            },
            "ignored": located.ignored.get(modality, 0),
        }
    notes = {
        "layout": located.source,
        "unlabelled": not table.labelled,
        "warnings": list(table.warnings),
        "dropped": dropped,
        "images": stats,
    }
    return Dataset(
        sample_id=table.sample_id,
        patient_id=table.patient_id,
        y=table.y,
        classes=settings.classes,
        features=table.features,
        images=sets,
        notes=notes,
    )


def folder_source(config: Config, labels_optional: bool = False) -> Source:
    """data.path -> its Source; refuses a bad table or layout before reading a single image."""
    folder = _open(config.data.path)
    where = folder.show(METADATA_CSV)
    text = decode_text(folder.read(METADATA_CSV), config.data.encoding, where)
    names = header(text, where)
    settings = resolve(config, _read_spec(folder), names)
    table = read_table(parse_csv(text, names, settings, where), settings, where, labels_optional)
    located = locate(folder, table.sample_id, settings)

    def fetch(ref: ImageRef) -> images.Raw:  # lazily: one raw image in memory at a time
        return images.decode(folder.read(ref.path), folder.show(ref.path), ref.crop)

    return Source(table, located, fetch, settings)
