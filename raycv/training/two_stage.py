"""Two-stage fusion training: stage 1 with image branches frozen, stage 2 fine-tuning them.

Stage 2 keeps its weights only if its best inner-validation score beats stage 1's by
`stage2.min_delta`; otherwise the fusion falls back to stage 1 (`stage2_kept` False).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from raycv.config import Config
from raycv.models.cnn import freeze, unfreeze_trailing
from raycv.models.fusion import LateFusion
from raycv.training.loop import PhaseOutcome, PhaseSettings, Report, Split, train_phase

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
    outcome = train_phase(fusion, train, val, settings, report)
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
    outcome = train_phase(fusion, train, val, settings, report)
    return _stage_result(outcome, fusion)


def _stage_result(outcome: PhaseOutcome, fusion: LateFusion) -> StageResult:
    state = {n: t.detach().cpu().clone() for n, t in fusion.state_dict().items()}
    return StageResult(outcome.best_score, outcome.top_score, state, outcome.history)


def stage2_beats_stage1(stage2: StageResult) -> bool:
    """Stage 2 ran with stage 1's score as its early-stopping baseline, so any best score it
    recorded already beats stage 1 by min_delta."""
    return stage2.score is not None
