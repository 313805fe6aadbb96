"""The lanes of one run while they train (LaneWave), and the relay that carries their
progress and finished folds to the driver.

Everything the driver waits on lives on the driver's own node (the relay here, the lanes'
train controllers by Ray Train's own rule, the dataset in the driver's object store), so a
worker node that dies costs only the folds it was training, which their lanes retry.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raycv.checkpoints import PhaseStore
from raycv.errors import RaycvError
from raycv.orchestration.connect import resources_in_words, stop_ray
from raycv.orchestration.lane_trainer import LaneTrainer
from raycv.orchestration.lanes import Lane
from raycv.phases import RESULT
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder
from raycv.storage import copy_tree, exists, filesystem
from raycv.units import unit_label


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


def start_relay():
    """A ProgressRelay pinned to the driver's node. Left to Ray's scheduler, a 0-CPU actor
    may land on any node, and a worker node that died would take the relay, and with it
    the driver's next `drain`, down with the folds it was training."""
    here = ray.get_runtime_context().get_node_id()
    return ProgressRelay.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)
    ).remote()


@dataclass
class WaveRun:
    """One run whose folds a wave trains: where its finished folds go and who hears of them."""

    folder: RunFolder  # finished folds' checkpoints are copied to folder.fold_dir(unit)
    board: ProgressBoard  # its progress and finished folds
    on_result: Callable[[FoldResult], None] | None = None
    results: dict[str, FoldResult] = field(default_factory=dict)  # unit -> result
    name: str = ""  # how the wave's board names the run (a combination), if it is not its own


# Every lane trainer's thread this process started. A wave returns once its folds are in,
# while its trainers may still wind down; a thread still inside Ray's C++ core when the
# interpreter exits, or when Ray stops, crashes it (a segfault or an abort after a run's
# last line), so whoever ends a Ray session or a process ends them first (end_lanes).
_lane_threads: list[threading.Thread] = []


def join_lanes(timeout: float = 10.0) -> None:
    """Wait (up to `timeout` s each) for the lane trainers' threads to end: ray.shutdown
    ends them at once; on a live Ray, once their controllers have wound down (~1 s)."""
    while _lane_threads:
        _lane_threads.pop().join(timeout)


def end_lanes(started_here: bool, wind_down: bool) -> None:
    """How a driver ends its lanes' trainers and, if it started it, its Ray. wind_down
    (every fold is in): the trainers end on their own while Ray still runs, then Ray
    stops; stopping Ray under a thread still inside Ray's core crashes the process (a
    segfault or an abort, seen right after a run's last line and at a test module's
    end). Otherwise (a failure, Ctrl-C) stopping the Ray started here is what ends the
    trainers still training; a joined cluster's are left to end with this driver."""
    if wind_down:
        join_lanes()
    if started_here:
        stop_ray()
        join_lanes()


