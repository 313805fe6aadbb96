"""The built-in synthetic wound cohort as a dataset: in memory, or written to disk.

`synthetic_source` draws the cohort of config.data.synthetic as a Source, assembled into
a Dataset exactly like a folder's; `write_dataset` writes it as a dataset folder, optionally shaped
like a clinic's export (colour-mapped PNGs, several images per visit or none, a manifest,
full camera frames with boxes, colour photos). What the cohort is, and how it is drawn, is
raycv.data.cohort_model's; how frames are laid out, raycv.data.synthetic_frames'.

Colour photos (`photo` in memory, `write_dataset(rgb=NAME)` on disk) are 8-bit RGB, as a
camera's PNG holds them: the in-memory cohort hands the reader the very bytes a PNG would
hold, so both load to the same Dataset.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from raycv.config import Config
from raycv.data import colormap, images, synthetic_frames
from raycv.data.cohort_model import (
    CLASSES,
    DEPTH,
    FEATURES,
    IMAGE_MODALITIES,
    MODALITY,
    PHOTO,
    stream,
    synthesize,
    synthetic_metadata,
)
from raycv.data.folder import Folder
from raycv.data.frames import BOX_COLUMNS
from raycv.data.layout import MANIFEST, ImageRef, Located
from raycv.data.loading import DATASET_YAML, METADATA_CSV, Source
from raycv.data.settings import Settings, resolve
from raycv.data.table import Table, read_table
from raycv.errors import DataError

# what a colour-mapped export spans: position 0..1 on the colormap is lo..hi (clipped)
EXPORT_RANGE = {MODALITY: (26.0, 38.0), DEPTH: (-6.0, 2.0)}
_UNITS = {MODALITY: "deg C", DEPTH: "mm (negative: below the skin)"}
LAYOUTS = ("folder", "manifest")
_PHOTO_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")  # a folder name and a config key


def synthetic_settings(config: Config) -> Settings:
    """The cohort's settings, resolved like a folder's (it has no dataset.yaml)."""
    return resolve(config, {}, ["sample_id", "patient_id", "label", *FEATURES])


def synthetic_table(config: Config) -> Table:
    """The cohort's metadata, checked like `synthetic_source`'s; every column but the ids
    and the label read as a feature; no image is drawn."""
    p = config.data.synthetic
    where = f"the synthetic cohort (patients={p.patients}, seed={p.seed})"
    settings = dataclasses.replace(synthetic_settings(config), features=FEATURES)
    return read_table(synthetic_metadata(p.patients, p.seed), settings, where)


def synthetic_source(config: Config) -> Source:
    """config.data.synthetic -> its Source: the cohort drawn, its images in memory; `assemble`
    makes it a Dataset, checked and assembled exactly like a folder."""
    p = config.data.synthetic
    where = f"the synthetic cohort (patients={p.patients}, seed={p.seed})"
    settings = synthetic_settings(config)
    for modality in settings.image_modalities:
        if modality not in IMAGE_MODALITIES:
            raise DataError(
                f"{where} has no image modality {modality!r} (data.modalities); "
                f"it has {list(IMAGE_MODALITIES)}"
            )
    for modality in settings.rgb:
        if modality != PHOTO:
            raise DataError(
                f"data.rgb names {modality!r}, but {where} holds colour photos only as "
                f"{PHOTO!r}; its {modality!r} images are maps"
            )
    if PHOTO in settings.image_modalities and PHOTO not in settings.rgb:
        raise DataError(
            f"{where}: its {PHOTO!r} images are colour photos, read only with "
            f"data.rgb: [{PHOTO}] (--set 'data.rgb=[{PHOTO}]')"
        )
    frame, maps = synthesize(
        p.patients,
        p.seed,
        p.image_size,
        images_per_visit=p.images_per_visit,
        missing_images=p.missing_images,
        modalities=settings.image_modalities,
    )
    table = read_table(frame, settings, where)
    arrays, files = {}, {}
    for modality in settings.image_modalities:
        files[modality] = []
        for sid, shots in zip(table.sample_id, maps[modality], strict=True):
            keys = [f"{modality}/{sid}/{k}" for k in range(len(shots))]
            arrays.update(zip(keys, shots, strict=True))
            files[modality].append([ImageRef(key) for key in keys])
    hint = f"data.synthetic.missing_images={p.missing_images} leaves them out"
    located = Located(files, "synthetic", hint, {})

    def fetch(ref: ImageRef) -> images.Raw:  # never a box: the cohort has no frames in memory
        name, arr = f"{where}: {ref.path}", arrays[ref.path]
        if arr.ndim == 3:  # a photo: the RGBA bytes of the PNG `write_dataset` writes
            rgba = np.concatenate([rgb8(arr), np.full((*arr.shape[1:], 1), 255, np.uint8)], -1)
            return images.Raw(name, rgba, images.COLOUR)
        return images.Raw(name, arr, images.ARRAY)

    return Source(table, located, fetch, settings)


def write_dataset(
    out_dir: str | os.PathLike,
    patients: int = 268,
    seed: int = 0,
    image_size: int = 64,
    *,
    images_per_visit: int = 1,
    missing_images: float = 0.0,
    depth_map: bool = False,
    colormap_name: str | None = None,
    layout: str = "folder",
    frames: bool = False,
    rgb: str | None = None,
) -> str:
    """Write the cohort as a dataset folder; returns out_dir.

    Images are .npy arrays, or with `colormap_name` RGB PNGs colour-mapped on the fixed
    EXPORT_RANGE of each modality (written into dataset.yaml's description), as a
    clinic's software exports them. `layout` "folder" writes <modality>/<sample_id>.npy
    (or a folder per visit when `images_per_visit` > 1); "manifest" writes the files flat
    under files/ and lists them in images.csv. `frames` writes each image as a box of a
    full camera frame under frames/ (a thermal frame half black border, two visits'
    wounds in some frames; see raycv.data.synthetic_frames), its box in images.csv
    (whatever `layout` says). Loading it back gives the same Dataset (same fingerprint)
    as the in-memory cohort for .npy files (not with frames: a box is tighter than its
    map), and the same maps to within the colormap's resolution for PNGs (as positions
    in [0, 1], not deg C).
    `rgb` adds a modality of that name: the cohort's colour photos (`photo`), RGB PNGs
    whose class shows in the hue alone, read with `data.rgb: [<rgb>]`; laid out like the
    maps (never as frames: with `frames` they are listed whole in images.csv). Without
    it, every file is the one earlier versions wrote, byte for byte.
    Refuses a folder that already holds a metadata.csv rather than mixing two cohorts.
    """
    _check_write_options(images_per_visit, missing_images, colormap_name, layout)
    maps = (MODALITY, DEPTH) if depth_map else (MODALITY,)
    _check_photo_name(rgb)
    folder = Folder(out_dir)
    if folder.kind(METADATA_CSV).name != "NotFound":
        raise DataError(f"{folder.show(METADATA_CSV)} already exists; choose an empty folder")
    frame, drawn = synthesize(
        patients,
        seed,
        image_size,
        images_per_visit=images_per_visit,
        missing_images=missing_images,
        modalities=(*maps, PHOTO) if rgb else maps,
    )
    # the cohort's name of each modality drawn -> the name it is written under
    names = {**{m: m for m in maps}, **({PHOTO: rgb} if rgb else {})}
    manifest = []
    for drawn_as, modality in names.items():
        shots_of = drawn[drawn_as]
        if frames and drawn_as != PHOTO:
            manifest += _write_frames(folder, frame, shots_of, modality, colormap_name, seed)
            continue
        ext = ".png" if colormap_name or drawn_as == PHOTO else ".npy"
        for sid, shots in zip(frame["sample_id"], shots_of, strict=True):
            for k, arr in enumerate(shots):
                if layout == "manifest" or frames:
                    rel = f"files/{sid}_{modality}_{k:02d}{ext}"
                    # a photo beside frames: the whole file (empty box cells)
                    manifest.append((sid, modality, rel, *(("",) * 4 if frames else ())))
                elif images_per_visit == 1:
                    rel = f"{modality}/{sid}{ext}"
                else:
                    rel = f"{modality}/{sid}/{k:02d}{ext}"
                if drawn_as == PHOTO:
                    folder.write(rel, _photo_png(arr))
                else:
                    folder.write(rel, _encoded(arr, modality, colormap_name))
    if layout == "manifest" or frames:
        columns = ["sample_id", "modality", "path", *(BOX_COLUMNS if frames else ())]
        table = pd.DataFrame(manifest, columns=columns)
        folder.write(MANIFEST, table.to_csv(index=False).encode())
    spec = {
        "description": _description(
            patients, seed, image_size, images_per_visit, missing_images, colormap_name, maps
        )
        + (_FRAMES_TEXT.format(q=synthetic_frames.margin_room(image_size)) if frames else "")
        + (_PHOTOS_TEXT.format(m=rgb) if rgb else ""),
        "classes": list(CLASSES),
        "modalities": ["metadata", *names.values()],
    }
    if colormap_name:
        spec["colormaps"] = {m: colormap_name for m in maps}
    folder.write(DATASET_YAML, yaml.safe_dump(spec, sort_keys=False).encode())
    # written last: its presence marks a complete folder
    folder.write(METADATA_CSV, frame.to_csv(index=False).encode())
    return str(out_dir)


def _check_write_options(images_per_visit, missing_images, colormap_name, layout) -> None:
    if images_per_visit < 1:
        raise DataError(f"--images-per-visit={images_per_visit}: expected an int >= 1")
    if not 0.0 <= missing_images < 1.0:
        raise DataError(f"--missing-images={missing_images}: expected a share in [0, 1)")
    if colormap_name is not None and not colormap.known(colormap_name):
        raise DataError(f"--colormap={colormap_name!r} is not a matplotlib colormap (e.g. viridis)")
    if layout not in LAYOUTS:
        raise DataError(f"--layout={layout!r}: expected one of {', '.join(LAYOUTS)}")


def _check_photo_name(rgb: str | None) -> None:
    if rgb is None:
        return
    if not _PHOTO_NAME.match(rgb):
        raise DataError(f"--rgb={rgb!r}: a modality name is a letter, then letters, digits, _ or -")
    if rgb in (MODALITY, DEPTH, "metadata"):
        taken = "the metadata branch" if rgb == "metadata" else "a map modality of the cohort"
        raise DataError(f"--rgb={rgb!r} is {taken}; name the photos otherwise, e.g. --rgb photo")


_PHOTOS_TEXT = (
    ". {m}: colour photos (RGB PNGs; load with data.rgb: [{m}]) whose class shows in "
    "the wound's hue alone, at one luminance for every class: read as gray they carry no "
    "class"
)

_FRAMES_TEXT = (
    ". Images are boxes of full camera frames (images.csv xmin, ymin, xmax, ymax; thermal "
    "frames half black border, two visits' wounds in some frames): a data.crop_margin up "
    "to {q} px stays on skin"
)


def _write_frames(folder, frame, shots, modality, colormap_name, seed) -> list[tuple]:
    """A modality's images written as frames -> their manifest rows (with boxes)."""
    rng = stream(seed, f"{modality} frames")
    patient = pd.factorize(frame["patient_id"])[0]
    items = [(i, arr) for i, visit in enumerate(shots) for arr in visit]
    visit_of = [i for i, _ in items]
    rows = []
    ext = ".png" if colormap_name else ".npy"
    for f, members in enumerate(synthetic_frames.groups(visit_of, patient[visit_of], rng)):
        shown = synthetic_frames.compose([items[j][1] for j in members], modality, rng)
        rel = f"frames/{modality}/{f:05d}{ext}"
        folder.write(rel, _encoded(shown.values, modality, colormap_name, shown.border))
        for j, box in zip(members, shown.boxes, strict=True):
            sid = frame["sample_id"].iloc[visit_of[j]]
            rows.append((sid, modality, rel, box.xmin, box.ymin, box.xmax, box.ymax))
    return rows


