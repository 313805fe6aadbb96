"""A search's folds as Ray tasks on one pool of worker processes: the shared phases of each
fold, and every trial's folds on them.

A search is many short pieces with dependencies between them: per fold, the shared phases
(forest, pretraining, stage 1) once; then every trial's stage 2 on that fold's. As Ray
tasks they pack the cores as they come. Ray's task workers stay up from task to task
(torch and raycv imported once per process, whichever trial the task is for); a trial's
fold takes its shared phases' task as an argument, so Ray holds it until that fold's
phases are in and runs it then, beside another fold's shared phases; and the last trials'
folds spread over every core. Lanes (ray_runner.py) start a trainer's processes per run
and keep their cores until their last fold: measured, a reused search left a core idle
while one fold's shared phases finished, and again while the last trial ran alone.

A task runs one (repeat, fold) unit with the sequential executor, into a run folder every
node sees (storage_check.py). A task whose worker died is retried by Ray
(resources.max_failures) and resumes from the phases it saved there; a finished unit is
never trained again. Kept import-light: the driver and every trial's process import it,
and only the task workers need torch (and the driver Ray Train's relay).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray


@dataclasses.dataclass
class UnitTask:
    """One (repeat, fold) unit to run in a task: plain values, unpickled on the worker."""

    config: dict  # Config.to_dict() of the run the unit belongs to
    plan: dict  # the unit's FoldSplit fields
    fold_of: np.ndarray  # (R, N) outer fold per sample (the run's Prepared.fold_of)
    folder: str  # the run folder it writes its phases into (absolute; every node sees it)
    until: str | None = None  # a phase to stop after (the shared phases), or None
    relay: Any = None  # a ProgressRelay for its progress; None: the folder's run.log
    # shared phases: their files in the cache, to copy there once computed
    cache_files: dict[str, Path] | None = None
    started: float | None = None  # when the run began: its run.log's clock starts there


@ray.remote
def run_unit(task: UnitTask, dataset, shared: dict[str, Path] | None, *after) -> Any:
    """Run one unit in this worker. shared: its phase files to load (the return value of
    its shared phases' task, which Ray resolves first). after: tasks to wait for (their
    values are ignored), which is how resources.concurrent_folds caps the shared phases.
    Returns the unit's FoldResult, or for the shared phases their files in the cache."""
    from raycv.config import from_dict
    from raycv.folds import FoldSplit
    from raycv.orchestration.sequential import run_sequential
    from raycv.orchestration.shared_phases import into_cache
    from raycv.orchestration.storage_check import check_visible_here
    from raycv.prepared import Prepared
    from raycv.progress import ProgressBoard
    from raycv.runfolder import RunFolder

    check_visible_here(task.folder)  # a node that joined after the driver's check
    plan = FoldSplit(**task.plan)
    prepared = Prepared(from_dict(task.config), dataset, task.fold_of, [plan])
    folder = RunFolder(task.folder)
    if task.relay is None:
        board = ProgressBoard([plan.unit], folder.log_path, quiet=True, started=task.started)
    else:
        board = _RelayedBoard(task.relay)
    where = f"a task on node {ray.get_runtime_context().get_node_id()[:12]}, pid {os.getpid()}"
    board.update(plan.unit, "start", -1, {"note": where})
    try:
        loads = {plan.unit: shared} if shared else None
        results = run_sequential(prepared, folder, board, shared=loads, until=task.until)
    finally:
        board.close()
    if task.until is None:
        return results[0]
    into_cache(folder.fold_dir(plan.unit), task.cache_files)  # the shared phases, for every trial
    return task.cache_files


def unit_options(config) -> dict:
    """What a unit's task asks Ray for: one fold's resources (resources.per_fold), and as
    many retries of a worker that died as the run allows. The same for the shared phases
    and the trials' folds, so that they queue together, in the order they were asked."""
    res = config.resources.per_fold
    return {
        "num_cpus": res.cpu,
        "num_gpus": res.gpu,
        "max_retries": config.resources.max_failures,
        "retry_exceptions": False,  # a fold that raises raises again: say so at once
        # not in the placement group of the trial that asks (Tune's), which only holds
        # the trial's own small bundle: a fold goes wherever its resources are free
        "scheduling_strategy": "DEFAULT",
    }


def trial_runtime_env() -> dict:
    """The runtime env Ray Tune starts trial processes with, which the tasks a trial asks
    for inherit. Ray keeps a pool of workers per runtime env (per its serialized text), so
    the driver's tasks (the shared phases) ask for the same one: every fold then runs in
    the same few processes, torch imported once each. Left to differ, the trials' first
    folds waited for new workers while the idle ones were stopped (measured: four fold
    workers started for two cores). Tune's own rule (ray.tune.execution.class_cache): its
    default variables and those of this process it passes on. A trial's task must not
    name it again: Ray would merge it into the trial's, and write the same variables as
    different text."""
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE

    passed = {k: os.environ[k] for k in ENV_VARS_TO_PROPAGATE if k in os.environ}
    return {"env_vars": {**DEFAULT_ENV_VARS, **passed}}


