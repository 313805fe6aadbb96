"""The Ray executor: one single-worker Ray Train trainer per fold, all launched together.

Why one trainer per fold (see ../shared/RAY_NOTES.md and the README's design section):
folds queue on their own when there are more folds than CPUs or GPUs, a dead worker
restarts only its own fold (from that fold's latest phase checkpoint), and a rerun with
the same deterministic run names resumes each fold where it stopped.

The dataset is put in the object store once; each worker reads it zero-copy. Progress
flows from workers to the driver through a tiny actor the driver polls.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from raycv.checkpoints import PhaseStore
from raycv.errors import RaycvError
from raycv.experiment import Prepared
from raycv.orchestration.fold_worker import train_fold
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder

log = logging.getLogger(__name__)


class FoldFailedError(RaycvError):
    """A fold kept failing after its retries; finished folds are kept for --resume."""


@ray.remote(num_cpus=0)
class ProgressRelay:
    """Collects progress events from fold workers until the driver drains them."""

    def __init__(self):
        self.events: list[tuple] = []

    def push(self, event: tuple) -> None:
        self.events.append(event)

    def drain(self) -> list[tuple]:
        out, self.events = self.events, []
        return out


def start_ray(address: str | None, verbose: bool) -> bool:
    """Connect to Ray; returns True if this call started it (and so should stop it).

    Without --address (or RAY_ADDRESS) raycv starts a private local Ray sized to this
    machine, even when another Ray runs here: joining someone else's cluster by accident
    would share, or be starved of, its resources.
    """
    if ray.is_initialized():
        return False
    quiet = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **quiet)
        return True
    # The train controllers poll their worker every 2 s by default: each finished fold
    # then idles up to 2 s before the next queued fold can take its place.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        **quiet,
    )
    return True


def fold_trainer(
    prepared: Prepared, plan, folder: RunFolder, dataset_ref, relay, run_prefix: str
) -> DataParallelTrainer:
    """A one-worker Ray Train trainer for one fold.

    DataParallelTrainer rather than TorchTrainer: a fold is one process, so it needs no
    torch.distributed process group, whose set-up cost ~7 s per fold on 2 cores here.
    Ray Train still gives each fold its resources, retries, checkpoints and resume.
    """
    config = prepared.config
    res = config.resources.per_fold
    return DataParallelTrainer(
        train_fold,
        train_loop_config={
            "config": config.to_dict(),
            "plan": dataclasses.asdict(plan),  # plain arrays: the controller need not import raycv
            "dataset": dataset_ref,
            "relay": relay,
        },
        scaling_config=ScalingConfig(
            num_workers=1,
            use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})},
        ),
        run_config=RunConfig(
            name=f"{run_prefix}fold{plan.fold}",
            storage_path=str(folder.ray_storage),
            failure_config=FailureConfig(max_failures=config.resources.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )


def run_folds_on_ray(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    run_prefix: str = "",
    dataset_ref=None,
) -> list[FoldResult]:
    """Run every unfinished fold as its own TorchTrainer, concurrently; Ray queues them."""
    results: dict[int, FoldResult] = {}
    pending = []
    for plan in prepared.plans:
        done = PhaseStore(folder.fold_dir(plan.fold)).load("result")
        if done is not None:  # finished in an earlier, interrupted run: never retrained
            results[plan.fold] = FoldResult.from_dict(done)
            board.fold_done(plan.fold, "done earlier (reused)")
        else:
            pending.append(plan)
    if not pending:
        return [results[k] for k in sorted(results)]

    board.event(f"ray: {ray.cluster_resources()}")
    relay = ProgressRelay.remote()
    dataset_ref = dataset_ref if dataset_ref is not None else ray.put(prepared.dataset)
    board.event("ray: dataset in the object store")
    trainers = {
        p.fold: fold_trainer(prepared, p, folder, dataset_ref, relay, run_prefix) for p in pending
    }
    failures: dict[int, BaseException] = {}
    with ThreadPoolExecutor(max_workers=len(trainers), thread_name_prefix="raycv-fold") as pool:
        futures = {pool.submit(t.fit): k for k, t in trainers.items()}
        board.event(f"ray: launched trainers of folds {sorted(trainers)}")
        while futures:
            for event in ray.get(relay.drain.remote()):
                board.update(*event)
            for future in [f for f in futures if f.done()]:
                k = futures.pop(future)
                try:
                    result = future.result()
                    if result.error is not None:
                        raise result.error
                    fold_result = FoldResult.from_dict(result.return_value)
                    result.checkpoint.to_directory(str(folder.fold_dir(k)))
                    results[k] = fold_result
                    board.fold_done(k, f"done in {fold_result.seconds:.0f}s")
                except Exception as exc:  # noqa: BLE001 - reported below, other folds go on
                    failures[k] = exc
                    board.fold_done(k, f"FAILED: {type(exc).__name__}: {exc}")
            time.sleep(0.5)
        for event in ray.get(relay.drain.remote()):
            board.update(*event)
    ray.kill(relay)
    if failures:
        k, exc = next(iter(sorted(failures.items())))
        raise FoldFailedError(
            f"fold {k} failed after {prepared.config.resources.max_failures} retries "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"finished folds are kept: fix the cause and rerun with --resume"
        ) from exc
    return [results[k] for k in sorted(results)]


def ray_executor(address: str | None = None, verbose: bool = False):
    """An Executor for run_cv that starts (or joins) Ray, runs the folds, and cleans up."""

    def execute(prepared: Prepared, folder: RunFolder, board: ProgressBoard):
        started_here = start_ray(address, verbose)
        try:
            return run_folds_on_ray(prepared, folder, board)
        except KeyboardInterrupt:
            board.say("raycv: interrupted: cancelling running folds")
            raise
        finally:
            if started_here:
                ray.shutdown()  # also ends the fold trainers still running

    return execute
