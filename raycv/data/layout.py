"""Where each visit's images are: the folder conventions, or the manifest images.csv.

Folder conventions, per image modality:

- `<modality>/<sample_id>.npy` or `.png` (a photo modality, `data.rgb`: `.png`, `.jpg` or
  `.jpeg`): one image of the visit;
- `<modality>/<sample_id>/`: a folder of the visit's images (any names, the same kinds);
  one visit may not have both. Other files are ignored (and counted by `data check`).

The manifest `images.csv` (columns `sample_id, modality, path`, one row per image,
`path` relative to the dataset folder), when present, replaces the folder conventions
entirely. A row is refused, by its number, for an empty cell, a sample_id that is not in
metadata.csv, an unknown modality, an absolute path or one leading outside the folder,
a file that is not an image (.npy, .png, .jpg, .jpeg) or does not exist, or a path listed
twice. A modality is unknown unless it is in data.modalities or dataset.yaml's
`modalities`: rows of a declared modality that is not selected are checked and then left
out, so one manifest serves experiments on either modality, while a typo is caught.

Full frames: optional columns `xmin, ymin, xmax, ymax` give a row a box of its file
(`raycv.data.frames`); a row with them empty is the whole file. Rows naming one file
with different boxes are different images (two wounds: two samples; two crops of one
wound: two images of its visit); the same file and box twice is a file listed twice.

Either way a visit's images are ordered by path (then box), so a folder layout and a
manifest naming the same files give identical arrays. Nothing is read here, only listed;
a visit's file its modality cannot hold is refused by its name already (a .npy array in a
photo modality, a JPEG in a map one: `images.check_suffix`).
"""

from __future__ import annotations

import io
import itertools
import posixpath
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from raycv.data import images
from raycv.data.folder import Folder
from raycv.data.frames import BOX_COLUMNS, Crop, missing_columns, parse_box
from raycv.data.settings import Settings
from raycv.data.table import decode_text
from raycv.errors import DataError

MANIFEST = "images.csv"
MANIFEST_COLUMNS = ("sample_id", "modality", "path")
_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:|[A-Za-z][A-Za-z0-9+.-]*://)")


@dataclass(frozen=True)
class ImageRef:
    """One image of a visit: a file (a path in the dataset folder, or a synthetic key), or
    the crop of a box in it."""

    path: str
    crop: Crop | None = None

    def order(self) -> tuple:
        """A visit's images are sorted by path, then box (the whole file first)."""
        return (self.path, self.crop is not None, self.crop.box if self.crop else ())


@dataclass(frozen=True)
class Located:
    """Every selected modality's image files, per metadata.csv row, before reading any."""

    files: dict[str, list[list[ImageRef]]]  # modality -> per row: its images, in path order
    source: str  # how they were found: "folders", "images.csv", or "synthetic"
    hint: str  # what a missing image means in this layout, for the refusal
    ignored: dict[str, int]  # modality -> files there that are no visit's image

    def counts(self) -> dict[str, np.ndarray]:
        """modality -> (N,) images per visit."""
        return {m: np.array([len(f) for f in per], np.int64) for m, per in self.files.items()}

    def take(self, keep: np.ndarray) -> Located:
        """The rows where `keep` (bool) is true, in order (as Table.take)."""
        files = {
            m: [f for f, k in zip(per, keep, strict=True) if k] for m, per in self.files.items()
        }
        return Located(files, self.source, self.hint, self.ignored)


def locate(folder: Folder, sample_ids: np.ndarray, settings: Settings) -> Located:
    if folder.kind(MANIFEST) == pafs.FileType.File:
        return _from_manifest(folder, sample_ids, settings)
    return _from_folders(folder, sample_ids, settings)


def _from_folders(folder: Folder, sample_ids: np.ndarray, settings: Settings) -> Located:
    files, ignored = {}, {}
    for m in settings.image_modalities:
        if folder.kind(m) != pafs.FileType.Directory:
            raise DataError(
                f"{folder.show(m)}/ does not exist: image modality {m!r} (data.modalities) "
                f"needs its images there, or listed in {MANIFEST}"
            )
        single: dict[str, list[str]] = {}  # sample_id -> <m>/<sample_id>.<ext> files
        several: dict[str, list[str]] = {}  # sample_id -> files in <m>/<sample_id>/
        other = 0
        for rel, is_dir in folder.tree(m):
            parts = rel.split("/")[1:]
            if len(parts) == 1 and is_dir:
                several.setdefault(parts[0], [])
            elif len(parts) == 1 and images.is_image_file(rel):
                single.setdefault(_stem(parts[0]), []).append(rel)
            elif len(parts) == 2 and not is_dir and images.is_image_file(rel):
                several.setdefault(parts[0], []).append(rel)
            elif not is_dir:
                other += 1
        per_visit = []
        for sid in map(str, sample_ids):
            one, many = single.pop(sid, []), several.pop(sid, None)
            for rel in [*one, *(many or [])]:
                images.check_suffix(folder.show(rel), m, m in settings.rgb)
            if len(one) > 1:
                names = [posixpath.basename(f) for f in one]
                raise DataError(f"{folder.show(f'{m}/{sid}')}: both {names} exist; keep one")
            if one and many is not None:
                raise DataError(
                    f"{folder.show(one[0])} and the folder {folder.show(f'{m}/{sid}')}/ both "
                    "exist: a visit's images are either one file or one folder; keep one"
                )
            per_visit.append([ImageRef(f) for f in one or sorted(many or [])])
        files[m] = per_visit
        ignored[m] = other + sum(map(len, single.values())) + sum(map(len, several.values()))
    hint = "expected <modality>/<sample_id>.npy|.png|.jpg or a folder <modality>/<sample_id>/"
    return Located(files, "folders", hint, ignored)


