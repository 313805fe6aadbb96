"""The Ray executor: a run's unfinished folds in lanes (lanes.py), each a single-worker Ray
Train trainer, all launched in one wave (lane_wave.py) so that no fold waits for a new
trainer to start. Why lanes and not one trainer per fold (see the README's design
section): each trainer starts five fresh Python processes (controller, placement-group
cleaner, synchronization actor, dataset manager, worker), ~15 CPU-seconds on 2 cores,
paid again for every fold that had to queue.

A dead worker restarts only its own lane, from the latest phase of the fold it was
training; folds it had finished are not retrained, and other lanes go on. The dataset is
put in the object store once; each worker reads it zero-copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import ray
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from raycv.errors import RaycvError
from raycv.experiment import reuse_finished_folds
from raycv.orchestration.connect import check_ray_gpus, connect
from raycv.orchestration.fold_worker import LaneTask, train_lane
from raycv.orchestration.lane_wave import LaneWave, first_line, worker_cause
from raycv.orchestration.lanes import Lane, lane_count, plan_lanes
from raycv.orchestration.placement import cluster_address
from raycv.orchestration.storage_check import check_shared_storage
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder
from raycv.units import unit_label


class FoldFailedError(RaycvError):
    """A fold kept failing after its retries; finished folds are kept for --resume."""


def lane_trainer(
    prepared: Prepared,
    lane: Lane,
    folder: RunFolder,
    dataset_ref,
    relay,
    until: str | None = None,
    shared: dict[int, dict[str, Path]] | None = None,
) -> DataParallelTrainer:
    """A one-worker Ray Train trainer that runs one lane's folds.

    DataParallelTrainer rather than TorchTrainer: a fold is one process, so it needs no
    torch.distributed process group, whose set-up cost ~7 s per trainer on 2 cores here.
    Ray Train still gives the lane its resources, retries, checkpoints and resume.
    Every checkpoint is kept: the driver copies each finished fold's from storage.
    """
    config = prepared.config
    res = config.resources.per_fold
    task = LaneTask(
        config=config.to_dict(),
        lane=lane.name,
        # plain arrays: the controller need not import raycv's folds (and scikit-learn)
        plans=[dataclasses.asdict(plan) for plan in lane.plans],
        dataset=dataset_ref,
        relay=relay,
        shared={p.unit: (shared or {}).get(p.unit, {}) for p in lane.plans},
        # a lane checks it sees the run folder before it trains (nodes that joined
        # after the driver's check_shared_storage, e.g. autoscaled GPU nodes)
        run_folder=folder.uri or str(folder.path.resolve()),
        until=until,
    )
    return DataParallelTrainer(
        train_lane,
        train_loop_config={"task": task},
        scaling_config=ScalingConfig(
            num_workers=1,
            use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})},
        ),
        run_config=RunConfig(
            name=lane.name,
            storage_path=folder.ray_storage,
            failure_config=FailureConfig(max_failures=config.resources.max_failures),
        ),
    )


def run_folds_on_ray(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    run_prefix: str = "",
    dataset_ref=None,
    until: str | None = None,
    shared: dict[str, dict[str, Path]] | None = None,
    on_result: Callable[[FoldResult], None] | None = None,
    *,
    n_lanes: int,
) -> list[FoldResult]:
    """Run every unfinished fold in lanes, concurrently; returns every fold's result.

    until='stage1' runs the folds only up to stage 1 (their phase files land in
    folder.fold_dir(unit); no results). shared: per unit, phase files to load instead of
    computing them. on_result: called with each fold's result as it finishes.
    n_lanes: how many folds run at once (lane_count decides it).
    """
    results, pending = reuse_finished_folds(prepared, folder, board)
    if on_result is not None:
        for r in results.values():
            on_result(r)
    if not pending:
        return [results[p.unit] for p in prepared.plans if p.unit in results]

    if not folder.uri:  # exists before any fold looks for it (tune's shared/ may not)
        folder.path.mkdir(parents=True, exist_ok=True)
    board.event(f"ray: cluster resources {ray.cluster_resources()}")
    per = prepared.config.resources.per_fold
    wave = LaneWave(folder, board, until, results, {p.unit for p in pending}, on_result)
    wave.asks = {"CPU": per.cpu, "GPU": per.gpu}
    dataset_ref = dataset_ref if dataset_ref is not None else ray.put(prepared.dataset)
    try:
        lanes = plan_lanes(prepared.plans, pending, n_lanes, run_prefix)
        for lane in lanes:
            # one wave: every lane starts now, none waits for another
            wave.launch(
                lane, lane_trainer(prepared, lane, folder, dataset_ref, wave.relay, until, shared)
            )
        board.say(
            f"raycv: launched {len(lanes)} lane(s) of {per.cpu:g} CPU"
            + (f", {per.gpu:g} GPU" if per.gpu > 0 else "")
            + " each; a lane's first fold starts once its worker process is up"
        )
        failures = wave.wait()
    finally:
        ray.kill(wave.relay)
    if failures:
        k, exc = next((p.unit, failures[p.unit]) for p in prepared.plans if p.unit in failures)
        exc = worker_cause(exc)
        raise FoldFailedError(
            f"{unit_label(k)} failed after {prepared.config.resources.max_failures} retries "
            f"({type(exc).__name__}: {first_line(exc)}); finished folds are kept: fix the "
            f"cause and rerun with --resume (log: {folder.log_path})"
        ) from exc
    return [results[p.unit] for p in prepared.plans if p.unit in results]


@contextmanager
def ray_session(prepared: Prepared, folder: RunFolder, board: ProgressBoard, address, verbose):
    """Start (or join) Ray, check what must hold before any fold trains, put the dataset
    once; yields a function that runs a prepared run's folds in lanes
    (prepared, folder, board, until, shared) -> results. Every run that shares the
    session (an ablation's combinations) uses the same Ray and the same dataset."""
    started_here = connect(address, verbose, board)
    try:
        joined = cluster_address(address) is not None
        if not joined:
            check_ray_gpus(prepared.config)
        check_shared_storage(str(folder))  # before any fold trains; trivial on one node
        n_lanes = lane_count(prepared.config, len(prepared.plans), joined=joined)
        # the whole cohort: a run that uses fewer modalities reads only its own
        dataset_ref = ray.put(prepared.dataset)

        def run(run_prepared, run_folder, run_board, until=None, shared=None):
            return run_folds_on_ray(
                run_prepared,
                run_folder,
                run_board,
                dataset_ref=dataset_ref,
                until=until,
                shared=shared,
                n_lanes=n_lanes,
            )

        yield run
    except KeyboardInterrupt:
        board.say("raycv: interrupted: cancelling running folds")
        raise
    finally:
        if started_here:
            ray.shutdown()  # also ends the fold trainers still running


def ray_executor(address: str | None = None, verbose: bool = False):
    """An Executor for run_cv that starts (or joins) Ray, runs the folds, and cleans up."""

    def execute(prepared: Prepared, folder: RunFolder, board: ProgressBoard):
        with ray_session(prepared, folder, board, address, verbose) as run:
            return run(prepared, folder, board)

    return execute


def ray_runner(address: str | None = None, verbose: bool = False):
    """An ablation's runner (ablate.OpenRunner): one Ray session for every combination."""

    def open_runner(prepared: Prepared, folder: RunFolder, board: ProgressBoard):
        return ray_session(prepared, folder, board, address, verbose)

    return open_runner
