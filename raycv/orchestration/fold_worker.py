"""The per-worker loop of one fold lane: the folds one Ray Train trainer runs in turn.

Kept import-light on purpose: Ray unpickles this function in the lane's train
controller too, and a controller that imported torch and scikit-learn would spend
seconds of a 2-core machine on imports it never uses. The heavy imports happen
inside the function, on the worker only.

Checkpoint layout. The worker keeps `<local>/<unit>/<phase>.pt` for the fold it is
training (unit: `fold<k>`, or `r<i>-fold<k>` in repeat i of a repeated CV), and reports
that folder to Ray Train after every phase as the checkpoint `<unit>-<phase>` (so
`<storage>/<lane run>/<unit>-<phase>/<unit>/...`, a path the driver can compute). Once a
fold is finished and the driver told, its files are dropped from the local folder and a
small marker `<unit>/done.json` stays: later reports stay the size of one fold, and a
restarted worker skips the folds its lane already finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DONE_MARKER = "done.json"


def checkpoint_name(unit: str, phase: str) -> str:
    """The Ray Train checkpoint directory of one unit's phase within its lane's run."""
    return f"{unit}-{phase}"


@dataclass
class LaneTask:
    """What one lane's worker is given (its trainer's train_loop_config["task"]).

    Plain values only, so that the lane's controller, which unpickles it too, imports
    nothing heavier than this module.
    """

    configs: list[dict]  # the wave's runs' Configs as dicts (Config.to_dict()), by run
    lane: str  # the lane's run name
    # the lane's folds in the order it runs them: {"key": unique in the wave, "run": index
    # into configs, "plan": FoldSplit fields, "shared": {stem: phase file to load}}
    jobs: list[dict]
    dataset: Any  # ObjectRef of the Dataset, put once by the driver
    relay: Any  # handle of the driver's ProgressRelay actor
    run_folder: str  # where the driver writes (a lane checks that it sees it)
    until: str | None = None  # a phase to stop each fold after (no result), or None


def train_lane(cfg: dict) -> None:
    """Run a lane's folds (cfg["task"], a LaneTask) one after another on one Ray Train
    worker. Knows nothing of Tune. Each finished fold is announced with
    relay.finished(lane, fold, checkpoint name) once its checkpoint is in storage; the
    driver copies it into the run folder.
    """
    import json
    import shutil
    import tempfile

    import ray
    import ray.train
    import torch

    from raycv.checkpoints import PhaseStore
    from raycv.config import from_dict
    from raycv.fold import run_fold
    from raycv.folds import FoldSplit
    from raycv.orchestration.placement import fold_threads
    from raycv.orchestration.storage_check import check_visible_here
    from raycv.phases import RESULT

    task: LaneTask = cfg["task"]
    check_visible_here(task.run_folder)  # a node that joined after the driver's check
    configs = [from_dict(c) for c in task.configs]
    config = configs[0]  # every run of a wave asks for the same resources per fold
    torch.set_num_threads(fold_threads(config))
    dataset = ray.get(task.dataset)  # zero-copy, read-only views of the driver's arrays
    relay, lane, until = task.relay, task.lane, task.until
    node = f"{ray.get_runtime_context().get_node_id()[:12]} ({ray.util.get_node_ip_address()})"
    # Ray sets CUDA_VISIBLE_DEVICES to the lane's GPU (or its share of one)
    device = ray.train.torch.get_device() if config.resources.per_fold.gpu > 0 else "cpu"

    local = Path(tempfile.mkdtemp(prefix="raycv-lane-"))
    restored = ray.train.get_checkpoint()
    if restored is not None:  # a retried worker, or a rerun of the lane after --resume
        restored.to_directory(str(local))

    def report(fold: str, phase: str) -> None:
        ray.train.report(
            {"fold": fold, "phase": phase},
            checkpoint=ray.train.Checkpoint.from_directory(str(local)),
            checkpoint_dir_name=checkpoint_name(fold, phase),
            delete_local_checkpoint_after_upload=False,
        )

    def progress(fold: str, phase: str, epoch: int, row: dict) -> None:
        relay.push.remote((fold, phase, epoch, row))

    try:
        for job in task.jobs:
            plan = FoldSplit(**job["plan"])
            k = job["key"]  # the unit, or with several runs in the wave <run tag>-<unit>
            fold_dir = local / k
            marker = fold_dir / DONE_MARKER
            if marker.exists():  # finished before this worker restarted
                done = json.loads(marker.read_text())["checkpoint"]
                ray.get(relay.finished.remote(lane, k, done))
                continue
            phases = sorted(p.stem for p in fold_dir.glob("*.pt"))
            note = f"on node {node}, {lane}"
            if phases:
                note += f"; resumed from its finished phases {', '.join(phases)}"
            relay.push.remote((k, "restart" if phases else "start", -1, {"note": note}))
            store = PhaseStore(
                fold_dir, on_save=lambda phase, k=k: report(k, phase), shared=job["shared"]
            )
            result = run_fold(
                dataset,
                plan,
                configs[job["run"]],
                store=store,
                progress=lambda unit, *event, k=k: progress(k, *event),
                device=device,
                until=until,
            )
            last = RESULT if result is not None else f"until-{until}"
            if result is None:  # stopped after `until` on purpose: hand over what it saved
                report(k, last)
            done = checkpoint_name(k, last)  # this checkpoint holds the whole finished fold
            # synchronous: the driver must hear of the fold before this worker may exit
            ray.get(relay.finished.remote(lane, k, done))
            shutil.rmtree(fold_dir)
            fold_dir.mkdir()
            marker.write_text(json.dumps({"checkpoint": done}))
    finally:
        shutil.rmtree(local, ignore_errors=True)
