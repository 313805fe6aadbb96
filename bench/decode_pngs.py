"""Benchmark: loading colour-mapped PNG exports against a bare PIL decode loop.

    python bench/decode_pngs.py [--files 9000] [--colormap viridis]

Writes --files viridis PNGs of 55..80 px (as clinics export them: one thermal map per
visit) into a temporary dataset folder, then times, on the same files:

- bare: `np.asarray(Image.open(path))` for every file (what any loader pays);
- decode: raycv's own decoding of each file to its scalar map (reading the bytes, PIL,
  the colormap lookup, the off-colormap check), without resizing;
- load: `load_dataset` of the folder (metadata.csv, listing, decoding, checks, resizing
  each map from its 55..80 px to 64 x 64, one contiguous array).

Prints microseconds per file and the ratios to bare; the goal is decoding within 1.5x
of bare. Timings on shared machines are noisy: compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from raycv.config import Config, DataConfig
from raycv.data import images, load_dataset
from raycv.data.folder import Folder
from raycv.data.reader import ModalityReader


def write(root: Path, n: int, name: str) -> list[Path]:
    rng = np.random.default_rng(0)
    (root / "thermal_map").mkdir(parents=True)
    cmap = matplotlib.colormaps[name]
    axis = np.linspace(-1, 1, 80)
    rows, paths = ["sample_id,patient_id,label,age"], []
    for i in range(n):
        h, w = rng.integers(55, 81, 2)
        yy, xx = np.meshgrid(axis[:h], axis[:w], indexing="ij")
        blob = np.exp(-((yy - rng.uniform(-0.5, 0.5)) ** 2 + xx**2) / 0.1)
        values = np.clip(0.3 + 0.5 * blob + rng.normal(0, 0.03, (h, w)), 0, 1)
        path = root / "thermal_map" / f"v{i:05d}.png"
        Image.fromarray(cmap(values, bytes=True)[..., :3]).save(path)
        paths.append(path)
        rows.append(f"v{i:05d},p{i // 3},{'IPR'[i % 3]},{60 + i % 20}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=9000)
    parser.add_argument("--colormap", default="viridis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write(Path(tmp), args.files, args.colormap)
        config = Config(data=DataConfig(path=tmp, colormaps={"thermal_map": args.colormap}))
        for _ in range(2):  # the second round is the one reported: files in the page cache
            start = time.perf_counter()
            for path in paths:
                with Image.open(path) as image:
                    np.asarray(image)
            bare = time.perf_counter() - start
            start = time.perf_counter()
            folder = Folder(tmp)
            reader = ModalityReader("thermal_map", {"thermal_map": args.colormap}, 0.05, 64)
            for path in paths:
                rel = f"thermal_map/{path.name}"
                reader._decode_colour(images.decode(folder.read(rel), rel))
            decode = time.perf_counter() - start
            start = time.perf_counter()
            load_dataset(config)
            load = time.perf_counter() - start
        n = len(paths)
        print(
            f"{n} PNGs, us/file: bare PIL {bare / n * 1e6:.0f}, raycv decode "
            f"{decode / n * 1e6:.0f} ({decode / bare:.2f}x), raycv load_dataset "
            f"{load / n * 1e6:.0f} ({load / bare:.2f}x)"
        )


if __name__ == "__main__":
    main()
