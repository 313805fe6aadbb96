"""The Ray executor: fold lanes, each a single-worker Ray Train trainer, all launched at once.

A lane is one Ray Train trainer (one worker with a fold's resources) that runs its folds
one after another; there are as many lanes as folds fit on the cluster at once, so every
trainer starts in one wave and no fold waits for a new trainer to start. Why lanes and
not one trainer per fold (see the README's design section): each trainer starts five
fresh Python processes (controller, placement-group cleaner, synchronization actor,
dataset manager, worker), ~15 CPU-seconds on 2 cores, paid again for every fold that
had to queue.

Fold k always runs in lane k mod L (L = how many folds fit at once), and lanes have
deterministic run names, so a rerun with --resume restores each lane from its latest
checkpoint. A dead worker restarts only its own lane, from the latest phase of the
fold it was training; folds it had finished are not retrained, and other lanes go on.

The dataset is put in the object store once; each worker reads it zero-copy. Progress
and finished folds flow from workers to the driver through a tiny actor the driver polls.
Everything the driver waits on lives on the driver's own node (the relay here, the lanes'
train controllers by Ray Train's own rule, the dataset in the driver's object store), so
a worker node that dies costs only the folds it was training, which their lanes retry.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import ray
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raycv.checkpoints import PhaseStore
from raycv.config import ConfigError
from raycv.errors import RaycvError
from raycv.experiment import Prepared, reuse_finished_folds
from raycv.folds import FoldSplit
from raycv.orchestration.fold_worker import LaneTask, train_lane
from raycv.orchestration.placement import cluster_address
from raycv.orchestration.storage_check import check_shared_storage
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder
from raycv.storage import copy_tree, exists, filesystem
from raycv.units import unit_label

log = logging.getLogger(__name__)


# Settings of a Ray that raycv starts itself (one machine, nothing to autoscale or preempt).
LOCAL_RAY_ENV = {
    # the train controllers poll their worker every 2 s by default: a finished lane would
    # idle up to 2 s before the run (or a lane of another trial) can go on
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    # each lane's trainer would start one more actor (a process, ~2 CPU-s on 2 cores) to
    # watch for preempted nodes, and export metrics nobody collects here
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
}


class FoldFailedError(RaycvError):
    """A fold kept failing after its retries; finished folds are kept for --resume."""


@ray.remote(num_cpus=0)
class ProgressRelay:
    """Collects progress events and finished folds from lane workers until the driver
    drains them. Start it with `start_relay`, on the driver's node."""

    def __init__(self):
        self.events: list[tuple] = []
        self.finished_folds: list[tuple[str, int, str]] = []

    def push(self, event: tuple) -> None:
        self.events.append(event)

    def finished(self, lane: str, fold: int, checkpoint: str) -> None:
        self.finished_folds.append((lane, fold, checkpoint))

    def drain(self) -> tuple[list[tuple], list[tuple[str, int, str]]]:
        out = self.events, self.finished_folds
        self.events, self.finished_folds = [], []
        return out


@dataclasses.dataclass
class Lane:
    name: str  # the trainer's run name: deterministic, so that a rerun resumes it
    plans: list[FoldSplit]


def lane_count(
    config, n_folds: int, share: int = 1, joined: bool = False, total: dict | None = None
) -> int:
    """How many lanes: `resources.concurrent_folds` if set; else as many folds as the
    cluster runs at once (split `share` ways when Tune runs trials side by side) on a Ray
    raycv started, or every fold on a cluster it joined: there each fold's lane asks for
    its own resources, which is what makes an autoscaler add the nodes. total: the
    cluster's resources (default: asked from the running Ray)."""
    wanted = config.resources.concurrent_folds
    if wanted is None and joined:
        wanted = n_folds
    elif wanted is None:
        total = ray.cluster_resources() if total is None else total
        wanted = fold_slots(config.resources.per_fold, total) // share
    return max(1, min(n_folds, wanted))


def plan_lanes(
    plans: list[FoldSplit], pending: list[FoldSplit], n_lanes: int, prefix: str = ""
) -> list[Lane]:
    """The lanes that still have work: fold plans[i] runs in lane i mod n_lanes.

    The assignment depends on all folds, not on which are pending, so a resumed run
    gives each unfinished fold the lane (and so the checkpoints) it had before.
    """
    todo = {p.unit for p in pending}
    lanes = []
    for i in range(n_lanes):
        mine = [p for p in plans[i::n_lanes] if p.unit in todo]
        if mine:
            lanes.append(Lane(f"{prefix}lane{i}of{n_lanes}", mine))
    return lanes


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
    address = cluster_address(address)
    if address:
        ray.init(address=address, **quiet)
        return True
    for name, value in LOCAL_RAY_ENV.items():  # inherited by the workers this Ray starts
        os.environ.setdefault(name, value)
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        **quiet,
    )
    return True


