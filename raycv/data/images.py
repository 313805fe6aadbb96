"""One image map: decode (.npy or grayscale .png), check, and resize to the CNN's side.

Every failure is a DataError naming the file, so a bad map is refused at load time
rather than surfacing as a NaN loss in some fold hours later.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from raycv.errors import DataError

SUFFIXES = (".npy", ".png")
# Pillow modes that hold one grayscale channel: 8-bit, 16-bit, 32-bit int, 32-bit float
_GRAY_MODES = ("L", "I;16", "I;16L", "I;16B", "I", "F")


def decode(data: bytes, name: str) -> np.ndarray:
    """File bytes -> the stored array, unchecked (see `check`); `name` goes in messages."""
    if name.endswith(".npy"):
        return _decode_npy(data, name)
    if name.endswith(".png"):
        return _decode_png(data, name)
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
    out = arr.astype(np.float32)
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
    if arr.shape == (size, size):
        return arr
    image = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32))  # mode 'F'
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _decode_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{name}: cannot read as a .npy array ({_first_line(exc)})") from None


def _decode_png(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode, arr = image.mode, np.array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: cannot read as a PNG image ({_first_line(exc)})") from None
    if mode not in _GRAY_MODES:
        raise DataError(f"{name}: expected a grayscale PNG (8 or 16 bit), got mode {mode!r}")
    return arr


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
