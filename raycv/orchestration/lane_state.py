"""A lane's Ray Train state from an earlier driver, checked before the lane runs again.

A lane keeps its checkpoints, and Ray Train's snapshot of them
(`checkpoint_manager_snapshot.json`), in `<run folder>/ray/<lane>`. `--resume` runs a lane
again under the same name, so Ray Train loads that snapshot and hands the lane its latest
checkpoint (the phases of the fold it was training). Ray Train rewrites the snapshot in
place after every phase: a driver killed during that write leaves it cut off, and a Ray
upgrade between the runs makes Ray refuse it. Either way the lane's controller dies in its
constructor on every attempt, and the run could never be resumed.

So Ray Train's own loader judges the state first, in the driver. State it refuses is
removed: the lane's unfinished folds start over, and its finished ones are already in the
run folder. Starting over loses only time; the seeds make the fold's numbers the same.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from ray.train import CheckpointConfig
from ray.train.v2._internal.exceptions import CheckpointManagerInitializationError
from ray.train.v2._internal.execution.checkpoint import checkpoint_manager
from ray.train.v2._internal.execution.storage import StorageContext

from raycv.orchestration.lane_wave import first_line


@contextmanager
def _quiet(logger: logging.Logger):
    """Hide the loader's INFO note that it found a snapshot: finding one is the point."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def discard_unloadable_state(storage: str, lane: str) -> str | None:
    """Remove `lane`'s Ray Train state under `storage` (a path or URI) if Ray Train would
    refuse to load it, and say why; None if there is none or it loads."""
    context = StorageContext(storage, lane, read_only=True)
    try:
        with _quiet(checkpoint_manager.logger):
            # what the lane's controller does first, with the lanes' CheckpointConfig
            checkpoint_manager.CheckpointManager(
                checkpoint_config=CheckpointConfig(), storage_context=context
            )
    except CheckpointManagerInitializationError as exc:
        context.storage_filesystem.delete_dir(context.experiment_fs_path)
        return f"{context.checkpoint_manager_snapshot_path}: {first_line(exc)}"
    return None