class LaneWave:
    """The lanes of one wave while they train: starts each lane's trainer in a thread,
    relays the workers' progress to each run's board, copies each fold the workers
    announce as finished into its run's folder, and records the folds a lane ended
    without. A wave trains one run's folds, or several runs' (an ablation's combinations)."""

    def __init__(
        self,
        runs: list[WaveRun],
        units: dict[str, tuple[int, str]],
        storage: str,
        until: str | None,
        board: ProgressBoard | None = None,
    ):
        """units: key -> (run index, unit) of every fold still to train; storage: Ray
        Train's storage of the lanes' checkpoints; board: where the wave says what it does
        (default: the first run's)."""
        self.runs, self.until = runs, until
        self.board = board or runs[0].board
        self.units, self.waiting = units, set(units)
        self.relay = start_relay()
        self.ended: queue.Queue = queue.Queue()  # (lane, Result or exception) per lane
        self.running = 0
        self.lanes: list[Lane] = []
        self.asks: dict = {}  # what each lane's worker asks for (per_fold), for the note
        self.storage_fs, self.storage_root = filesystem(storage)

    def launch(self, lane: Lane, trainer: LaneTrainer) -> None:
        def fit() -> None:
            try:
                self.ended.put((lane, trainer.fit()))
            except BaseException as exc:  # noqa: BLE001 - handed to the driver loop
                self.ended.put((lane, exc))

        # daemon: Ctrl-C must not wait for trainers that ray.shutdown() is ending
        thread = threading.Thread(target=fit, name=f"raycv-{lane.name}", daemon=True)
        thread.start()
        _lane_threads.append(thread)
        self.running += 1
        self.lanes.append(lane)
        folds = ", ".join(j.key.removeprefix("fold") for j in lane.jobs)  # 0, 1, r1-fold0
        self.board.event(f"ray: launched {lane.name} (folds {folds})")

    def wait(self) -> dict[str, BaseException]:
        """Until every fold is in its run's folder, or every lane has ended; returns {key:
        error} for the folds left unfinished. Once every fold is in, the lanes' trainers
        are left to wind down on their own (their controllers stop the workers and free
        the placement groups, ~1 s on 2 cores) while the driver goes on."""
        failures: dict[str, BaseException] = {}
        while self.running:
            self.absorb()
            if not self.waiting:
                break
            if self.board.due():  # every 10 s, also while every fold still waits
                self.board.show(self.waiting_note())
            try:
                lane, outcome = self.ended.get(timeout=0.5)
            except queue.Empty:
                continue
            self.running -= 1
            self.absorb()  # the lane announced its last fold before it returned
            error = outcome if isinstance(outcome, BaseException) else outcome.error
            for job in lane.jobs:
                if job.key in self.waiting:
                    failures[job.key] = error or RuntimeError(f"{lane.name} ended without it")
                    cause = worker_cause(failures[job.key])
                    run, unit = self.units[job.key]
                    self.runs[run].board.fold_done(
                        unit, f"FAILED: {type(cause).__name__}: {first_line(cause)}", ok=False
                    )
        return failures

    def _not_heard(self, key: str) -> bool:
        run, unit = self.units[key]
        return self.runs[run].board.is_waiting(unit)

    def waiting_note(self) -> str:
        """What the lanes not started yet ask for, and what the cluster has now: a fold
        asking for more than any node has (a GPU nobody has yet) waits, visibly."""
        waiting = [
            lane
            for lane in self.lanes
            if all(self._not_heard(j.key) for j in lane.jobs if j.key in self.waiting)
            and any(j.key in self.waiting for j in lane.jobs)
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
        for key, *event in events:
            if key in self.units:
                run, unit = self.units[key]
                self.runs[run].board.update(unit, *event)
        for item in finished:
            self.collect(*item)

    def collect(self, lane: str, key: str, checkpoint: str) -> None:
        """Copy a finished fold's checkpoint into its run's folder; record its result."""
        if key not in self.waiting:  # announced again by a worker that restarted
            return
        run_index, unit = self.units[key]
        run = self.runs[run_index]
        source = f"{self.storage_root}/{lane}/{checkpoint}/{key}"
        if not exists(self.storage_fs, source):
            raise RaycvError(f"{unit_label(unit)} finished but its checkpoint is missing: {source}")
        copy_tree(self.storage_fs, source, *filesystem(run.folder.fold_dir(unit)))
        self.waiting.discard(key)
        if self.until is not None:
            run.board.fold_done(unit, f"done up to {self.until}")
            return
        fold_result = FoldResult.from_dict(PhaseStore(run.folder.fold_dir(unit)).load(RESULT))
        run.results[unit] = fold_result
        run.board.fold_done(unit, f"done in {fold_result.seconds:.0f}s")
        if run.board is not self.board:  # several runs: the wave's board names the run
            left = len(self.waiting)
            self.board.say(
                f"raycv: {run.name} {unit_label(unit)} done in {fold_result.seconds:.0f}s "
                f"({left} fold(s) of the wave left)"
            )
        run.folder.sync()
        if run.on_result is not None:
            run.on_result(fold_result)


# a traceback's closing line: the exception's (dotted) type, a colon, its message
RAISED = re.compile(r"[A-Za-z_][\w.]*: \S")


def worker_cause(exc: BaseException) -> BaseException:
    """The fold worker's own exception inside Ray Train's WorkerGroupError, if any."""
    failures = getattr(exc, "worker_failures", None) or {}
    return next(iter(failures.values()), exc)


def first_line(exc: BaseException) -> str:
    """One line that says what went wrong. For an actor whose constructor raised (a lane's
    train controller), Ray's first line only names the actor; the error is the traceback's
    last `Type: message` line."""
    lines = str(exc).strip().splitlines()
    if getattr(exc, "actor_init_failed", False):
        raised = [line for line in lines if RAISED.match(line)]
        if raised:
            return raised[-1]
    return lines[0] if lines else ""
