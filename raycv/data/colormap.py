"""Colour-mapped images: an RGB(A) pixel -> the scalar in [0, 1] its colormap encodes.

Clinics export thermal and depth maps as colour PNGs drawn with a matplotlib colormap
(viridis, inferno, jet, ...). A pixel's value is its position on that colormap: the
nearest of the colormap's `N` lookup-table colours, k -> k / (N - 1).

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
        self._table = cmap(np.arange(n))[:, :3] * 255.0  # (N, 3) float RGB, 0..255
        self._position = np.arange(n, dtype=np.float32) / np.float32(n - 1)  # (N,) in [0, 1]
        # 2**24 int16 = 32 MiB per colormap used, allocated on first use
        self._index = np.full(1 << 24, _UNSEEN, dtype=np.int16)

    def decode(self, rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3 | 4) uint8 -> ((H, W) float32 positions, (H, W) bool off-colormap).

        Off pixels (far from every colormap colour, or fully transparent) get 0 here;
        the caller decides how to fill them.
        """
        code = _packed(rgba)  # (H, W) int32: r << 16 | g << 8 | b
        index = self._index[code]
        unseen = index == _UNSEEN
        if unseen.any():
            self._learn(np.unique(code[unseen]))
            index = self._index[code]
        off = index == _OFF
        if rgba.shape[-1] == 4:
            off |= rgba[..., 3] == 0
        values = self._position[np.maximum(index, 0)]
        return values, off

    def encode(self, values: np.ndarray) -> np.ndarray:
        """(H, W) positions in [0, 1] -> (H, W, 3) uint8: the nearest table colour of each.

        The inverse of `decode` to within the colormap's resolution (1 / (N - 1)); used by
        the synthetic cohort to write exports like a clinic's.
        """
        n = len(self._position)
        k = np.rint(np.clip(values, 0.0, 1.0) * (n - 1)).astype(np.int64)
        return np.rint(self._table[k]).astype(np.uint8)

    def _learn(self, codes: np.ndarray) -> None:
        """Match colours not seen yet against the table (a few hundred per colormap)."""
        rgb = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=1)
        # (U, 1, 3) - (1, N, 3) -> (U, N) squared distances
        d2 = ((rgb[:, None, :].astype(np.float64) - self._table[None]) ** 2).sum(axis=-1)
        nearest = d2.argmin(axis=1)
        on = d2[np.arange(len(codes)), nearest] <= TOLERANCE**2
        self._index[codes] = np.where(on, nearest, _OFF).astype(np.int16)


def _packed(rgba: np.ndarray) -> np.ndarray:
    r, g, b = (rgba[..., c].astype(np.int32) for c in range(3))
    return (r << 16) | (g << 8) | b