def connect(address: str | None, verbose: bool, board: ProgressBoard) -> bool:
    """start_ray, saying what happens (a local Ray takes seconds to start on few cores);
    returns True if this call started Ray."""
    where = cluster_address(address)
    if ray.is_initialized():
        where_now = "the Ray this process already runs"
    elif where:
        where_now = f"the Ray cluster at {where}"
    else:
        where_now = f"a private local Ray ({os.cpu_count()} CPUs)"
    board.say(f"raycv: connecting to {where_now} ...")
    t0 = time.time()
    started = start_ray(address, verbose)
    board.say(
        f"raycv: Ray is up ({time.time() - t0:.0f} s): the cluster has "
        f"{resources_in_words(ray.cluster_resources())}"
    )
    return started


def resources_in_words(resources: dict) -> str:
    """{'CPU': 2.0, 'GPU': 0, 'memory': ...} -> '2 CPU, 0 GPU' (the kinds folds ask for)."""
    return ", ".join(f"{resources.get(kind, 0):g} {kind}" for kind in ("CPU", "GPU"))


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
        exc = _worker_cause(exc)
        raise FoldFailedError(
            f"{unit_label(k)} failed after {prepared.config.resources.max_failures} retries "
            f"({type(exc).__name__}: {_first_line(exc)}); finished folds are kept: fix the "
            f"cause and rerun with --resume (log: {folder.log_path})"
        ) from exc
    return [results[p.unit] for p in prepared.plans if p.unit in results]


def start_relay():
    """A ProgressRelay pinned to the driver's node. Left to Ray's scheduler, a 0-CPU actor
    may land on any node, and a worker node that died would take the relay, and with it
    the driver's next `drain`, down with the folds it was training."""
    here = ray.get_runtime_context().get_node_id()
    return ProgressRelay.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)
    ).remote()