def _stem(name: str) -> str:
    return name[: name.rfind(".")]


def _from_manifest(folder: Folder, sample_ids: np.ndarray, settings: Settings) -> Located:
    where = folder.show(MANIFEST)
    text = decode_text(folder.read(MANIFEST), settings.encoding, where)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{where}: cannot parse as CSV ({str(exc).splitlines()[0]})") from None
    absent = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if absent:
        raise DataError(
            f"{where} has no column(s) {absent}: expected {', '.join(MANIFEST_COLUMNS)} (one "
            f"row per image); its columns are {list(frame.columns)}"
        )
    partial = missing_columns(frame.columns)
    if partial:
        raise DataError(
            f"{where} has box columns but not {partial}: a box needs all of "
            f"{', '.join(BOX_COLUMNS)} (empty cells in a row: the whole image)"
        )
    row_of = {sid: i for i, sid in enumerate(map(str, sample_ids))}
    known = [m for m in settings.declared_modalities if m != "metadata"]
    files = {m: [[] for _ in sample_ids] for m in settings.image_modalities}
    first_row: dict[tuple, int] = {}  # (path, box) -> the row that listed it
    listings: dict[str, set[str]] = {}  # folder -> its file names: one listing per folder
    cells = zip(*(frame[c].astype(str) for c in MANIFEST_COLUMNS), strict=True)
    corners = (
        zip(*(frame[c].astype(str) for c in BOX_COLUMNS), strict=True)
        if BOX_COLUMNS[0] in frame.columns
        else itertools.repeat(None, len(frame))
    )
    for r, ((sid, modality, path), corner) in enumerate(zip(cells, corners, strict=True), start=1):
        at = f"{where} row {r}"
        for column, value in zip(MANIFEST_COLUMNS, (sid, modality, path), strict=True):
            if not value.strip():
                raise DataError(f"{at}: empty {column}")
        if modality not in known:
            raise DataError(
                f"{at}: unknown modality {modality!r}; image modalities are those in "
                f"data.modalities or dataset.yaml's modalities: {known}"
            )
        if sid not in row_of:
            raise DataError(f"{at}: unknown sample_id {sid!r}, not in metadata.csv")
        rel = _relative(path, at)
        box = None if corner is None else parse_box(corner, at)
        if (rel, box) in first_row:
            again = "" if box is None else f" with the same box {box}"
            raise DataError(f"{at}: {path!r} is listed already{again} in row {first_row[rel, box]}")
        first_row[rel, box] = r
        parent, _, name = rel.rpartition("/")
        if parent not in listings:
            listings[parent] = folder.names(parent)
        if name not in listings[parent]:
            raise DataError(f"{at}: {folder.show(rel)} does not exist")
        if modality in files:
            images.check_suffix(rel, modality, modality in settings.rgb, f"{at}: {path!r}")
            margin = settings.crop_margin.get(modality, 0)
            crop = None if box is None else Crop(box, margin, f"{MANIFEST} row {r}")
            files[modality][row_of[sid]].append(ImageRef(rel, crop))
    for per_visit in files.values():
        for visit_files in per_visit:
            visit_files.sort(key=ImageRef.order)
    hint = f"expected a row of {MANIFEST} per image (sample_id, modality, path)"
    return Located(files, MANIFEST, hint, {m: 0 for m in files})


def _relative(path: str, at: str) -> str:
    """A manifest path -> its normalised path inside the dataset folder."""
    posix = path.strip().replace("\\", "/")  # paths typed on Windows
    if _ABSOLUTE.match(posix):
        raise DataError(f"{at}: path {path!r} is absolute; write it relative to the dataset folder")
    rel = posixpath.normpath(posix)
    if rel == "." or rel.startswith("../") or rel == "..":
        raise DataError(f"{at}: path {path!r} leads outside the dataset folder")
    if not images.is_image_file(rel):
        raise DataError(f"{at}: {path!r} is not an image file ({', '.join(images.SUFFIXES)})")
    return rel
