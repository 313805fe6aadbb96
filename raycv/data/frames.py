"""Full camera frames: a wound's box in a file, widened by a margin and clipped to the file.

A row of images.csv may carry a box, `xmin, ymin, xmax, ymax`, in the file's pixels: x
to the right and y down from the top-left corner, the max exclusive as in a Python slice
(`frame[ymin:ymax, xmin:xmax]`). The image is then that box, widened on every side by
`data.crop_margin.<modality>` and clipped to the file:

- an int margin is pixels on each side;
- a float margin (below 1) is a share of the box's side: share x width left and right,
  share x height above and below, rounded to whole pixels.

What is refused, by the row, and when: a box with some but not all four cells, a cell
that is not a whole pixel, a negative or empty one (xmax <= xmin) as the manifest is
read; a box that does not lie inside its file as the file is opened, naming the box and
the file's size. A box is never silently clipped: one reaching past its frame is an
export in other coordinates (x and y swapped, another file's box), not a wound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from raycv.errors import DataError

BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True, order=True)
class Box:
    """A rectangle of a file's pixels, max exclusive: rows ymin..ymax-1, columns xmin..xmax-1."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    @property
    def width(self) -> int:
        return self.xmax - self.xmin

    @property
    def height(self) -> int:
        return self.ymax - self.ymin

    def __str__(self) -> str:
        return f"({self.xmin}, {self.ymin}, {self.xmax}, {self.ymax})"


@dataclass(frozen=True)
class Crop:
    """Which part of a file is the image: a box of one manifest row and its modality's margin."""

    box: Box
    margin: int | float  # int: pixels on every side; float below 1: a share of the box's side
    where: str  # the manifest row, for messages ("images.csv row 7")

    def __str__(self) -> str:
        return f"{self.where}, box {self.box}"

    def window(self, height: int, width: int, name: str) -> Box:
        """The pixels to cut from a (height, width) file: the box widened by the margin and
        clipped to the file; DataError naming the row, box and size if the box is outside."""
        b = self.box
        if b.xmax > width or b.ymax > height:
            raise DataError(
                f"{self.where}: box (xmin, ymin, xmax, ymax) {b} is not inside {name}, which "
                f"is {width} x {height} px (W x H); a box is in the file's pixels, x right, y "
                "down, max exclusive (at most the width and height): are x and y swapped, or "
                "is it another file's box?"
            )
        dx, dy = self.margin_pixels()
        return Box(
            max(0, b.xmin - dx),
            max(0, b.ymin - dy),
            min(width, b.xmax + dx),
            min(height, b.ymax + dy),
        )

    def margin_pixels(self) -> tuple[int, int]:
        """(left and right, above and below): the margin in whole pixels."""
        if isinstance(self.margin, int):
            return self.margin, self.margin
        return _whole(self.margin * self.box.width), _whole(self.margin * self.box.height)


def parse_box(cells: tuple[str, ...], at: str) -> Box | None:
    """The four box cells of a manifest row -> its Box, or None when all four are empty
    (the whole file); DataError naming the row for anything else that is not a box."""
    empty = [c for c, v in zip(BOX_COLUMNS, cells, strict=True) if not v.strip()]
    if len(empty) == len(BOX_COLUMNS):
        return None
    if empty:
        raise DataError(
            f"{at}: a box needs all of {', '.join(BOX_COLUMNS)}, but {', '.join(empty)} "
            "empty; leave all four empty for the whole image"
        )
    box = Box(*(_pixel(v, c, at) for c, v in zip(BOX_COLUMNS, cells, strict=True)))
    if box.xmin < 0 or box.ymin < 0:
        raise DataError(
            f"{at}: box (xmin, ymin, xmax, ymax) {box} is outside its image: pixels start at 0"
        )
    if box.width <= 0 or box.height <= 0:
        raise DataError(
            f"{at}: box (xmin, ymin, xmax, ymax) {box} is empty: the max is exclusive, so "
            "xmax > xmin and ymax > ymin (inclusive boxes: add 1 to xmax and ymax)"
        )
    return box


def missing_columns(columns) -> list[str]:
    """The box columns a manifest lacks when it has some of them ([] for none or all)."""
    absent = [c for c in BOX_COLUMNS if c not in columns]
    return absent if len(absent) < len(BOX_COLUMNS) else []


def _pixel(text: str, column: str, at: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise DataError(
            f"{at}: {column}={text.strip()!r} is not a whole pixel; round the boxes to ints "
            "when making images.csv"
        )
    return int(value)


def _whole(x: float) -> int:
    return math.floor(x + 0.5)  # half up, the same on every machine
