"""The Ray executor: a run's unfinished folds in lanes (lanes.py), each a single-worker Ray
Train trainer, all launched in one wave (lane_wave.py) so that no fold waits for a new
trainer to start. Why lanes and not one trainer per fold (see the README's design
section): each trainer starts fresh Python processes (controller, synchronization actor,
worker; on a cluster also a placement-group cleaner; Ray Train's Ray Data manager and
autoscaling coordinator are left out, lane_trainer.py), ~8 CPU-seconds on 2 cores, paid
again for every fold that had to queue.

A dead worker restarts only its own lane, from the latest phase of the fold it was
training; folds it had finished are not retrained, and other lanes go on. The dataset is
put in the object store once; each worker reads it zero-copy.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path

import ray
from ray.train import FailureConfig, RunConfig, ScalingConfig

from raycv.errors import RaycvError
from raycv.experiment import reuse_finished_folds
from raycv.orchestration.connect import check_ray_gpus, connect, owns_ray
from raycv.orchestration.fold_worker import LaneTask, train_lane
from raycv.orchestration.lane_state import discard_unloadable_state
from raycv.orchestration.lane_trainer import LaneTrainer
from raycv.orchestration.lane_wave import (
    LaneWave,
    WaveRun,
    end_lanes,
    first_line,
    worker_cause,
)
from raycv.orchestration.lanes import Lane, lane_count, plan_lanes, wave_jobs
from raycv.orchestration.placement import cluster_address, on_private_ray
from raycv.orchestration.runs import RunToTrain
from raycv.orchestration.storage_check import check_shared_storage
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.results import FoldResult
from raycv.runfolder import RunFolder
from raycv.units import unit_label


class FoldFailedError(RaycvError):
    """A fold kept failing after its retries; finished folds are kept for --resume."""


def lane_trainer(
    runs: list[RunToTrain],
    lane: Lane,
    home: RunFolder,
    dataset_ref,
    relay,
    until: str | None = None,
) -> LaneTrainer:
    """A one-worker Ray Train trainer that runs one lane's folds (of one or several runs).

    DataParallelTrainer rather than TorchTrainer: a fold is one process, so it needs no
    torch.distributed process group, whose set-up cost ~7 s per trainer on 2 cores here.
    Ray Train still gives the lane its resources, retries, checkpoints and resume; the
    LaneTrainer leaves out the Ray Data actor, and on a Ray raycv started the autoscaling
    coordinator and the placement-group cleaner, that a lane never needs (lane_trainer.py).
    Every checkpoint is kept (in home's Ray storage): the driver copies each finished
    fold's from there into its run's folder.
    """
    config = runs[0].prepared.config
    res = config.resources.per_fold
    task = LaneTask(
        configs=[r.prepared.config.to_dict() for r in runs],
        lane=lane.name,
        jobs=[
            {
                "key": job.key,
                "run": job.run,
                # plain arrays: the controller need not import raycv's folds (scikit-learn)
                "plan": dataclasses.asdict(job.plan),
                "shared": runs[job.run].shared.get(job.plan.unit, {}),
            }
            for job in lane.jobs
        ],
        dataset=dataset_ref,
        relay=relay,
        # a lane checks it sees the run folder before it trains (nodes that joined
        # after the driver's check_shared_storage, e.g. autoscaled GPU nodes)
        run_folder=home.uri or str(home.path.resolve()),
        until=until,
    )
    return LaneTrainer(
        train_lane,
        train_loop_config={"task": task},
        scaling_config=ScalingConfig(
            num_workers=1,
            use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})},
        ),
        run_config=RunConfig(
            name=lane.name,
            storage_path=home.ray_storage,
            failure_config=FailureConfig(max_failures=config.resources.max_failures),
        ),
        private_ray=on_private_ray(),
        owns_ray=owns_ray(),
    )


def run_wave(
    runs: list[RunToTrain],
    home: RunFolder,
    *,
    n_lanes: int,
    dataset_ref=None,
    until: str | None = None,
    board: ProgressBoard | None = None,
) -> list[list[FoldResult]]:
    """Every unfinished fold of every run in one wave of lanes (no lane waits for a run to
    end before it starts the next run's folds); per run, every fold's result. The lanes
    keep their Ray Train state in home's storage; the first run's board says what the
    wave does, each run's board hears of its own folds."""
    progress, units = [], {}
    jobs = wave_jobs([r.prepared.plans for r in runs], [r.tag for r in runs])
    for i, r in enumerate(runs):
        done, pending = reuse_finished_folds(r.prepared, r.folder, r.board)
        for result in done.values() if r.on_result is not None else ():
            r.on_result(result)
        progress.append(WaveRun(r.folder, r.board, r.on_result, dict(done), r.folder.path.name))
        todo = {p.unit for p in pending}
        units |= {j.key: (i, j.plan.unit) for j in jobs if j.run == i and j.plan.unit in todo}
    if units:
        board = board or runs[0].board
        _train(runs, progress, units, jobs, home, n_lanes, dataset_ref, until, board)
    return [
        [w.results[p.unit] for p in r.prepared.plans if p.unit in w.results]
        for r, w in zip(runs, progress, strict=True)
    ]


def _train(runs, progress, units, jobs, home, n_lanes, dataset_ref, until, board):
    for r in runs:
        if not r.folder.uri:  # exists before any fold looks for it
            r.folder.path.mkdir(parents=True, exist_ok=True)
    board.event(f"ray: cluster resources {ray.cluster_resources()}")
    config = runs[0].prepared.config
    per = config.resources.per_fold
    wave = LaneWave(progress, units, home.ray_storage, until, board)
    wave.asks = {"CPU": per.cpu, "GPU": per.gpu}
    dataset_ref = dataset_ref if dataset_ref is not None else ray.put(runs[0].prepared.dataset)
    try:
        lanes = plan_lanes(jobs, set(units), n_lanes)
        for lane in lanes:
            refused = discard_unloadable_state(home.ray_storage, lane.name)
            if refused:  # e.g. its snapshot cut off when an earlier driver was killed
                board.say(
                    f"raycv: {lane.name}: Ray Train cannot load the state an earlier run left "
                    f"({refused}); removed it, so the lane's unfinished folds start over"
                )
            # one wave: every lane starts now, none waits for another
            wave.launch(lane, lane_trainer(runs, lane, home, dataset_ref, wave.relay, until))
        board.say(
            f"raycv: launched {len(lanes)} lane(s) of {per.cpu:g} CPU"
            + (f", {per.gpu:g} GPU" if per.gpu > 0 else "")
            + " each; a lane's first fold starts once its worker process is up"
        )
        failures = wave.wait()
    finally:
        ray.kill(wave.relay)
    if failures:
        key, exc = next((j.key, failures[j.key]) for j in jobs if j.key in failures)
        run, unit = units[key]
        cause = worker_cause(exc)
        # Ray Train retries a lane whose worker failed; a lane that could not start is not
        retried = f" after {config.resources.max_failures} retries" if cause is not exc else ""
        raise FoldFailedError(
            f"{unit_label(unit)} failed{retried} "
            f"({type(cause).__name__}: {first_line(cause)}); finished folds are kept: fix the "
            f"cause and rerun with --resume (log: {runs[run].folder.log_path})"
        ) from exc


@contextmanager
def ray_session(
    prepared: Prepared, folder: RunFolder, board: ProgressBoard, address, verbose, also=()
):
    """Start (or join) Ray, check what must hold before any fold trains, put the dataset
    once; yields `train(runs, home, until=None)`, which trains the folds of several runs
    (RunToTrain) in one wave of lanes kept in home's Ray storage and returns each run's
    results. Every wave of the session (an ablation's shared phases, then its
    combinations) uses the same Ray and the same dataset."""
    started_here = connect(address, verbose, board)
    interrupted = finished = False
    try:
        joined = cluster_address(address) is not None
        if not joined:
            check_ray_gpus(prepared.config)
        # before any fold trains (trivial on one node): the run folder, and `also` the
        # folders the folds read from (an ablation's cache of shared phases)
        for location in (str(folder), *map(str, also)):
            check_shared_storage(location)
        n_lanes = lane_count(prepared.config, len(prepared.plans), joined=joined)
        # the whole cohort: a run that uses fewer modalities reads only its own
        dataset_ref = ray.put(prepared.dataset)

        def train(runs: list[RunToTrain], home: RunFolder, until: str | None = None):
            # the session's board tells the wave (an ablation's combinations have their own)
            return run_wave(
                runs, home, n_lanes=n_lanes, dataset_ref=dataset_ref, until=until, board=board
            )

        yield train
        finished = True
    except KeyboardInterrupt:
        interrupted = True
        board.say("raycv: interrupted: cancelling running folds")
        raise
    finally:
        # a failed run on a joined cluster still waits for its trainers (a thread alive at
        # the interpreter's exit can crash it); a Ctrl-C there does not
        end_lanes(started_here, wind_down=finished or not (started_here or interrupted))


def ray_executor(address: str | None = None, verbose: bool = False):
    """An Executor for run_cv that starts (or joins) Ray, runs the folds, and cleans up."""

    def execute(prepared: Prepared, folder: RunFolder, board: ProgressBoard):
        with ray_session(prepared, folder, board, address, verbose) as train:
            (results,) = train([RunToTrain(prepared, folder, board)], folder)
            return results

    return execute


def ray_runner(address: str | None = None, verbose: bool = False):
    """An ablation's runner (ablate.OpenRunner): one Ray session for every wave."""

    def open_runner(prepared: Prepared, folder: RunFolder, board: ProgressBoard, cache: Path):
        return ray_session(prepared, folder, board, address, verbose, also=[cache])

    return open_runner
