"""What each phase of a fold saves in its PhaseStore, as records (the fold's own FoldResult,
its `result` file, is raycv.results').

A phase file holds a dict of tensors, arrays and plain values (checkpoints.py writes it
and reads it back with weights_only=True). Each record here is one phase's dict with its
keys named and typed: `to_dict` gives exactly the dict the file holds, key for key and
in that order, and `from_dict` reads one back, so run folders written before these
records load as they are.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Self

from raycv.checkpoints import CheckpointError

if TYPE_CHECKING:
    import numpy as np
    import torch


class PhaseState:
    """The dict a phase file holds <-> the record (each subclass is a dataclass)."""

    def to_dict(self) -> dict:
        # a field left at its None default is not written: files of phases that have no
        # such value keep the bytes they had before the field existed
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not (f.default is None and getattr(self, f.name) is None)
        }

    @classmethod
    def from_dict(cls, state: dict) -> Self:
        known = [f.name for f in fields(cls)]
        needed = {f.name for f in fields(cls) if f.default is MISSING}
        if set(state) - set(known) or needed - set(state):
            raise CheckpointError(
                f"a {cls.__name__} phase file holds {sorted(state)}, expected {known}: "
                "written by another raycv version; recompute the run with --overwrite"
            )
        return cls(**state)


@dataclass
class ForestState(PhaseState):
    oof: np.ndarray  # (n_train, C) out-of-fold probabilities of the training rows
    test: np.ndarray  # (n_test, C) the test rows', from the forest fit on the whole fold
    # skops bytes of that forest (what `raycv predict` applies); None: raycv before 0.2
    model: bytes | None = None


@dataclass
class PretrainState(PhaseState):
    """One image modality's branch, trained alone."""

    state: dict[str, torch.Tensor]  # the branch's state_dict, on the CPU
    history: list[dict]  # history.csv rows, one per epoch
    best_score: float  # early stopping's best inner-validation score
    val_probs: np.ndarray  # (n_inner_val, C); NaN rows: visits without the modality's image
    test_probs: np.ndarray  # (n_test, C)
    # pretrained backbones: whether the fine-tuning step beat the head alone (kept); None:
    # no such step (a branch trained from scratch, or pretrain.unfreeze_depth 0 or 1)
    finetuned: bool | None = None


@dataclass
class Stage1State(PhaseState):
    """The fusion trained with every image branch frozen."""

    state: dict[str, torch.Tensor]  # the fusion's state_dict
    score: float  # its inner-validation score: the bar stage 2 must clear
    history: list[dict]


@dataclass
class Stage2State(PhaseState):
    """The fusion with its last blocks unfrozen: the fold's final fusion."""

    state: dict[str, torch.Tensor]  # stage 2's weights if kept, else stage 1's
    score: float  # stage 2's best inner-validation score
    kept: bool  # whether stage 2 beat stage 1
    history: list[dict]
