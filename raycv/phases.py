"""The phases of one outer fold, by name: the one spelling of each.

A fold runs its phases in this order; each finished one is a file of the fold's
PhaseStore (`<name>.pt`), seeds itself by its name (seeds.py), and the trained ones
name the rows of history.csv (its `phase` column). The names are plain strings, so the
files, history.csv and every log keep reading as they always have.
"""

from __future__ import annotations

FOREST = "forest"  # the metadata forest: out-of-fold probabilities and the fitted forest
PRETRAIN = "pretrain"  # each image branch alone, one file per image modality
STAGE1 = "stage1"  # the fusion, image branches frozen
STAGE2 = "stage2"  # the last blocks unfrozen; kept only if it beats stage 1
RESULT = "result"  # the fold's FoldResult: a fold with it is finished

TRAINED = (PRETRAIN, STAGE1, STAGE2)  # the phases that train epochs, in training order


def pretrain_file(modality: str) -> str:
    """The PhaseStore file of one image modality's pretraining."""
    return f"{PRETRAIN}_{modality}"
