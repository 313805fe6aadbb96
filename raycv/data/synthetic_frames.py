"""The synthetic cohort as full camera frames: each image a box of a larger frame.

`raycv data synth --frames` writes every image into a frame, as a clinic's cameras
record them, and its box into images.csv, to try `data.crop_margin` and `data.resize` on.
The geometry, in q = a quarter of the map's side S:

- the imaging area is 2 S + 6 q wide and S + 4 q high: room for two maps side by side,
  each at least q from the area's edge and 2 q from the other, so a margin up to q px
  stays on skin;
- a thermal frame adds black bands above and below the area, as a thermal camera's frame
  is about half black (55 % here), portrait like the original's 1080 x 1440; black is
  off every colormap but gray and inferno-like ones, so a crop that reaches it is judged
  by `data.max_off_colormap`;
- a depth frame is the imaging area alone, landscape like the original's 1280 x 720.

A box is tighter than its map, as a wound's bounding box is: up to q / 2 of the map is
left out on two opposite sides (left and right, or top and bottom), so boxes are taller
or wider than square and `data.resize: pad` differs from `stretch`; a margin brings the
map's own edges back. Around a map the frame shows skin: the map's edge pixels carried
outwards, on a background of the median of the maps' edges. Consecutive images of two
visits of one patient share a frame about a third of the time (two wounds of one foot):
their rows of images.csv name one file with two boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raycv.data.cohort_model import MODALITY
from raycv.data.frames import Box

_SHARED = 0.35  # the chance that the next visit's image of the same patient shares a frame
_BLACK_BORDER = (MODALITY,)  # modalities whose camera frames have a black border


@dataclass(frozen=True)
class Frame:
    values: np.ndarray  # (H, W) float32 in the maps' units
    border: np.ndarray | None  # (H, W) bool: the camera's black border, or None
    boxes: tuple[Box, ...]  # where each map is, in the order given


def margin_room(size: int) -> int:
    """The widest margin (px) that keeps every crop of a map of side `size` on skin."""
    return max(1, size // 4)


def groups(visit_of: list[int], patient_of: list[int], rng: np.random.Generator) -> list[list[int]]:
    """Images in visit order -> the images of each frame: one, or two of consecutive
    visits of one patient (never two of one visit: those are retakes, not wounds)."""
    out, i = [], 0
    while i < len(visit_of):
        pair = (
            i + 1 < len(visit_of)
            and patient_of[i + 1] == patient_of[i]
            and visit_of[i + 1] != visit_of[i]
            and rng.random() < _SHARED
        )
        out.append([i, i + 1] if pair else [i])
        i += 2 if pair else 1
    return out


def compose(maps: list[np.ndarray], modality: str, rng: np.random.Generator) -> Frame:
    """One or two (S, S) maps -> the frame that shows them, and their boxes."""
    size = maps[0].shape[0]
    q = margin_room(size)
    width, height = 2 * size + 6 * q, size + 4 * q
    if len(maps) == 1:
        xs = [int(rng.integers(q, width - size - q + 1))]
    else:
        xs = [int(rng.integers(q, 2 * q + 1)), width - size - int(rng.integers(q, 2 * q + 1))]
    ys = [int(rng.integers(q, 3 * q + 1)) for _ in maps]
    edges = np.concatenate([_edge(m) for m in maps])
    area = np.full((height, width), np.median(edges), dtype=np.float32)
    for arr, x, y in zip(maps, xs, ys, strict=True):  # skin: each map's edges carried outwards
        _paste(area, np.pad(arr, 2 * q, mode="edge"), y - 2 * q, x - 2 * q)
    for arr, x, y in zip(maps, xs, ys, strict=True):
        area[y : y + size, x : x + size] = arr
    band = height * 5 // 8 if modality in _BLACK_BORDER else 0
    values = np.pad(area, ((band, band), (0, 0)))
    border = None
    if band:
        border = np.ones(values.shape, dtype=bool)
        border[band : band + height] = False
    boxes = tuple(_tighter(x, y + band, size, q, rng) for x, y in zip(xs, ys, strict=True))
    return Frame(values, border, boxes)


def _tighter(x: int, y: int, size: int, q: int, rng: np.random.Generator) -> Box:
    """The box of a map at (x, y): up to q / 2 left out on two opposite sides."""
    a, b = (int(t) for t in rng.integers(0, q // 2 + 1, 2))
    if rng.random() < 0.5:
        return Box(x + a, y, x + size - b, y + size)  # taller than wide
    return Box(x, y + a, x + size, y + size - b)  # wider than tall


def _edge(arr: np.ndarray) -> np.ndarray:
    return np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])


def _paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Write `patch` into `canvas` at (top, left), clipped to the canvas."""
    h, w = canvas.shape
    t, lo = max(top, 0), max(left, 0)
    b, r = min(top + patch.shape[0], h), min(left + patch.shape[1], w)
    canvas[t:b, lo:r] = patch[t - top : b - top, lo - left : r - left]
