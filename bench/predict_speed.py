"""Benchmark: `raycv predict` on 10,000 new visits against the floor of its work.

    python bench/predict_speed.py [--visits 10000] [--images-per-visit 1]

1. A 3-fold run of the default model (experiments/two_stage_fusion.yaml's CNN and
   forest; few epochs, the numbers do not matter here) on a small cohort written to disk.
2. A synthetic cohort of about --visits new visits written to disk.
3. `raycv.predict(run, data)` end to end (reading the folder, checks, models, ensemble),
   and, on the same loaded tensors, the two parts of its compute: the ensemble
   (ensemble.fold_probabilities) against a bare forward pass of the K folds' image
   branches (torch.no_grad, same batches). Goal: the ensemble within 2x of that floor.

The floor is K forward passes; the ensemble also runs a fold's retrained stage 2 branch
where the fold kept stage 2, the K forests, and the fusion mixtures. Compare ratios
measured in the same run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raycv import config as config_mod  # noqa: E402
from raycv.cli import main  # noqa: E402
from raycv.data import load_dataset, write_dataset  # noqa: E402
from raycv.ensemble import fold_probabilities, load_fold_models  # noqa: E402
from raycv.prediction import predict, run_config  # noqa: E402


def train_run(root: Path, images_per_visit: int) -> Path:
    data = root / "train-data"
    write_dataset(data, 140, 0, 64, images_per_visit=images_per_visit)
    raw = yaml.safe_load((ROOT / "experiments/two_stage_fusion.yaml").read_text())
    raw.update(
        name="predict-bench",
        data={"path": str(data), "image_size": 64},
        pretrain={"epochs": 3, "patience": 3},
        stage1={"epochs": 1},
        stage2={"epochs": 2, "patience": 2, "lr": 1e-3},  # a high LR: some folds keep stage 2
    )
    raw["metadata"] = {**raw.get("metadata", {}), "n_estimators": 500}
    config = root / "bench.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = root / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(config), "--output", str(out), "--executor", "sequential"]) == 0
    return out


def bare_forward(models, dataset, modalities, batch_size: int = 256) -> float:
    """Seconds of K image branches over every image, batch by batch, and nothing else."""
    started = time.perf_counter()
    with torch.no_grad():
        for m in modalities:
            pixels = dataset.images[m].pixels
            for start in range(0, len(pixels), batch_size):
                x = torch.from_numpy(pixels[start : start + batch_size][:, None].copy())
                for f in models:
                    f.pretrained[m](x).softmax(-1)
    return time.perf_counter() - started


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=10_000)
    parser.add_argument("--images-per-visit", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="raycv-predict-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        run = train_run(root, args.images_per_visit)
        print(f"training run: {time.perf_counter() - t0:.1f} s")
        new = root / "new-visits"
        patients = max(2, round(args.visits / 3.3))  # ~3.3 visits per patient
        write_dataset(new, patients, 1, 64, images_per_visit=args.images_per_visit)

        t0 = time.perf_counter()
        table = predict(run, new)
        end_to_end = time.perf_counter() - t0
        n = len(table)

        config = run_config(run)
        data_config = config_mod.from_dict(
            {**config.to_dict(), "data": {**config.to_dict()["data"], "path": str(new)}}
        )
        t0 = time.perf_counter()
        dataset = load_dataset(data_config)
        loading = time.perf_counter() - t0
        models = [load_fold_models(run, config, f"fold{k}") for k in range(config.cv.folds)]
        kept = sum(f.stage2_kept for f in models)
        t0 = time.perf_counter()
        fold_probabilities(models, dataset, config)
        ensemble = time.perf_counter() - t0
        floor = bare_forward(models, dataset, config.image_modalities)
        images = sum(len(dataset.images[m]) for m in config.image_modalities)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{n} visits, {images} images, {config.cv.folds} folds ({kept} kept stage 2)")
    print(
        f"predict end to end: {end_to_end:.2f} s = {n / end_to_end:.0f} visits/s "
        f"(of which reading the folder {loading:.2f} s)"
    )
    print(f"ensemble compute:   {ensemble:.2f} s = {n / ensemble:.0f} visits/s")
    print(f"bare K-fold forward: {floor:.2f} s = {n / floor:.0f} visits/s")
    print(f"ensemble / bare forward: {ensemble / floor:.2f}x (goal: within 2x)")


if __name__ == "__main__":
    main_bench()
