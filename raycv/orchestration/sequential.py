"""The reference executor: every fold in this process, one after another.

Also the lane a Tune trial runs in its own process when its share of the cluster is one
lane (tune.py): the same folds in the same order, without a trainer to start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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


def run_sequential(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    shared: dict[int, dict[str, Path]] | None = None,
    on_result: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Run every unfinished fold here, in fold order; returns every fold's result.

    shared: per fold, phase files to load instead of computing them (Tune's reuse).
    on_result: called with each fold's result, finished earlier or now, in fold order.
    """
    config = prepared.config
    threads_before = torch.get_num_threads()
    torch.set_num_threads(fold_threads(config))
    device = "cuda" if config.resources.per_fold.gpu > 0 and torch.cuda.is_available() else "cpu"
    try:
        done, _ = reuse_finished_folds(prepared, folder, board)
        results = []
        for plan in prepared.plans:
            if plan.fold not in done:
                store = PhaseStore(folder.fold_dir(plan.fold), shared=(shared or {}).get(plan.fold))
                result = run_fold(
                    prepared.dataset,
                    plan,
                    config,
                    store=store,
                    progress=board.update,
                    device=device,
                )
                board.fold_done(plan.fold, f"done in {result.seconds:.0f}s")
                folder.sync()
            else:
                result = done[plan.fold]
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
    finally:
        torch.set_num_threads(threads_before)
