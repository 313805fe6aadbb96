"""Benchmark: decoding full camera frames with boxes, margins and padding, against bare PIL.

    python bench/decode_pngs.py [--patients 30] [--image-size 320] [--side 64]

Writes the synthetic cohort as a clinic's cameras record it (`raycv data synth --frames
--depth-map --colormap viridis`): with maps of 320 px, thermal frames of 1120 x 1440 px
(W x H, 55 % black border, like the original's 1080 x 1440) and depth frames of
1120 x 640 (like its 1280 x 720), each row of images.csv a box, two wounds in some
frames. Then, over the same rows, each file read from disk (two rounds, the second
reported: the files are then in the page cache for every loop):

1. bare PIL: open, crop to the window (the box widened by the margin: thermal +30 px on
   every side, depth 10 % of the box's side), resize to side x side: the least any
   loader does;
2. raycv: what loading does per image: the file's bytes, decoding with the crop
   (`images.decode`), the colormap lookup and off-colormap check, then resizing
   (`ModalityReader.read`), with `data.resize: pad` and with `stretch`.

Goal: raycv with crops and padding within 1.5x of bare PIL. Compare ratios measured in
the same run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raycv.data import images, write_dataset  # noqa: E402
from raycv.data.frames import Box, Crop  # noqa: E402
from raycv.data.reader import ModalityReader  # noqa: E402

MARGINS = {"thermal_map": 30, "depth_map": 0.1}  # the original's: +30 px; depth by FoV


def crops_of(root: Path) -> list[tuple[Path, str, Crop]]:
    """Every row of images.csv: (file, modality, its box and margin)."""
    table = pd.read_csv(root / "images.csv")
    return [
        (
            root / r.path,
            r.modality,
            Crop(Box(r.xmin, r.ymin, r.xmax, r.ymax), MARGINS[r.modality], f"row {k + 1}"),
        )
        for k, r in enumerate(table.itertuples())
    ]


def timings(rows, side: int) -> dict[str, float]:
    """Seconds per loop over the same rows; the second of two rounds."""
    out = {}
    for _ in range(2):
        started = time.perf_counter()
        for path, _, crop in rows:
            with Image.open(path) as image:
                w = crop.window(image.height, image.width, str(path))
                image.crop((w.xmin, w.ymin, w.xmax, w.ymax)).resize((side, side))
        out["bare PIL: open, crop, resize"] = time.perf_counter() - started
        started = time.perf_counter()
        for path, _, _ in rows:
            with Image.open(path) as image:
                image.load()
        out["PIL: open, decode the whole frame"] = time.perf_counter() - started
        for mode in ("pad", "stretch"):
            readers = {
                m: ModalityReader(m, dict.fromkeys(MARGINS, "viridis"), 0.05, side, mode)
                for m in MARGINS
            }
            started = time.perf_counter()
            for path, modality, crop in rows:
                raw = images.decode(path.read_bytes(), str(path), crop)
                readers[modality].read(raw)
            out[f"raycv: bytes, decode + crop, colormap, {mode}"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=320, help="the maps' side in frames")
    parser.add_argument("--side", type=int, default=64, help="data.image_size")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; python "
        f"{platform.python_version()}, Pillow {Image.__version__}, numpy {np.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="raycv-decode-bench-") as tmp:
        root = Path(tmp) / "frames"
        started = time.perf_counter()
        write_dataset(
            root,
            args.patients,
            0,
            args.image_size,
            depth_map=True,
            colormap_name="viridis",
            frames=True,
        )
        rows = crops_of(root)
        files = {path for path, _, _ in rows}
        sizes = sorted({Image.open(p).size for p in files})
        mb = sum(p.stat().st_size for p in files) / 2**20
        print(
            f"cohort: {len(rows)} boxes in {len(files)} frames ({mb:.0f} MiB of PNG), frame "
            f"sizes (W x H) {sizes}; written in {time.perf_counter() - started:.0f} s"
        )
        seconds = timings(rows, args.side)
        bare = seconds["bare PIL: open, crop, resize"]
        for name, s in seconds.items():
            print(f"{name:48s} {s / len(rows) * 1e3:7.2f} ms/box  {s / bare:5.2f}x bare")
        pad = seconds["raycv: bytes, decode + crop, colormap, pad"]
        print(f"raycv (pad) / bare PIL: {pad / bare:.2f}x (goal: within 1.5x)")


if __name__ == "__main__":
    main()
