"""One image modality's files -> (S, S) float32 maps or (3, S, S) photos, and what `data
check` says about them.

A modality holds one kind of file: .npy arrays, 8-bit gray PNGs, 16-bit gray PNGs or
colour-mapped PNGs encode different scales (deg C, 0..255, 0..65535, a colormap
position in [0, 1]), so a mix would feed the CNN maps that disagree on what a value
means. The first file of a second kind is refused, naming one file of each.

A colour PNG is decoded on the modality's colormap (`data.colormaps`). Its pixels far
from every colormap colour (annotations, background, fully transparent pixels) may be
at most `data.max_off_colormap` of the image; they are filled with the median of the
image's on-colormap values, a value the image already holds, so the fill adds no
edge and no new level for the CNN to learn from. A crop of a frame (a box in images.csv)
is judged on its own pixels: the frame's border outside it does not count.

A photo modality (`data.rgb`) holds colour photos, colour PNGs or JPEGs alike (both
store 8-bit sRGB, so they may mix): each is read as its three channels in [0, 1], alpha
dropped, never through a colormap. A gray file or an array there is refused by name: a
photo read as gray would lose what the modality is there for.

The image then becomes the CNN's square: stretched to it (`data.resize: stretch`), or its
longer side fitted and the aspect ratio kept, centred on a square filled with the lowest
value of the modality's scale (`pad`; `images.fill_value` says which value per kind: black
for a photo), a photo channel by channel.
"""

from __future__ import annotations

import numpy as np

from raycv.data import colormap, images
from raycv.data.images import Raw
from raycv.errors import DataError


class ModalityReader:
    """Checks, decodes and resizes one modality's images as they stream in; keeps stats."""

    def __init__(
        self,
        modality: str,
        colormaps: dict[str, str],
        max_off: float,
        size: int,
        resize: str = "stretch",
        photo: bool = False,
    ):
        self.modality = modality
        self.photo = photo  # in data.rgb: colour photos, read as (3, S, S) RGB
        self.colormap = colormaps.get(modality)
        self._colormaps = colormaps
        self._max_off = max_off
        self._size = size
        self._resize = resize  # data.resize: stretch | pad
        self._first_of_kind: dict[str, str] = {}
        self._kinds: dict[str, int] = {}
        self._heights: list[int] = []
        self._widths: list[int] = []
        self._off_files = 0
        self._off_max = 0.0
        self._frames: list[tuple[int, int]] = []  # (H, W) of each file a crop was cut from

    @property
    def channels(self) -> int:
        return 3 if self.photo else 1

    def read(self, raw: Raw) -> np.ndarray:
        """A decoded file (or the crop of one) -> its (S, S) float32 map, or its (3, S, S)
        float32 photo in a photo modality."""
        if self.photo:
            arr, kind = self._photo(raw), images.PHOTO  # (3, H, W) in [0, 1]
        else:
            self._check_kind(raw)
            if raw.kind == images.COLOUR:
                arr = self._decode_colour(raw)  # finite float32 (H, W) by construction
            else:
                arr = images.check(raw.array, raw.name)
            kind = raw.kind
        self._heights.append(arr.shape[-2])
        self._widths.append(arr.shape[-1])
        if raw.frame is not None:
            self._frames.append(raw.frame)
        if self._resize == "pad":
            return images.pad(arr, self._size, images.fill_value(kind, arr))
        return images.resize(arr, self._size)

    def summary(self) -> dict:
        """Plain data for `data check` and provenance: count, sizes, kinds, channels,
        colormap (none for photos)."""
        n = len(self._heights)
        mapped = images.COLOUR in self._kinds and not self.photo
        out = {
            "images": n,
            "kinds": dict(self._kinds),
            "channels": self.channels,
            "colormap": self.colormap if mapped else None,
        }
        if n:
            out["height"] = [min(self._heights), max(self._heights)]
            out["width"] = [min(self._widths), max(self._widths)]
        if mapped:
            out["off_colormap"] = {"files": self._off_files, "max_share": self._off_max}
        if self._frames:
            heights, widths = zip(*self._frames, strict=True)
            out["crops"] = {
                "images": len(self._frames),
                "frame_height": [min(heights), max(heights)],
                "frame_width": [min(widths), max(widths)],
            }
        return out

    def _check_kind(self, raw: Raw) -> None:
        self._kinds[raw.kind] = self._kinds.get(raw.kind, 0) + 1
        if raw.kind in self._first_of_kind:
            return
        if self._first_of_kind:
            kind, first = next(iter(self._first_of_kind.items()))
            raise DataError(
                f"image modality {self.modality!r} mixes file kinds, which encode different "
                f"scales: {first} is a {kind}, {raw.name} a {raw.kind}; convert them to one kind"
            )
        self._first_of_kind[raw.kind] = raw.name

    def _photo(self, raw: Raw) -> np.ndarray:
        """A colour file of a photo modality -> (3, H, W) float32 RGB; anything else refused."""
        self._kinds[raw.kind] = self._kinds.get(raw.kind, 0) + 1
        if raw.kind not in (images.COLOUR, images.JPEG):
            raise DataError(
                f"{raw.name}: no colour image ({raw.kind}), but {self.modality!r} is in "
                "data.rgb, which reads colour photos (RGB or RGBA .png, .jpg, .jpeg); save it "
                f"in colour, or take {self.modality!r} out of data.rgb to read its images as maps"
            )
        return images.photo(raw)

    def _decode_colour(self, raw: Raw) -> np.ndarray:
        if self.colormap is None:
            named = f" (it names {sorted(self._colormaps)})" if self._colormaps else ""
            raise DataError(
                f"{raw.name}: a colour PNG, but data.colormaps sets no colormap for "
                f"{self.modality!r}{named}; set the one it was exported with, e.g. "
                f"--set data.colormaps.{self.modality}=viridis (gray for gray stored as RGB), "
                f"or read its images as colour photos with --set 'data.rgb=[{self.modality}]'"
            )
        values, off = colormap.decoder(self.colormap).decode(raw.array)
        if off is not None:
            share = float(off.mean())
            if share > self._max_off:
                whose, fix = "its", "crop them"
                if raw.frame is not None:  # a box's crop: its margin reached the border
                    whose, fix = "the crop's", f"narrow data.crop_margin.{self.modality} or the box"
                raise DataError(
                    f"{raw.name}: {share:.1%} of {whose} pixels are off the {self.colormap!r} "
                    f"colormap (annotations, background or transparent), more than "
                    f"data.max_off_colormap={self._max_off:g}; {fix}, check "
                    f"data.colormaps.{self.modality}, or raise data.max_off_colormap"
                )
            values[off] = np.median(values[~off])
            self._off_files += 1
            self._off_max = max(self._off_max, share)
        return values
