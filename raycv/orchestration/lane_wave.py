"""The lanes of one run while they train (LaneWave), and the relay that carries their
progress and finished folds to the driver.

Everything the driver waits on lives on the driver's own node (the relay here, the lanes'
train controllers by Ray Train's own rule, the dataset in the driver's object store), so a
worker node that dies costs only the folds it was training, which their lanes retry.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import ray
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raycv.checkpoints import PhaseStore
from raycv.errors import RaycvError
from raycv.orchestration.connect import resources_in_words
from raycv.orchestration.lanes import Lane
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
                    cause = worker_cause(failures[plan.unit])
                    self.board.fold_done(
                        plan.unit,
                        f"FAILED: {type(cause).__name__}: {first_line(cause)}",
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


def worker_cause(exc: BaseException) -> BaseException:
    """The fold worker's own exception inside Ray Train's WorkerGroupError, if any."""
    failures = getattr(exc, "worker_failures", None) or {}
    return next(iter(failures.values()), exc)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
