"""Seeds derived from (run seed, repeat, fold, phase), so a phase can be rerun alone and agree."""

from __future__ import annotations

import numpy as np

from raycv.phases import FOREST, PRETRAIN, STAGE1, STAGE2

# Stable ids: adding a phase must not change the seeds of the others. outer and inner
# seed the splits, the others their phase.
PHASES = {
    "outer": 0,
    "inner": 1,
    FOREST: 2,
    PRETRAIN: 3,
    STAGE1: 4,
    STAGE2: 5,
}


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed repeat `repeat` of a repeated CV uses in place of cv.seed. Repeat 0 is
    cv.seed itself, so an unrepeated run keeps its folds and every phase's seed."""
    if repeat == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(repeat), 0x5EED]).generate_state(1)[0] >> 1)


def phase_seed(seed: int, fold: int, phase: str, salt: str = "") -> int:
    """A 31-bit seed for one phase of one fold (`salt` separates e.g. image modalities)."""
    words = [int(seed), int(fold) + 1, PHASES[phase]] + [ord(c) for c in salt]
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)
