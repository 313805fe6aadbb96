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
import queue
import threading
import time
from collections.abc import Callable

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from raycv.errors import RaycvError
from raycv.experiment import Prepared, reuse_finished_folds
from raycv.orchestration.fold_worker import train_fold
from raycv.orchestration.storage_check import check_shared_storage
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder

log = logging.getLogger(__name__)

# Launch queued folds at the latest this long after the first wave, even if a first-wave
# fold has not reported yet (a slow node must not hold the others back).
QUEUE_AFTER_S = 60.0


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
    if not verbose:  # Tune and Train announce themselves at INFO; raycv reports progress
        for name in ("ray.tune", "ray.train", "ray.air"):
            logging.getLogger(name).setLevel(logging.WARNING)
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
    prepared: Prepared,
    plan,
    folder: RunFolder,
    dataset_ref,
    relay,
    run_prefix: str,
    until: str | None = None,
    shared: dict[str, str] | None = None,
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
            "until": until,
            "shared": shared or {},
            # a fold checks it sees the run folder before it trains (nodes that joined
            # after the driver's check_shared_storage, e.g. autoscaled GPU nodes)
            "run_folder": folder.uri or str(folder.path.resolve()),
        },
        scaling_config=ScalingConfig(
            num_workers=1,
            use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})},
        ),
        run_config=RunConfig(
            name=f"{run_prefix}fold{plan.fold}",
            storage_path=folder.ray_storage,
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
    until: str | None = None,
    shared: dict[int, dict[str, str]] | None = None,
    on_result: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Run every unfinished fold as its own trainer, concurrently; Ray queues them.

    until='stage1' runs the folds only up to stage 1 (their phase files land in
    folder.fold_dir(k); no results). shared: per fold, phase files to load instead of
    computing them. on_result: called with each fold's result as it finishes.
    """
    results, pending = reuse_finished_folds(prepared, folder, board)
    if on_result is not None:
        for r in results.values():
            on_result(r)
    if not pending:
        return [results[k] for k in sorted(results)]

    if not folder.uri:  # exists before any fold looks for it (tune's shared/ may not)
        folder.path.mkdir(parents=True, exist_ok=True)
    board.event(f"ray: cluster resources {ray.cluster_resources()}")
    relay = ProgressRelay.remote()
    dataset_ref = dataset_ref if dataset_ref is not None else ray.put(prepared.dataset)
    finished: queue.Queue = queue.Queue()

    def launch(plan) -> None:
        trainer = fold_trainer(
            prepared,
            plan,
            folder,
            dataset_ref,
            relay,
            run_prefix,
            until=until,
            shared=(shared or {}).get(plan.fold),
        )

        def fit() -> None:
            try:
                finished.put((plan.fold, trainer.fit()))
            except BaseException as exc:  # noqa: BLE001 - handed to the driver loop
                finished.put((plan.fold, exc))

        # daemon: Ctrl-C must not wait for trainers that ray.shutdown() is ending
        threading.Thread(target=fit, name=f"raycv-fold{plan.fold}", daemon=True).start()
        board.event(f"ray: launched the trainer of fold {plan.fold}")

    # Launch the folds that can run at once; the rest once those are computing, so that
    # queued folds' controllers start while others compute instead of slowing their start.
    first = pending[: fold_slots(prepared.config)]
    queued = pending[len(first) :]
    for plan in first:
        launch(plan)
    started: set[int] = set()
    launched_at = time.time()
    failures: dict[int, BaseException] = {}
    running = len(first)
    while running or queued:
        for event in ray.get(relay.drain.remote()):
            started.add(event[0])
            board.update(*event)
        if queued and (
            started >= {p.fold for p in first} or time.time() - launched_at > QUEUE_AFTER_S
        ):
            for plan in queued:
                launch(plan)
            running, queued = running + len(queued), []
        try:
            k, outcome = finished.get(timeout=0.5)
        except queue.Empty:
            continue
        running -= 1
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome.error is not None:
                raise outcome.error
            outcome.checkpoint.to_directory(str(folder.fold_dir(k)))
            if outcome.return_value is None:  # stopped early on purpose (until=...)
                board.fold_done(k, f"done up to {until}")
                continue
            fold_result = FoldResult.from_dict(outcome.return_value)
            results[k] = fold_result
            board.fold_done(k, f"done in {fold_result.seconds:.0f}s")
            folder.sync()
            if on_result is not None:
                on_result(fold_result)
        except Exception as exc:  # noqa: BLE001 - reported below; other folds go on
            failures[k] = exc
            cause = _worker_cause(exc)
            board.fold_done(k, f"FAILED: {type(cause).__name__}: {_first_line(cause)}")
    for event in ray.get(relay.drain.remote()):
        board.update(*event)
    ray.kill(relay)
    if failures:
        k, exc = min(failures.items())
        exc = _worker_cause(exc)
        raise FoldFailedError(
            f"fold {k} failed after {prepared.config.resources.max_failures} retries "
            f"({type(exc).__name__}: {_first_line(exc)}); finished folds are kept: fix the "
            f"cause and rerun with --resume (log: {folder.log_path})"
        ) from exc
    return [results[k] for k in sorted(results)]


def _worker_cause(exc: BaseException) -> BaseException:
    """The fold worker's own exception inside Ray Train's WorkerGroupError, if any."""
    failures = getattr(exc, "worker_failures", None) or {}
    return next(iter(failures.values()), exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def fold_slots(config) -> int:
    """How many folds the cluster can run at once with `resources.per_fold`."""
    total = ray.cluster_resources()
    per = config.resources.per_fold
    slots = int(total.get("CPU", 0) // per.cpu + 1e-9)
    if per.gpu > 0:
        slots = min(slots, int(total.get("GPU", 0) // per.gpu + 1e-9))
    return max(1, slots)


def ray_executor(address: str | None = None, verbose: bool = False):
    """An Executor for run_cv that starts (or joins) Ray, runs the folds, and cleans up."""

    def execute(prepared: Prepared, folder: RunFolder, board: ProgressBoard):
        started_here = start_ray(address, verbose)
        try:
            check_shared_storage(str(folder))  # before any fold trains; trivial on one node
            return run_folds_on_ray(prepared, folder, board)
        except KeyboardInterrupt:
            board.say("raycv: interrupted: cancelling running folds")
            raise
        finally:
            if started_here:
                ray.shutdown()  # also ends the fold trainers still running

    return execute
