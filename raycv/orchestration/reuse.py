"""Reuse of phases across Tune trials: which phases a search leaves unchanged, and their keys.

Pretraining and stage 1 do not depend on stage 2's settings, so a search over stage 2
computes them once per fold and every trial loads them. A phase is reused only when no
searched key is among what it depends on; its cache key hashes exactly those settings,
the dataset fingerprint, the fold assignment and the raycv version, so a second search
on the same data and settings finds the same files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

import raycv
from raycv import config as config_mod
from raycv.config import Config
from raycv.models import weights as weights_mod
from raycv.phases import FOREST, PRETRAIN, STAGE1, pretrain_file

# What each reusable phase depends on (dotted prefixes of config keys), in the order the
# phases run. Threads change float rounding, so the fold's CPU count is part of every key.
PHASE_DEPENDS = {
    FOREST: ("data", "cv", "metadata", "resources.per_fold.cpu"),
    PRETRAIN: (
        "data",
        "cv",
        "image",
        "pretrain",
        "early_stopping",
        "metrics",
        "resources.per_fold",
        "resources.bf16",
    ),
    STAGE1: (
        "data",
        "cv",
        "metadata",
        "image",
        "pretrain",
        "stage1",
        "fusion",
        "early_stopping",
        "metrics",
        "resources.per_fold",
        "resources.bf16",
    ),
}


# Keys under a phase's prefixes that its files do not depend on: which other branches a run
# has changes neither its forest nor any one modality's pretraining (a file per modality),
# so the combinations of an ablation (keyed by its whole cohort's fingerprint) share them.
INDEPENDENT = {FOREST: ("data.modalities",), PRETRAIN: ("data.modalities",)}


def _under(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def reusable_phases(searched_keys, enabled: bool = True) -> list[str]:
    """Phases no searched key can change (none when reuse is switched off)."""
    if not enabled:
        return []
    return [
        phase
        for phase, deps in PHASE_DEPENDS.items()
        if not any(_under(k, deps) for k in searched_keys)
    ]


def phase_key(phase: str, config: Config, fingerprint: str, fold_of: np.ndarray) -> str:
    flat = config_mod.flatten(config.to_dict())
    settings = {
        k: v
        for k, v in sorted(flat.items())
        if _under(k, PHASE_DEPENDS[phase]) and not _under(k, INDEPENDENT.get(phase, ()))
    }
    blob = json.dumps(
        {
            "phase": phase,
            "settings": settings,
            "data": fingerprint,
            # a weights file overwritten in place is other weights under the same name
            "weights": weights_mod.digests(config) if phase != FOREST else {},
            "folds": np.asarray(fold_of).tolist(),
            "raycv": raycv.__version__,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def phase_files(phase: str, file_stems: list[str], cache: Path, key: str, unit: str) -> dict:
    """{file stem: path} of one phase's cached files for one (repeat, fold) unit."""
    folder = cache / f"{phase}-{key}" / unit
    return {stem: folder / f"{stem}.pt" for stem in file_stems}


def stems(phase: str, image_modalities: list[str]) -> list[str]:
    """The PhaseStore files a phase writes (pretraining writes one per image modality)."""
    if phase == PRETRAIN:
        return [pretrain_file(m) for m in image_modalities]
    return [phase]


def cache_dir(config: Config, folder: Path) -> Path:
    """Where shared phases live: tune.cache_dir, else .raycv-cache beside the folder (so
    searches and ablations of the same data and settings side by side find each other's)."""
    return Path(config.tune.cache_dir or folder.resolve().parent / ".raycv-cache")
