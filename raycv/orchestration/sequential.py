"""The reference executor: every fold in this process, one after another."""

from __future__ import annotations

import torch

from raycv.checkpoints import PhaseStore
from raycv.experiment import Prepared, reuse_finished_folds
from raycv.fold import run_fold
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder


def fold_threads(config) -> int:
    """A fold's torch threads = its CPUs, in every executor, so they compute the same numbers."""
    return max(1, round(config.resources.per_fold.cpu))


def run_sequential(prepared: Prepared, folder: RunFolder, board: ProgressBoard) -> list[FoldResult]:
    config = prepared.config
    threads_before = torch.get_num_threads()
    torch.set_num_threads(fold_threads(config))
    device = "cuda" if config.resources.per_fold.gpu > 0 and torch.cuda.is_available() else "cpu"
    try:
        done, pending = reuse_finished_folds(prepared, folder, board)
        results = list(done.values())
        for plan in pending:
            store = PhaseStore(folder.fold_dir(plan.fold))
            result = run_fold(
                prepared.dataset, plan, config, store=store, progress=board.update, device=device
            )
            board.fold_done(plan.fold, f"done in {result.seconds:.0f}s")
            folder.sync()
            results.append(result)
        return results
    finally:
        torch.set_num_threads(threads_before)