class LaneWave:
    """The lanes of one run while they train: starts each lane's trainer in a thread,
    relays the workers' progress to the board, copies each fold the workers announce as
    finished into the run folder, and records the folds a lane ended without."""

    def __init__(
        self,
        folder: RunFolder,
        board: ProgressBoard,
        until: str | None,
        results: dict[str, FoldResult],
        waiting: set[str],
        on_result: Callable[[FoldResult], None] | None,
    ):
        self.folder, self.board, self.until = folder, board, until
        self.results, self.waiting, self.on_result = results, waiting, on_result
        self.relay = start_relay()
        self.ended: queue.Queue = queue.Queue()  # (lane, Result or exception) per lane
        self.running = 0
        self.lanes: list[Lane] = []
        self.asks: dict = {}  # what each lane's worker asks for (per_fold), for the note
        self.storage_fs, self.storage_root = filesystem(folder.ray_storage)

    def launch(self, lane: Lane, trainer: DataParallelTrainer) -> None:
        def fit() -> None:
            try:
                self.ended.put((lane, trainer.fit()))
            except BaseException as exc:  # noqa: BLE001 - handed to the driver loop
                self.ended.put((lane, exc))

        # daemon: Ctrl-C must not wait for trainers that ray.shutdown() is ending
        threading.Thread(target=fit, name=f"raycv-{lane.name}", daemon=True).start()
        self.running += 1
        self.lanes.append(lane)
        folds = ", ".join(p.unit.removeprefix("fold") for p in lane.plans)  # 0, 1, r1-fold0
        self.board.event(f"ray: launched {lane.name} (folds {folds})")

    def wait(self) -> dict[str, BaseException]:
        """Until every lane has ended; returns {unit: error} for the folds left unfinished."""
        failures: dict[str, BaseException] = {}
        while self.running:
            self.absorb()
            if self.board.due():  # every 10 s, also while every fold still waits
                self.board.show(self.waiting_note())
            try:
                lane, outcome = self.ended.get(timeout=0.5)
            except queue.Empty:
                continue
            self.running -= 1
            self.absorb()  # the lane announced its last fold before it returned
            error = outcome if isinstance(outcome, BaseException) else outcome.error
            for plan in lane.plans:
                if plan.unit in self.waiting:
                    failures[plan.unit] = error or RuntimeError(f"{lane.name} ended without it")
                    cause = _worker_cause(failures[plan.unit])
                    self.board.fold_done(
                        plan.unit,
                        f"FAILED: {type(cause).__name__}: {_first_line(cause)}",
                        ok=False,
                    )
        return failures

    def waiting_note(self) -> str:
        """What the lanes not started yet ask for, and what the cluster has now: a fold
        asking for more than any node has (a GPU nobody has yet) waits, visibly."""
        waiting = [
            lane
            for lane in self.lanes
            if all(self.board.is_waiting(p.unit) for p in lane.plans if p.unit in self.waiting)
            and any(p.unit in self.waiting for p in lane.plans)
        ]
        if not waiting:
            return ""
        return (
            f"{len(waiting)} lane(s) not started, each asking "
            f"{resources_in_words(self.asks)}; the cluster has "
            f"{resources_in_words(ray.cluster_resources())}, free now "
            f"{resources_in_words(ray.available_resources())}"
        )

    def absorb(self) -> None:
        events, finished = ray.get(self.relay.drain.remote())
        for event in events:
            self.board.update(*event)
        for item in finished:
            self.collect(*item)

    def collect(self, lane: str, k: str, checkpoint: str) -> None:
        """Copy a finished fold's checkpoint into the run folder; record its result."""
        if k not in self.waiting:  # announced again by a worker that restarted
            return
        source = f"{self.storage_root}/{lane}/{checkpoint}/{k}"
        if not exists(self.storage_fs, source):
            raise RaycvError(f"{unit_label(k)} finished but its checkpoint is missing: {source}")
        copy_tree(self.storage_fs, source, *filesystem(self.folder.fold_dir(k)))
        self.waiting.discard(k)
        if self.until is not None:
            self.board.fold_done(k, f"done up to {self.until}")
            return
        fold_result = FoldResult.from_dict(PhaseStore(self.folder.fold_dir(k)).load("result"))
        self.results[k] = fold_result
        self.board.fold_done(k, f"done in {fold_result.seconds:.0f}s")
        self.folder.sync()
        if self.on_result is not None:
            self.on_result(fold_result)


def _worker_cause(exc: BaseException) -> BaseException:
    """The fold worker's own exception inside Ray Train's WorkerGroupError, if any."""
    failures = getattr(exc, "worker_failures", None) or {}
    return next(iter(failures.values()), exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def fold_slots(per, total: dict) -> int:
    """How many folds asking `per` (resources.per_fold) fit at once in `total` (Ray's
    cluster resources). The epsilon goes inside the floor: 1 CPU / 0.1 is 9.999... in
    floats, and `1 // 0.1` is 9.0."""
    slots = math.floor(total.get("CPU", 0) / per.cpu + 1e-9)
    if per.gpu > 0:
        slots = min(slots, math.floor(total.get("GPU", 0) / per.gpu + 1e-9))
    return max(1, slots)


def check_ray_gpus(config) -> None:
    """On a Ray raycv started: refuse folds asking for more GPUs than Ray found (they
    would wait forever; check_gpu_request asked torch, this asks Ray)."""
    gpu = config.resources.per_fold.gpu
    found = ray.cluster_resources().get("GPU", 0)
    if gpu > 0 and found < gpu:
        raise ConfigError(
            f"resources.per_fold.gpu={gpu:g} asks for a GPU per fold, but the local Ray "
            f"found {found:g} GPU; set resources.per_fold.gpu=0, or join a cluster with "
            "GPUs (--address)"
        )


def ray_executor(address: str | None = None, verbose: bool = False):
    """An Executor for run_cv that starts (or joins) Ray, runs the folds, and cleans up."""

    def execute(prepared: Prepared, folder: RunFolder, board: ProgressBoard):
        started_here = connect(address, verbose, board)
        try:
            joined = cluster_address(address) is not None
            if not joined:
                check_ray_gpus(prepared.config)
            check_shared_storage(str(folder))  # before any fold trains; trivial on one node
            n_lanes = lane_count(prepared.config, len(prepared.plans), joined=joined)
            return run_folds_on_ray(prepared, folder, board, n_lanes=n_lanes)
        except KeyboardInterrupt:
            board.say("raycv: interrupted: cancelling running folds")
            raise
        finally:
            if started_here:
                ray.shutdown()  # also ends the fold trainers still running

    return execute