def unit_task(prepared, plan, folder: Path, **more) -> UnitTask:
    """The task of `plan`, one unit of `prepared`, writing into `folder`."""
    return UnitTask(
        config=prepared.config.to_dict(),
        plan=dataclasses.asdict(plan),
        fold_of=prepared.fold_of,
        folder=str(folder.resolve()),
        **more,
    )


class _RelayedBoard:
    """The part of a ProgressBoard a fold writes to, sent on to the driver's board."""

    def __init__(self, relay):
        self.relay = relay

    def update(self, fold: str, phase: str, epoch: int, row: dict) -> None:
        self.relay.push.remote((fold, phase, epoch, row))

    def fold_done(self, fold: str, message: str = "done", ok: bool = True) -> None:
        pass  # the driver says it, when the task's result is in (SharedPhases.watch)

    def close(self) -> None:
        pass


def run_units(
    prepared,
    folder,
    dataset_ref,
    shared: dict[str, Any],
    in_flight: int,
    on_result: Callable[[Any], None],
    started: float | None = None,
) -> None:
    """Run every unit of `prepared` as a task writing into `folder`, at most `in_flight`
    of them asked of Ray at a time, in fold order; on_result gets each unit's FoldResult as
    it comes in (any order). shared: per unit, its shared phases' task (or files);
    started: when the run began (its run.log's clock)."""
    options = unit_options(prepared.config)
    todo = list(prepared.plans)
    pending: dict[Any, str] = {}
    try:
        while todo or pending:
            while todo and len(pending) < in_flight:
                plan = todo.pop(0)
                task = unit_task(prepared, plan, folder.path, started=started)
                ref = run_unit.options(**options).remote(task, dataset_ref, shared.get(plan.unit))
                pending[ref] = plan.unit
            ready, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(ready[0])
            on_result(ray.get(ready[0]))
    finally:
        for ref in pending:  # stopped early (a scheduler's decision) or failed
            ray.cancel(ref)


class SharedPhases:
    """The shared phases of a search's folds, as one task per unit, asked of Ray before any
    trial starts; trials pass a unit's task to their own task of that unit. While the
    search runs, a thread relays their progress to the driver's board (`watch`)."""

    def __init__(self, board, until: str):
        self.board, self.until = board, until
        self.refs: dict[str, Any] = {}  # unit -> its task
        self.relay = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(
        self,
        prepared,
        work,
        dataset_ref,
        cache_files: dict[str, dict[str, Path]],
        loaded: dict[str, dict[str, Path]],
        cap: int | None,
    ) -> None:
        """One task per unit of `prepared` (the units whose phases are missing), computing
        them into the work folder `work` and copying them to `cache_files`; cap: at most
        that many at once (resources.concurrent_folds), else as many as fit."""
        from raycv.orchestration.lane_wave import start_relay

        self.relay = start_relay()
        options = {**unit_options(prepared.config), "runtime_env": trial_runtime_env()}
        asked = []
        for i, plan in enumerate(prepared.plans):
            task = unit_task(
                prepared,
                plan,
                work.path,
                until=self.until,
                relay=self.relay,
                cache_files=cache_files[plan.unit],
            )
            after = [asked[i - cap]] if cap is not None and i >= cap else []
            ref = run_unit.options(**options).remote(
                task, dataset_ref, loaded.get(plan.unit), *after
            )
            self.refs[plan.unit] = ref
            asked.append(ref)
        self._thread = threading.Thread(target=self.watch, name="raycv-shared-phases")
        self._thread.start()

    def watch(self) -> None:
        """Until every unit's shared phases are in (or `close`): their progress onto the
        board, and a line as each unit's are in or failed."""
        from raycv.orchestration.lane_wave import first_line

        left = {ref: unit for unit, ref in self.refs.items()}
        while left and not self._stop.is_set():
            ready, _ = ray.wait(list(left), num_returns=len(left), timeout=1.0)
            self._absorb()
            for ref in ready:
                unit = left.pop(ref)
                try:
                    ray.get(ref)
                    self.board.fold_done(unit, f"done up to {self.until}")
                except Exception as exc:  # the trials of this unit fail with it
                    self.board.fold_done(unit, f"FAILED: {first_line(exc)}", ok=False)
            if left and self.board.due():
                self.board.show(f"{len(left)} fold(s)' shared phases still running")

    def _absorb(self) -> None:
        events, _ = ray.get(self.relay.drain.remote())
        for unit, *event in events:
            self.board.update(unit, *event)

    def close(self) -> None:
        """Stop watching (the search ended); waits for the thread, which must not be left
        inside Ray's core when Ray stops."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
