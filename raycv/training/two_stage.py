"""Two-stage fusion training: stage 1 with image branches frozen, stage 2 fine-tuning them.

Stage 2 keeps its weights only if its best inner-validation score beats stage 1's by
`stage2.min_delta`; otherwise the fusion falls back to stage 1 (`stage2_kept` False).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from raycv.config import Config
from raycv.models.backbone import BackboneBranch
from raycv.models.cnn import freeze, unfreeze_trailing
from raycv.models.fusion import LateFusion, PrecomputedPrefix
from raycv.training.loop import (
    PhaseOutcome,
    PhaseSettings,
    Report,
    Split,
    autocast,
    train_phase,
)

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    score: float | None  # best inner-validation score that beat the baseline (None: none did)
    top_score: float | None  # best inner-validation score seen in the stage
    state: dict  # the fusion's weights at `score`
    history: list[dict] = field(default_factory=list)


def phase_settings(config: Config, phase: str, seed: int, monitor: str, **extra) -> PhaseSettings:
    section = getattr(config, phase)
    return PhaseSettings(
        phase=phase,
        epochs=section.epochs,
        lr=section.lr,
        patience=section.patience,
        min_delta=section.min_delta,
        monitor=monitor,
        seed=seed,
        batch_size=config.image.batch_size,
        n_classes=len(config.classes),
        kappa_weights=config.metrics.kappa_weights,
        bf16=config.resources.bf16,
        **extra,
    )


def run_stage1(
    fusion: LateFusion, train: Split, val: Split, settings: PhaseSettings, report: Report | None
) -> StageResult:
    for name, branch in fusion.branches.items():
        freeze(branch)
        log.debug("stage1: froze every layer of the %s branch (BatchNorm included)", name)
    # a frozen pretrained backbone's features are already computed (frozen_features.py)
    model = fusion
    if backbones := [n for n, b in fusion.branches.items() if isinstance(b, BackboneBranch)]:
        model, train, val = skip_frozen_prefixes(fusion, train, val, settings, backbones)
    outcome = train_phase(model, train, val, settings, report)
    return _stage_result(outcome, fusion)


def run_stage2(
    fusion: LateFusion,
    train: Split,
    val: Split,
    settings: PhaseSettings,
    unfreeze_depth,
    report: Report | None,
) -> StageResult:
    for name, branch in fusion.branches.items():
        freeze(branch)
        unfrozen = unfreeze_trailing(branch, unfreeze_depth)
        log.debug("stage2: unfroze %s of the %s branch (lr=%g)", unfrozen, name, settings.lr)
    model, train, val = skip_frozen_prefixes(fusion, train, val, settings)
    outcome = train_phase(model, train, val, settings, report)
    return _stage_result(outcome, fusion)


def skip_frozen_prefixes(
    fusion: LateFusion,
    train: Split,
    val: Split,
    settings: PhaseSettings,
    names: list[str] | None = None,
) -> tuple[torch.nn.Module, Split, Split]:
    """With only the last blocks unfrozen (stage2.unfreeze_depth < all), pass the maps
    through the frozen leading blocks once: the model to train and its splits (names:
    only these branches; None: every one).

    Most of a partially unfrozen epoch is spent there otherwise (depth 1, head only:
    ~0.5 s of its ~0.5 s per epoch on one CPU thread), for outputs that cannot change.
    A frozen pretrained backbone's outputs come from the split (frozen_features.py).
    """
    skip = {
        name: b.frozen_prefix_length()
        for name, b in fusion.branches.items()
        if names is None or name in names
    }
    skip = {name: n for name, n in skip.items() if n > 0}
    if not skip:
        return fusion, train, val

    def precompute(part: Split) -> Split:
        return part.with_images(
            {n: frozen_outputs(fusion.branches[n], part, n, k, settings) for n, k in skip.items()}
        )

    return PrecomputedPrefix(fusion, skip), precompute(train), precompute(val)


@torch.no_grad()
def frozen_outputs(branch, part: Split, name: str, n: int, settings: PhaseSettings) -> torch.Tensor:
    """Modality `name`'s images of `part` through the first n (frozen) blocks of its branch:
    the split's frozen backbone features where it has them, else computed here."""
    if name in part.frozen:
        return part.frozen[name]
    branch, x, size = branch.eval(), part.images[name], settings.batch_size
    # the same autocast as training, so the cached numbers are the ones it would use
    with autocast(x.device, settings.bf16):
        starts = range(0, len(x), size) if len(x) else [0]  # no image: (0, ...)
        chunks = [branch.features(x[i : i + size], n) for i in starts]
    return torch.cat(chunks)


def _stage_result(outcome: PhaseOutcome, fusion: LateFusion) -> StageResult:
    state = {n: t.detach().cpu().clone() for n, t in fusion.state_dict().items()}
    return StageResult(outcome.best_score, outcome.top_score, state, outcome.history)


def stage2_beats_stage1(stage2: StageResult) -> bool:
    """Stage 2 ran with stage 1's score as its early-stopping baseline, so any best score it
    recorded already beats stage 1 by min_delta."""
    return stage2.score is not None