def rgb8(photo: np.ndarray) -> np.ndarray:
    """(3, S, S) float RGB in [0, 1] -> (S, S, 3) uint8, as a camera's 8-bit file holds it."""
    return np.rint(np.clip(np.moveaxis(photo, 0, -1), 0.0, 1.0) * 255).astype(np.uint8)


def _photo_png(photo: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb8(photo)).save(buffer, format="PNG")
    return buffer.getvalue()


def _encoded(
    arr: np.ndarray, modality: str, colormap_name: str | None, black: np.ndarray | None = None
) -> bytes:
    """One image file's bytes; `black` (bool, like `arr`): a camera's border, written as 0
    in a .npy array and black in a PNG (off the colormap)."""
    buffer = io.BytesIO()
    if colormap_name is None:
        if black is not None:
            arr = np.where(black, np.float32(0), arr)
        np.save(buffer, arr, allow_pickle=False)
    else:
        lo, hi = EXPORT_RANGE[modality]
        rgb = colormap.decoder(colormap_name).encode((arr - lo) / (hi - lo))
        if black is not None:
            rgb[black] = 0
        Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _description(patients, seed, image_size, per_visit, missing, colormap_name, modalities):
    text = (
        f"raycv synthetic wound cohort (patients={patients}, seed={seed}, "
        f"image_size={image_size}, images_per_visit={per_visit}, missing_images={missing})"
    )
    if colormap_name:
        spans = "; ".join(
            f"{m}: 0 = {EXPORT_RANGE[m][0]:g}, 1 = {EXPORT_RANGE[m][1]:g} {_UNITS[m]}"
            for m in modalities
        )
        text += f". Images are {colormap_name} colour-mapped PNGs, clipped to: {spans}"
    if missing:
        text += ". Some visits have no image: load with data.missing_images=mask or drop"
    return text
