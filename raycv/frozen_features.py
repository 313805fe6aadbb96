"""Frozen pretrained-backbone features: one forward pass per image, for the whole cohort.

While a pretrained backbone is frozen (pretraining's first step, stage 1, a stage 2 that
unfreezes the head alone) its output for an image depends on neither the fold, the trial
nor the combination: the weights' own normalisation, eval mode, no augmentation (none
passes through a frozen backbone). Science rule 6: they use no label and no statistic
of any fold; what is fitted on them (the heads, any fine-tuning) is fitted in the fold.

So they are computed once per (backbone, weights, images, image size), on the driver,
and kept content-keyed beside the phase cache (`<cache>/features/<key>.npy`, the cache
tune and ablate share): every fold, tune trial, ablation combination and later run on
the same images finds them there. Folds read them from the dataset record
(`Dataset.frozen`); a fold without them computes its own, with the same numbers.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from raycv.config import Config
from raycv.data.dataset import Dataset, ImageSet
from raycv.models import weights as weights_mod
from raycv.models.choice import in_channels, is_pretrained

BATCH = 64  # images per forward pass: memory, not the numbers, depends on it
# modality -> forward passes over its whole image set in this process (tests count them)
PASSES: Counter = Counter()


def attach(
    config: Config,
    dataset: Dataset,
    checked: dict[str, weights_mod.WeightsFile | None],
    cache: Path | None,
    say: Callable[[str], None] = lambda line: None,
) -> None:
    """Fill `dataset.frozen` for every modality whose branch is a pretrained backbone:
    from `cache` when it holds them, else computed and saved there (cache None: computed,
    not saved)."""
    for m, source in checked.items():
        if source is None or not is_pretrained(config, m):
            continue
        images = dataset.images[m]
        key = content_key(config, m, source, images)
        path = cache / "features" / f"{key}.npy" if cache is not None else None
        backbone = config.image.model_of(m)[0]
        if path is not None and path.is_file():
            dataset.frozen[m] = np.load(path, allow_pickle=False)
            say(f"frozen {backbone} features of {m}: {len(images)} images, from {path}")
            continue
        t0 = time.time()
        features = compute(config, m, images)
        if path is not None:
            _save(path, features)
        dataset.frozen[m] = features
        say(
            f"frozen {backbone} features of {m}: {len(images)} images in "
            f"{time.time() - t0:.1f} s (one forward pass each"
            + (f"; kept in {path})" if path else ")")
        )


def content_key(config: Config, m: str, source: weights_mod.WeightsFile, images: ImageSet) -> str:
    """Names the features by everything they depend on, and nothing else."""
    # here, not at the top: the driver imports this module and, without a pretrained
    # backbone, needs neither
    import timm
    import torch

    backbone = config.image.model_of(m)[0]
    h = hashlib.sha256()
    for part in (backbone, source.digest, in_channels(config, m), images.pixels.shape):
        h.update(f"{part}\x1f".encode())
    h.update(f"timm {timm.__version__} torch {torch.__version__}\x1f".encode())
    h.update(np.ascontiguousarray(images.pixels, dtype=np.float32).tobytes())
    return h.hexdigest()[:24]


def compute(config: Config, m: str, images: ImageSet) -> np.ndarray:
    """(M, D) float32: every image of `m` through its frozen pretrained backbone."""
    import torch

    from raycv.models.branches import build_branch

    PASSES[m] += 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    branch = build_branch(config, m, initial=True).to(device).eval()
    out = []
    for start in range(0, len(images), BATCH):
        rows = np.arange(start, min(start + BATCH, len(images)))
        x = torch.from_numpy(images.batch(rows)).to(device)
        with torch.no_grad():
            out.append(branch.features(x).float().cpu())
    if not out:
        return np.zeros((0, branch.backbone.num_features), dtype=np.float32)
    return torch.cat(out).numpy()


def _save(path: Path, features: np.ndarray) -> None:
    """Written whole or not at all: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, features, allow_pickle=False)
    os.replace(tmp, path)
