"""Early stopping kept out of the loop: feed it one score per epoch, ask whether to stop."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    """Stops after `patience` epochs without an improvement larger than `min_delta`.

    mode 'max' for kappa, 'min' for loss. A NaN score is never an improvement.
    `baseline`, when given, is the score to beat from the start (stage 2 must beat
    stage 1 by min_delta before any of its epochs counts as an improvement).
    """

    mode: str = "max"
    patience: int = 10
    min_delta: float = 0.0
    baseline: float | None = None
    best: float | None = None
    best_epoch: int = -1
    wait: int = 0
    stopped: bool = False

    def __post_init__(self):
        assert self.mode in ("max", "min"), self.mode

    def is_improvement(self, score: float, reference: float | None) -> bool:
        if score is None or math.isnan(score):
            return False
        if reference is None:
            return True
        if self.mode == "max":
            return score > reference + self.min_delta
        return score < reference - self.min_delta

    def update(self, score: float, epoch: int) -> bool:
        """Record one epoch's score; True if it is the new best (restore its weights)."""
        reference = self.best if self.best is not None else self.baseline
        if self.is_improvement(score, reference):
            self.best, self.best_epoch, self.wait = score, epoch, 0
            return True
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped = True
        return False
