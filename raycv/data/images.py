"""One image file: decode (.npy, gray or colour .png, .jpg), check, resize to the CNN's side.

`decode` says what a file holds (its kind) without interpreting colour: a colour PNG or
JPEG comes back as its RGB(A) pixels, and the modality decides what they mean
(`raycv.data.reader`): positions on its colormap (`data.colormaps`), or the three
channels of a colour photo (`data.rgb`, see `photo`). A JPEG is only ever a photo: its
lossy compression shifts colours, so it cannot carry a colour-mapped map. Every failure
is a DataError naming the file, so a bad map is refused at load time rather than
surfacing as a NaN loss in some fold hours later.

A full camera frame with a box (`raycv.data.frames`) is cut to its window as it is
decoded: only the crop is converted to pixels, so a frame's size costs its PNG decoding
and nothing more. The square the CNN takes is made by `resize` (stretched, `data.resize:
stretch`) or `pad` (aspect ratio kept, centred on a square filled by `fill_value`); a
photo's three channels are resized each on its own, the same way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from raycv.data.frames import Crop
from raycv.errors import DataError

# matched case-insensitively: Windows exports write .PNG, cameras .JPG
MAP_SUFFIXES = (".npy", ".png")  # what a map modality may hold
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")  # what a photo modality (data.rgb) may hold
SUFFIXES = (".npy", ".png", ".jpg", ".jpeg")
# The kinds of file a modality may hold; they encode different scales, so one
# modality holds one kind (see raycv.data.reader).
NPY, GRAY8, GRAY16, COLOUR, ARRAY, JPEG, GRAY_JPEG = (
    ".npy array",
    "8-bit gray PNG",
    "16-bit gray PNG",
    "colour PNG",
    "in-memory array",
    "colour JPEG",
    "gray JPEG",
)
# What the images of a photo modality are once read, whichever file they came from: sRGB
# in [0, 1], three channels (see `photo`); `fill_value` pads them black.
PHOTO = "colour photo"
# Pillow's modes for a grayscale PNG of each depth (16-bit opens as I;16, or I in old Pillow)
_GRAY_MODES = {"L": GRAY8, "I;16": GRAY16, "I;16L": GRAY16, "I;16B": GRAY16, "I": GRAY16}
_COLOUR_MODES = ("RGB", "RGBA")
_PALETTE_MODES = ("P", "PA")  # a palette PNG: expanded to RGBA, then read like a colour one
_JPEG_CONVERTED = ("CMYK", "YCbCr")  # a JPEG's other colour modes: converted to RGB


@dataclass(frozen=True)
class Raw:
    """One decoded file, not yet checked or resized."""

    name: str  # the file as messages show it
    array: np.ndarray  # (H, W) as stored, or (H, W, 4) uint8 RGBA for a colour PNG or JPEG
    kind: str  # one of NPY, GRAY8, GRAY16, COLOUR, ARRAY, JPEG, GRAY_JPEG
    frame: tuple[int, int] | None = None  # (H, W) of the whole file when `array` is a crop


def is_image_file(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def check_suffix(path: str, modality: str, photo: bool, name: str | None = None) -> None:
    """Refuse, before any file is read, one its modality cannot hold: a .npy array in a
    photo modality (`data.rgb`), a JPEG in a map modality. `name` heads the message (the
    manifest row and its path; default: `path`)."""
    lower, name = path.lower(), name or path
    if photo and not lower.endswith(PHOTO_SUFFIXES):
        raise DataError(
            f"{name}: a .npy array, but {modality!r} is in data.rgb, which reads colour "
            f"photos ({', '.join(PHOTO_SUFFIXES)}); take {modality!r} out of data.rgb to "
            "read its files as maps"
        )
    if not photo and not lower.endswith(MAP_SUFFIXES):
        raise DataError(
            f"{name}: a JPEG, which raycv reads only as a colour photo, but {modality!r} is "
            f"not in data.rgb; add it (--set 'data.rgb=[{modality}]') to read its images as "
            "RGB photos, or export its maps as .npy or .png"
        )


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
        return _decode_picture(data, name, crop, "PNG")
    if lower.endswith((".jpg", ".jpeg")):
        return _decode_picture(data, name, crop, "JPEG")
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


def photo(raw: Raw) -> np.ndarray:
    """A decoded colour PNG or JPEG -> (3, H, W) float32 sRGB in [0, 1], channels first as
    the CNN takes them; the alpha channel is dropped (a transparent pixel keeps the colour
    stored under it)."""
    assert raw.kind in (COLOUR, JPEG), raw.kind
    rgb = raw.array[..., :3]  # (H, W, 4) RGBA -> (H, W, 3)
    return np.moveaxis(rgb, -1, 0).astype(np.float32) / np.float32(255)  # -> (3, H, W)


def resize(arr: np.ndarray, size: int) -> np.ndarray:
    """(H, W) or (c, H, W) float32 -> (size, size) or (c, size, size) float32, bilinear with
    antialiasing when shrinking, each channel on its own.

    Pillow's float mode resamples deterministically on every machine; an image that
    already has the size is returned unchanged (no resampling blur).
    """
    return _resample(arr, size, size)


def pad(arr: np.ndarray, size: int, fill: float) -> np.ndarray:
    """(H, W) or (c, H, W) float32 -> (size, size) or (c, size, size) float32: the longer
    side resized to `size`, the aspect ratio kept, centred on a square of `fill` (an odd
    gap's extra pixel below / right), each channel alike.

    A square image comes out exactly as `resize` makes it: nothing to pad.
    """
    h, w = arr.shape[-2:]
    longest = max(h, w)
    if h == w:
        return resize(arr, size)
    nh, nw = (max(1, int(side * size / longest + 0.5)) for side in (h, w))  # half up
    out = np.full((*arr.shape[:-2], size, size), fill, dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[..., top : top + nh, left : left + nw] = _resample(arr, nh, nw)
    return out


def fill_value(kind: str, arr: np.ndarray) -> float:
    """What `pad` fills a map's square with: the lowest value of its modality's scale.

    A colour-mapped PNG decodes to positions 0..1 on its colormap: 0, the colormap's first
    colour. A gray PNG is read as stored: 0, the lowest level 8 or 16 bits hold. A .npy
    array (or an in-memory map) declares no scale (deg C, mm), so it is filled with its own
    lowest value, a level the image holds: a fixed 0 would be far outside a map of 26..38
    deg C, and a minimum over the cohort would be a statistic of the test folds too.
    A colour photo (data.rgb, PHOTO) is filled with 0 in every channel: black.
    """
    if kind in (PHOTO, COLOUR, GRAY8, GRAY16):
        return 0.0
    return float(arr.min())


def _resample(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) float32 -> (height, width) float32, Pillow's bilinear (antialiased when
    shrinking); unchanged when it already has that shape. (c, H, W): each channel alike."""
    if arr.shape[-2:] == (height, width):
        return arr
    if arr.ndim == 3:  # (c, H, W) -> (c, height, width), one channel at a time
        return np.stack([_resample(channel, height, width) for channel in arr])
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    image = Image.frombuffer("F", (arr.shape[1], arr.shape[0]), arr, "raw", "F", 0, 1)
    out = image.resize((width, height), Image.Resampling.BILINEAR).tobytes()
    return np.frombuffer(out, dtype=np.float32).reshape(height, width)


def _decode_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{name}: cannot read as a .npy array ({_first_line(exc)})") from None


def _decode_picture(data: bytes, name: str, crop: Crop | None, fmt: str) -> Raw:
    """A PNG or JPEG (`fmt`, from the file's suffix) -> its Raw: gray as stored, colour as
    (H, W, 4) uint8 RGBA (palette PNGs expanded, a JPEG's CMYK or YCbCr converted)."""
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
            elif fmt == "JPEG" and mode in _JPEG_CONVERTED:
                image = image.convert("RGB")
            if image.mode in _COLOUR_MODES:
                # RGBX pads RGB with an opaque alpha: every colour file arrives as (H, W, 4)
                raw = "RGBA" if image.mode == "RGBA" else "RGBX"
                flat = np.frombuffer(image.tobytes("raw", raw), dtype=np.uint8)
                arr = flat.reshape(image.height, image.width, 4)
            else:
                image.load()
                arr = np.asarray(image)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: cannot read as a {fmt} image ({_first_line(exc)})") from None
    if fmt == "JPEG":
        if mode == "L":
            return Raw(name, arr, GRAY_JPEG, frame)
        if mode == "RGB" or mode in _JPEG_CONVERTED:
            return Raw(name, arr, JPEG, frame)
        raise DataError(f"{name}: a JPEG of mode {mode!r}; expected colour (RGB) or gray")
    if mode in _GRAY_MODES:
        return Raw(name, arr, _GRAY_MODES[mode], frame)
    if mode in _COLOUR_MODES or mode in _PALETTE_MODES:
        return Raw(name, arr, COLOUR, frame)
    raise DataError(
        f"{name}: a PNG of mode {mode!r}; expected grayscale (8 or 16 bit), colour-mapped "
        "RGB/RGBA, or a colour photo (data.rgb)"
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
