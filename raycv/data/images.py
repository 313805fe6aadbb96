"""One image file: decode (.npy, grayscale or colour .png), check, and resize to the CNN's side.

`decode` says what a file holds (its kind) without interpreting colour: a colour PNG
comes back as its RGB(A) pixels, and the modality's colormap turns it into values
(`raycv.data.reader`). Every failure is a DataError naming the file, so a bad map is
refused at load time rather than surfacing as a NaN loss in some fold hours later.

A full camera frame with a box (`raycv.data.frames`) is cut to its window as it is
decoded: only the crop is converted to pixels, so a frame's size costs its PNG decoding
and nothing more. The square the CNN takes is made by `resize` (stretched, `data.resize:
stretch`) or `pad` (aspect ratio kept, centred on a square filled by `fill_value`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from raycv.data.frames import Crop
from raycv.errors import DataError

SUFFIXES = (".npy", ".png")  # matched case-insensitively: Windows exports write .PNG
# The kinds of file a modality may hold; they encode different scales, so one
# modality holds one kind (see raycv.data.reader).
NPY, GRAY8, GRAY16, COLOUR, ARRAY = (
    ".npy array",
    "8-bit gray PNG",
    "16-bit gray PNG",
    "colour PNG",
    "in-memory array",
)
# Pillow's modes for a grayscale PNG of each depth (16-bit opens as I;16, or I in old Pillow)
_GRAY_MODES = {"L": GRAY8, "I;16": GRAY16, "I;16L": GRAY16, "I;16B": GRAY16, "I": GRAY16}
_COLOUR_MODES = ("RGB", "RGBA")
_PALETTE_MODES = ("P", "PA")  # a palette PNG: expanded to RGBA, then read like a colour one


@dataclass(frozen=True)
class Raw:
    """One decoded file, not yet checked or resized."""

    name: str  # the file as messages show it
    array: np.ndarray  # (H, W) as stored, or (H, W, 4) uint8 RGBA for a colour PNG
    kind: str  # one of NPY, GRAY8, GRAY16, COLOUR, ARRAY
    frame: tuple[int, int] | None = None  # (H, W) of the whole file when `array` is a crop


def is_image_file(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def decode(data: bytes, name: str, crop: Crop | None = None) -> Raw:
    """File bytes -> the stored pixels and the file's kind; `name` goes in messages.

    With a crop: the pixels of its window alone (the box widened by the margin, clipped to
    the file), named by the file and the manifest row; a box outside the file is refused.
    """
    lower = name.lower()
    if lower.endswith(".npy"):
        arr = _decode_npy(data, name)
        if crop is None or arr.ndim != 2:  # not 2-D: `check` refuses it, naming the file
            return Raw(name, arr, NPY)
        w = crop.window(arr.shape[0], arr.shape[1], name)
        return Raw(f"{name} [{crop}]", arr[w.ymin : w.ymax, w.xmin : w.xmax], NPY, arr.shape)
    if lower.endswith(".png"):
        return _decode_png(data, name, crop)
    raise DataError(f"{name}: unsupported image file; expected one of {', '.join(SUFFIXES)}")


def check(arr: np.ndarray, name: str) -> np.ndarray:
    """A decoded map -> (H, W) float32; refuses anything that is not a finite 2-D number grid."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D array (H, W), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(f"{name}: the array is empty, shape {arr.shape}")
    out = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(out)  # after the cast, so float64 values beyond float32 count too
    if bad.any():
        raise DataError(
            f"{name}: {int(bad.sum())} non-finite pixel(s) (NaN or inf), first at "
            f"(row, col) {tuple(int(i) for i in np.argwhere(bad)[0])}"
        )
    return out


def resize(arr: np.ndarray, size: int) -> np.ndarray:
    """(H, W) float32 -> (size, size) float32, bilinear with antialiasing when shrinking.

    Pillow's float mode resamples deterministically on every machine; a map that
    already has the size is returned unchanged (no resampling blur).
    """
    return _resample(arr, size, size)


def pad(arr: np.ndarray, size: int, fill: float) -> np.ndarray:
    """(H, W) float32 -> (size, size) float32: the longer side resized to `size`, the aspect
    ratio kept, centred on a square of `fill` (an odd gap's extra pixel below / right).

    A square map comes out exactly as `resize` makes it: nothing to pad.
    """
    h, w = arr.shape
    longest = max(h, w)
    if h == w:
        return resize(arr, size)
    nh, nw = (max(1, int(side * size / longest + 0.5)) for side in (h, w))  # half up
    out = np.full((size, size), fill, dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = _resample(arr, nh, nw)
    return out


def fill_value(kind: str, arr: np.ndarray) -> float:
    """What `pad` fills a map's square with: the lowest value of its modality's scale.

    A colour-mapped PNG decodes to positions 0..1 on its colormap: 0, the colormap's first
    colour. A gray PNG is read as stored: 0, the lowest level 8 or 16 bits hold. A .npy
    array (or an in-memory map) declares no scale (deg C, mm), so it is filled with its own
    lowest value, a level the image holds: a fixed 0 would be far outside a map of 26..38
    deg C, and a minimum over the cohort would be a statistic of the test folds too.
    """
    # A colour photo (data.rgb, a kind of its own) is zero-filled (black): its branch goes here.
    if kind in (COLOUR, GRAY8, GRAY16):
        return 0.0
    return float(arr.min())


def _resample(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) float32 -> (height, width) float32, Pillow's bilinear (antialiased when
    shrinking); unchanged when it already has that shape."""
    if arr.shape == (height, width):
        return arr
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    image = Image.frombuffer("F", (arr.shape[1], arr.shape[0]), arr, "raw", "F", 0, 1)
    out = image.resize((width, height), Image.Resampling.BILINEAR).tobytes()
    return np.frombuffer(out, dtype=np.float32).reshape(height, width)


def _decode_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{name}: cannot read as a .npy array ({_first_line(exc)})") from None


def _decode_png(data: bytes, name: str, crop: Crop | None = None) -> Raw:
    frame = None
    try:
        with Image.open(io.BytesIO(data)) as image:
            mode = image.mode
            if crop is not None:  # cut before converting: a frame's other pixels are skipped
                frame = (image.height, image.width)
                w = crop.window(image.height, image.width, name)
                image = image.crop((w.xmin, w.ymin, w.xmax, w.ymax))
                name = f"{name} [{crop}]"
            if mode in _PALETTE_MODES:
                image = image.convert("RGBA")
            if image.mode in _COLOUR_MODES:
                # RGBX pads RGB with an opaque alpha: every colour PNG arrives as (H, W, 4)
                raw = "RGBA" if image.mode == "RGBA" else "RGBX"
                flat = np.frombuffer(image.tobytes("raw", raw), dtype=np.uint8)
                arr = flat.reshape(image.height, image.width, 4)
            else:
                image.load()
                arr = np.asarray(image)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: cannot read as a PNG image ({_first_line(exc)})") from None
    if mode in _GRAY_MODES:
        return Raw(name, arr, _GRAY_MODES[mode], frame)
    if mode in _COLOUR_MODES or mode in _PALETTE_MODES:
        return Raw(name, arr, COLOUR, frame)
    raise DataError(
        f"{name}: a PNG of mode {mode!r}; expected grayscale (8 or 16 bit) or "
        "colour-mapped RGB/RGBA"
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
