"""Benchmark: a cohort shaped like a clinic's export, from `data check` to a default run.

    python bench/real_export.py [--patients 268] [--images-per-visit 5] [--skip-runs]

Writes the synthetic cohort as a clinic exports it: ~900 visits of 268 patients, about
5 images per visit of two modalities (thermal_map, depth_map), viridis colour-mapped RGB
PNGs cropped to 55..80 px, 5 % of (visit, modality) pairs without an image; about 9,000
PNGs. Then measures, on those files:

1. `raycv data check DIR` (a fresh process): wall time and peak memory (max RSS);
2. decoding: raycv's decoding of every PNG to its scalar map (bytes, PIL, colormap
   lookup, off-colormap check) against a bare `np.asarray(Image.open(p))` loop; goal:
   within 1.5x;
3. one default run (experiments/two_stage_fusion.yaml on this folder, both image
   modalities, data.missing_images: mask), sequential and on Ray: wall time, peak
   memory (summed PSS of every process of the run, Ray's included) and kappas. The
   dataset is loaded once per run: peak memory grows with the images once, not with
   the number of folds.

Compare ratios measured in the same run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from executors import measure  # noqa: E402

from raycv.data import colormap, images, write_dataset  # noqa: E402
from raycv.data.reader import ModalityReader  # noqa: E402

MODALITIES = ("thermal_map", "depth_map")


def write_export(root: Path, patients: int, per_visit: int) -> list[Path]:
    """The cohort as viridis PNGs, each cropped to a random 55..80 px side."""
    write_dataset(
        root,
        patients,
        0,
        80,
        images_per_visit=per_visit,
        missing_images=0.05,
        depth_map=True,
        colormap_name="viridis",
    )
    rng = np.random.default_rng(0)
    pngs = sorted(p for m in MODALITIES for p in (root / m).rglob("*.png"))
    for path in pngs:
        side = int(rng.integers(55, 81))
        top, left = (int(v) for v in rng.integers(0, 80 - side + 1, 2))
        with Image.open(path) as image:
            image.crop((left, top, left + side, top + side)).save(path)
    return pngs


def timed_check(root: Path) -> tuple[float, float]:
    """(wall s, peak RSS MiB) of `raycv data check` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "raycv", "data", "check", str(root),
         "--set", "data.modalities=[metadata, thermal_map, depth_map]",
         "--set", "data.missing_images=mask"],
        check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def decode_timings(pngs: list[Path]) -> tuple[float, float, float]:
    """Seconds over the same files, each read from disk: (bare PIL, raycv's decoding to
    the scalar map, raycv's decoding plus the checks and the resize to 64 px). Two rounds,
    the second reported: the files are then in the page cache for all three."""
    viridis = colormap.decoder("viridis")
    readers = {
        m: ModalityReader(m, dict.fromkeys(MODALITIES, "viridis"), 0.05, 64) for m in MODALITIES
    }
    for _ in range(2):
        started = time.perf_counter()
        for path in pngs:
            with Image.open(path) as image:
                np.asarray(image)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        for path in pngs:
            viridis.decode(images.decode(path.read_bytes(), str(path)).array)
        decoded = time.perf_counter() - started
        started = time.perf_counter()
        for path in pngs:
            readers[_modality(path)].read(images.decode(path.read_bytes(), str(path)))
        loaded = time.perf_counter() - started
    return bare, decoded, loaded


def _modality(path: Path) -> str:
    return next(part for part in path.parts if part in MODALITIES)


def default_run(root: Path, data: Path, executor: str) -> dict:
    raw = yaml.safe_load((ROOT / "experiments/two_stage_fusion.yaml").read_text())
    raw["name"] = f"export-{executor}"
    raw["data"] = {
        "path": str(data),
        "modalities": ["metadata", *MODALITIES],
        "missing_images": "mask",
        "image_size": 64,
    }
    # the design's 70/30, the image share split between the two modalities
    raw["fusion"] = {
        **raw.get("fusion", {}),
        "weights": {"metadata": 0.7, **dict.fromkeys(MODALITIES, 0.15)},
    }
    config = root / f"{executor}.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = root / f"run-{executor}"
    return measure(
        f"export_{executor}", [str(config), "--output", str(out), "--executor", executor]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=268)
    parser.add_argument("--images-per-visit", type=int, default=5)
    parser.add_argument("--skip-runs", action="store_true", help="data check and decoding only")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="raycv-export-bench-") as tmp:
        root = Path(tmp)
        data = root / "export"
        started = time.perf_counter()
        pngs = write_export(data, args.patients, args.images_per_visit)
        visits = sum(1 for _ in open(data / "metadata.csv")) - 1
        print(f"cohort: {visits} visits, {len(pngs)} PNGs of 55..80 px "
              f"(written in {time.perf_counter() - started:.0f} s)")  # fmt: skip
        wall, peak = timed_check(data)
        print(f"data check: {wall:.1f} s, peak RSS {peak:.0f} MiB")
        bare, decoded, loaded = decode_timings(pngs)
        n = len(pngs)
        print(f"us/file: bare PIL {bare / n * 1e6:.0f}, raycv decode {decoded / n * 1e6:.0f} "
              f"({decoded / bare:.2f}x; goal: within 1.5x), decode + checks + resize "
              f"{loaded / n * 1e6:.0f} ({loaded / bare:.2f}x)")  # fmt: skip
        if not args.skip_runs:
            rows = [default_run(root, data, executor) for executor in ("sequential", "ray")]
            print(f"Ray / sequential: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
