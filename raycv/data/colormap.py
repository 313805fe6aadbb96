"""Colour-mapped images: an RGB(A) pixel -> the scalar in [0, 1] its colormap encodes.

Clinics export thermal and depth maps as colour PNGs drawn with a matplotlib colormap
(viridis, inferno, jet, ...). A pixel's value is its position on that colormap: the
nearest of the colormap's `N` lookup-table colours, entry k -> k / (N - 1). Where
neighbouring entries share one 8-bit colour (jet's flat stretches), that colour decodes
to their mean position, the value with the least error.

Speed: a colour is matched against the table once per colormap and process, not once
per pixel or file. Each colormap keeps a lookup from the packed 24-bit colour code to
its table index (or "off the colormap"), filled lazily for the colours not seen yet,
so decoding an image is one gather over its pixels: a folder of thousands of exports
costs about as much as decoding the PNGs themselves.
"""

from __future__ import annotations

import functools

import numpy as np

# A colour counts as on the colormap when it lies within this Euclidean distance, in
# 8-bit RGB units (0..255 per channel), of one of the colormap's colours. 8 covers
# 8-bit rounding or truncation of the table (<= 1.7), and a colour taken from a finer
# table of the same colormap (half the largest step between neighbours: viridis 1.6,
# jet 3.0, turbo 4.1), while annotation colours (white text, red or green marks) stay
# tens of units away from perceptual colormaps. Colours a colormap contains itself
# (black on inferno, any gray on gray) are values, not annotations.
TOLERANCE = 8.0
_UNSEEN, _OFF = -2, -1


@functools.cache
def decoder(name: str) -> ColormapDecoder:
    """The process-wide decoder of the matplotlib colormap `name` (KeyError if unknown)."""
    import matplotlib  # here, not at import time: most datasets need no colormap

    return ColormapDecoder(matplotlib.colormaps[name])


def known(name: str) -> bool:
    import matplotlib

    return name in matplotlib.colormaps


class ColormapDecoder:
    """Packed colour code -> position on one colormap; remembers every colour it has met."""

    def __init__(self, cmap):
        self.name = cmap.name
        n = cmap.N
        assert 2 <= n <= np.iinfo(np.int16).max, (cmap.name, n)
        entries = np.arange(n)
        self._table = cmap(entries)[:, :3] * 255.0  # (N, 3) float RGB, 0..255
        # matplotlib writes its colours truncated to 8 bits, other software rounds them;
        # both are exact hits (matplotlib's wins a tie), so an export decodes to the very
        # table entry it was drawn with, even where neighbours are a unit or two apart
        self._exported = cmap(entries, bytes=True)[:, :3]  # (N, 3) uint8
        rounded = np.rint(self._table).astype(np.uint8)
        # 2**24 int16 = 32 MiB per colormap used, allocated on first use
        self._index = np.full(1 << 24, _UNSEEN, dtype=np.int16)
        # lookup index -> position: the N entries, then one slot per colour that several
        # neighbouring entries share at 8 bits (their mean position: the least error)
        positions = list(entries / (n - 1))
        for colours in (rounded, self._exported):
            codes = _packed(colours)
            unique, owner, count = np.unique(codes, return_inverse=True, return_counts=True)
            single = count[owner] == 1
            self._index[codes[single]] = entries[single]
            for code in unique[count > 1]:
                positions.append(float(entries[codes == code].mean()) / (n - 1))
                self._index[code] = len(positions) - 1
        self._position = np.asarray(positions, dtype=np.float32)

    def decode(self, rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 4) uint8 RGBA -> ((H, W) float32 positions, (H, W) bool off or None).

        Off pixels (far from every colormap colour, or fully transparent) get some value
        here and are flagged; the caller decides how to fill them. None: no pixel is off.
        """
        pixel = np.ascontiguousarray(rgba).view("<u4")[..., 0]  # (H, W): a << 24 | code
        code = pixel & 0xFFFFFF  # r | g << 8 | b << 16
        index = np.take(self._index, code)
        if index.min() == _UNSEEN:
            self._learn(np.unique(code[index == _UNSEEN]))
            index = np.take(self._index, code)
        values = np.take(self._position, index)  # _OFF (-1) picks the last slot: flagged
        transparent = pixel < (1 << 24)  # alpha 0
        if index.min() >= 0 and not transparent.any():
            return values, None
        return values, (index == _OFF) | transparent

    def encode(self, values: np.ndarray) -> np.ndarray:
        """(H, W) positions in [0, 1] -> (H, W, 3) uint8, the colours matplotlib exports.

        The inverse of `decode` to within the colormap's resolution (1 / (N - 1)); used by
        the synthetic cohort to write exports like a clinic's.
        """
        n = len(self._exported)
        k = np.rint(np.clip(values, 0.0, 1.0) * (n - 1)).astype(np.int64)
        return self._exported[k]

    def _learn(self, codes: np.ndarray) -> None:
        """Match colours not seen yet against the table (a few hundred per colormap)."""
        rgb = np.stack([codes & 255, (codes >> 8) & 255, (codes >> 16) & 255], axis=1)
        # (U, 1, 3) - (1, N, 3) -> (U, N) squared distances
        d2 = ((rgb[:, None, :].astype(np.float64) - self._table[None]) ** 2).sum(axis=-1)
        nearest = d2.argmin(axis=1)
        on = d2[np.arange(len(codes)), nearest] <= TOLERANCE**2
        self._index[codes] = np.where(on, nearest, _OFF).astype(np.int16)


def _packed(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) int64 colour codes r | g << 8 | b << 16, as `decode` reads."""
    r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
    return r | (g << 8) | (b << 16)
