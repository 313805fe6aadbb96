"""The reference executor: every fold in this process, one after another.

Also what runs one fold in a Ray task of a search (fold_tasks.py): the same fold, with
the same seeds, threads and resume from its saved phases.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from raycv.checkpoints import PhaseStore
from raycv.experiment import reuse_finished_folds
from raycv.fold import run_fold
from raycv.orchestration.placement import check_gpu_request, fold_device, fold_threads
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder


def run_sequential(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    shared: dict[str, dict[str, Path]] | None = None,
    on_result: Callable[[FoldResult], None] | None = None,
    until: str | None = None,
) -> list[FoldResult]:
    """Run every unfinished fold here, in fold order; returns every fold's result.

    shared: per unit, phase files to load instead of computing them (shared phases).
    on_result: called with each fold's result, finished earlier or now, in fold order.
    until: a phase to stop each fold after (its files stay in folder.fold_dir(unit)), as
    the shared phases need; no results then.
    """
    config = prepared.config
    # this process is the machine the folds run on (also a search's fold task, which Ray gave
    # the fold's GPU share): a GPU asked for is here, or refused before any fold
    check_gpu_request(config, joined=False)
    device = fold_device(config)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(fold_threads(config))
    try:
        done, _ = reuse_finished_folds(prepared, folder, board)
        results = []
        for plan in prepared.plans:
            if plan.unit not in done:
                store = PhaseStore(folder.fold_dir(plan.unit), shared=(shared or {}).get(plan.unit))
                result = run_fold(
                    prepared.dataset,
                    plan,
                    config,
                    store=store,
                    progress=board.update,
                    device=device,
                    until=until,
                )
                if result is None:  # stopped after `until` on purpose
                    board.fold_done(plan.unit, f"done up to {until}")
                    continue
                board.fold_done(plan.unit, f"done in {result.seconds:.0f}s")
                folder.sync()
            else:
                result = done[plan.unit]
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
    finally:
        torch.set_num_threads(threads_before)
