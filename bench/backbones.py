"""Frozen backbone features computed once: what they save, and what they cost.

The default experiment (experiments/two_stage_fusion.yaml: the built-in cohort, 3 folds)
with `image.backbone: resnet18` from a weights file (random weights, saved here: no model
hub is needed), frozen throughout (`pretrain.unfreeze_depth: 0`, `stage2.unfreeze_depth:
1`), run sequentially in this process, three ways:

- cached: as raycv runs it, the frozen features computed once on the driver (cold cache);
- warm: the same run again, its features found in the cache (no forward pass at all);
- recomputed: every epoch passes the images through the frozen backbone again, as a
  model without the cache trains (the bench patches raycv's two places that use the
  features to hand the images over instead).

Figures: the cached run against its floor, one forward pass per image (a bare timm
forward of the same tensors, timed here) plus everything else the run does (the warm
run); and raycv's forward pass (frozen_features.compute: normalisation, batches) against
the bare one. Goals: both within 1.2x.

    python bench/backbones.py [--patients N] [--epochs E]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=268)
    ap.add_argument("--epochs", type=int, default=30, help="pretrain and stage 2 epochs")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--forward-only", action="store_true", help="only the forward passes")
    args = ap.parse_args()

    import timm

    from raycv import config as config_mod
    from raycv import frozen_features
    from raycv.experiment import prepare, run_cv
    from raycv.orchestration.sequential import run_sequential

    work = Path(tempfile.mkdtemp(prefix="raycv-bench-backbones-"))
    weights = work / f"{args.backbone}.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model(args.backbone, pretrained=False).state_dict(), weights)
    overrides = [
        ("data.synthetic.patients", args.patients),
        ("image.backbone", args.backbone),
        ("image.weights", str(weights)),
        ("pretrain.unfreeze_depth", 0),
        ("pretrain.epochs", args.epochs),
        ("stage2.unfreeze_depth", 1),
        ("stage2.epochs", args.epochs),
    ]
    config = config_mod.load(ROOT / "experiments/two_stage_fusion.yaml", overrides)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), timm {timm.__version__}; load "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )

    def run(name: str) -> float:
        t0 = time.time()
        prepared = prepare(config, work / name)
        run_cv(
            prepared, run_sequential, "sequential", output=work / name, stream=open(os.devnull, "w")
        )
        return time.time() - t0

    if not args.forward_only:
        cached = run("cached")
        warm = run("warm")  # the cache beside the run folders now holds the features

    # the forward pass alone: raycv's over the cohort's images (as frozen_features.compute
    # runs it: batches out of the store, its normalisation, the backbone) and a bare timm
    # forward of the same normalised tensors; each warmed up, then timed twice alternately
    from raycv.models.branches import build_branch

    prepared = prepare(config, work / "probe")
    images = prepared.dataset.images["thermal_map"]
    t0 = time.time()
    frozen_features.compute(prepared.config, "thermal_map", images)
    whole = time.time() - t0  # with building the model and reading the weights file
    branch = build_branch(prepared.config, "thermal_map", initial=True).eval()
    bare_model = timm.create_model(args.backbone, pretrained=False, num_classes=0).eval()
    batches = [np.arange(s, min(s + 64, len(images))) for s in range(0, len(images), 64)]
    with torch.no_grad():
        inputs = [branch.normalise(torch.from_numpy(images.batch(rows))) for rows in batches]

        def ours_once() -> float:
            t0 = time.time()
            for rows in batches:
                branch.features(torch.from_numpy(images.batch(rows)))
            return time.time() - t0

        def bare_once() -> float:
            t0 = time.time()
            for x in inputs:
                bare_model(x)
            return time.time() - t0

        ours_once(), bare_once()  # warm-up: first-touch allocations
        timed = [(ours_once(), bare_once()) for _ in range(2)]
    ours, bare = min(o for o, _ in timed), min(b for _, b in timed)
    print(f"images: {len(images)} of {images.size}x{images.size} ({args.backbone})")
    print(
        f"forward pass: raycv {ours:.2f} s, bare timm {bare:.2f} s = {ours / bare:.2f}x "
        f"(frozen_features.compute with building the model and reading the file: {whole:.1f} s)"
    )
    if args.forward_only:
        return
    floor = bare + warm
    print(f"run, features cached (cold): {cached:.1f} s")
    print(f"run, features in the cache (warm): {warm:.1f} s")
    print(f"floor (bare forward + warm run): {floor:.1f} s; cached run = {cached / floor:.2f}x")
    recomputed = run_recomputed(run, work)
    print(
        f"run, backbone recomputed every epoch: {recomputed:.1f} s = {recomputed / cached:.1f}x the cached run"
    )
    shutil.rmtree(work, ignore_errors=True)


def run_recomputed(run, work: Path) -> float:
    """A run whose frozen backbone sees every image again in every epoch: the cohort's
    features are withheld, and the two places that would compute them once per fold
    hand the images over to the full branch instead."""
    from raycv import fold, frozen_features
    from raycv.models.backbone import BackboneBranch
    from raycv.training import two_stage

    def images_instead(branch, part, name, n, settings):
        return part.images[name]

    def full_forward(self, x, skip=0):
        return self.head(self.features(x) if x.ndim == 4 else x)

    saved = (fold.frozen_outputs, two_stage.frozen_outputs, BackboneBranch.forward)
    saved_attach = frozen_features.attach
    fold.frozen_outputs = two_stage.frozen_outputs = images_instead
    BackboneBranch.forward = full_forward
    frozen_features.attach = lambda *a, **k: None
    try:
        return run("recomputed")
    finally:
        fold.frozen_outputs, two_stage.frozen_outputs, BackboneBranch.forward = saved
        frozen_features.attach = saved_attach


if __name__ == "__main__":
    main()
