"""A run whose folds an executor trains, as the executors take it: one for `raycv run`,
one per trial, one per combination of an ablation (which the Ray executor trains in a
single wave of lanes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder


@dataclass
class RunToTrain:
    """One run whose folds a wave of lanes trains."""

    prepared: Prepared
    folder: RunFolder  # its folds' checkpoints and results land in folder.fold_dir(unit)
    board: ProgressBoard
    shared: dict[str, dict[str, Path]] = field(default_factory=dict)  # unit -> files to load
    on_result: Callable[[FoldResult], None] | None = None  # each result as it finishes
    tag: str = ""  # keys its units in a wave of several runs (an ablation's combinations)
