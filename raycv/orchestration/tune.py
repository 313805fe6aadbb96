"""`raycv tune`, the driver: a Ray Tune search in which every trial is a full cross-validation.

Three layers, as in Ray's train/tune interop: the fold worker (fold_worker.py) knows
nothing of Tune; a trial (tune_trial.py) runs every fold in lanes and reports to Tune
after each fold; this driver computes what every trial shares once (the checked search
space, the lane counts, the shared phases) and builds the Tuner around the trial. A
trial with several lanes runs them on Ray Train; a trial whose share of the cluster is
one lane runs it in its own process, which Tune reuses from trial to trial (a trainer's
processes would cost more to start than the stage 2 work they run). Phases no searched
key changes are computed once per fold before the trials start (reuse.py), and every
trial loads them. Compute only: the caller writes the report (publish.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune

from raycv.config import Config
from raycv.errors import RunFolderError
from raycv.folds import folds_table
from raycv.orchestration import reuse
from raycv.orchestration.connect import connect
from raycv.orchestration.lane_wave import end_lanes
from raycv.orchestration.lanes import lane_count
from raycv.orchestration.placement import cluster_address
from raycv.orchestration.ray_runner import run_folds_on_ray
from raycv.orchestration.shared_phases import compute_shared
from raycv.orchestration.storage_check import check_shared_storage
from raycv.orchestration.tune_callbacks import TrialProgress, tune_callbacks
from raycv.orchestration.tune_results import (
    OBJECTIVE,
    publish_best,
    top_table,
    trials_table,
    tune_summary,
)
from raycv.orchestration.tune_space import RESUMABLE_TUNE_KEYS, check_search, samplers
from raycv.orchestration.tune_trial import TrialPlan, run_trial
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.runfolder import RESUMABLE_CHANGES, RunFolder

TRIAL_MEMORY = 128 * 2**20  # bytes of Ray's logical memory a trial process reserves
HEAD_NODE = "node:__internal_head__"  # a resource only the head node has


@dataclass
class Lanes:
    """How many lanes, computed once per search from the cluster."""

    shared: int  # for the shared phases, before any trial: every lane the cluster has
    per_trial: int  # each trial's share, when max_concurrent_trials run side by side


def _scheduler(config: Config, n_folds: int):
    if config.tune.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # time = folds reported in fold order; a rung compares trials on the same folds
        return ASHAScheduler(time_attr="folds_done", max_t=n_folds, grace_period=1)
    return None


def _search_alg(config: Config):
    if config.tune.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=config.cv.seed)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # seeded: the same config draws the same trials (and a benchmark compares like with
    # like). Tune ignores TuneConfig.max_concurrent_trials for a generator passed in, so
    # the generator gets it itself.
    return BasicVariantGenerator(
        random_state=config.cv.seed, max_concurrent=config.tune.max_concurrent_trials
    )


def trial_resources(config: Config, n_lanes: int) -> dict:
    """What a trial process reserves. One lane: the fold's own resources, since its folds
    run in it (a node that dies takes the trial with it, and Tune restarts it elsewhere,
    resuming from its folder). Several: its lanes ask for the folds' CPUs and GPUs
    themselves, and even a sliver of CPU per trial (0.01) would leave 1.98 of 2 CPUs, so
    the second trial's 1-CPU lane could never start: the trial asks for some memory
    instead (Tune needs a non-empty bundle), on the head node: it only waits on its lanes,
    and a worker node that died must cost those lanes a retry, not the trial."""
    if n_lanes > 1:
        return {"memory": TRIAL_MEMORY, HEAD_NODE: 0.001}
    res = config.resources.per_fold
    return {"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})}


def run_tune(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    space: dict[str, tuple[str, list]],
    lanes: Lanes,
    resume: bool,
    cache: Path,
):
    """Run (or resume) the search over the checked `space`; returns Tune's ResultGrid."""
    config = prepared.config
    n_folds = len(prepared.plans)
    dataset_ref = ray.put(prepared.dataset)  # put again on every (re)start: refs die with us
    phases = reuse.reusable_phases(list(space), config.tune.reuse)
    if phases:

        def run_until(todo, work, until, loaded):
            return run_folds_on_ray(
                todo,
                work,
                board,
                run_prefix="shared-",
                dataset_ref=dataset_ref,
                until=until,
                n_lanes=lanes.shared,
                shared=loaded,
            )

        shared = compute_shared(
            prepared, folder, board, phases, cache, run_until, resume=resume, before="the trials"
        )
    else:
        board.say("raycv: reuse off: the search changes pretraining and stage 1 settings")
        shared = {}
    plan = TrialPlan(
        base=config.to_dict(),
        dataset=dataset_ref,
        fold_of=prepared.fold_of,
        plans=prepared.plans,
        sites=prepared.sites,
        tune_dir=str(folder.path.resolve()),
        shared=shared,
        n_lanes=lanes.per_trial,
    )
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, plan=plan), trial_resources(config, lanes.per_trial)
    )
    board.say(
        "raycv: each trial runs its folds in turn in its own process (one lane per trial)"
        if lanes.per_trial == 1
        else f"raycv: each trial runs its folds on {lanes.per_trial} Ray Train lanes"
    )
    storage = str(folder.path.resolve())
    experiment = Path(storage) / "search"
    if resume and tune.Tuner.can_restore(str(experiment)):
        board.say("raycv: resuming the search; finished trials are kept")
        tuner = tune.Tuner.restore(
            str(experiment), trainable, resume_unfinished=True, resume_errored=True
        )
        return tuner.fit()
    callbacks = [
        TrialProgress(str(folder.log_path.resolve()), n_folds, config.tune.num_samples),
        *tune_callbacks(storage, config.tracking, config.name),
    ]
    tuner = tune.Tuner(
        trainable,
        param_space=samplers(space),
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode="max",
            num_samples=config.tune.num_samples,
            # a Searcher (Optuna) gets Tune's own cap; the variant generator takes the cap
            # itself (_search_alg), and Tune warns it would ignore this one
            max_concurrent_trials=(
                config.tune.max_concurrent_trials if config.tune.search_alg != "random" else None
            ),
            search_alg=_search_alg(config),
            scheduler=_scheduler(config, n_folds),
            # a finished one-lane trial's process (torch and the data loaded) serves the
            # next trial: every trial asks for the same resources, and run_fold seeds
            # itself. Not with lanes: a trial stopped early (ASHA) ends in its thread, and
            # only the end of its process also ends the lanes it started
            reuse_actors=lanes.per_trial == 1,
        ),
        run_config=tune.RunConfig(
            storage_path=storage,
            name="search",
            verbose=0,
            # a one-lane trial has no trainer to retry it: Tune restarts it instead, and
            # the restarted trial resumes from the phases in its folder
            failure_config=tune.FailureConfig(
                max_failures=config.resources.max_failures if lanes.per_trial == 1 else 0
            ),
            callbacks=callbacks,
        ),
    )
    return tuner.fit()


@dataclass
class TuneOutcome:
    folder: RunFolder  # written; still open for the report (publish.py)
    summary: dict
    table: str  # the top trials and both estimates, as printed


def tune_experiment(
    prepared: Prepared,
    output: str | None,
    resume: bool,
    overwrite: bool,
    address: str | None,
    verbose: bool,
) -> TuneOutcome:
    """`raycv tune`: claim the tune folder, search, write trials.csv, best/, summary."""
    config = prepared.config
    space = check_search(config)  # the resolved config's space: what every trial searches
    folder = RunFolder(output or Path("runs") / f"{config.name}-tune")
    if folder.uri:
        raise RunFolderError("raycv tune writes to a local or shared path, not a URI (yet)")
    t0 = time.time()
    keep = tuple(k for k in RESUMABLE_CHANGES if k != "tune") + RESUMABLE_TUNE_KEYS
    resumed = folder.claim(config, resume, overwrite, resumable=keep)
    folder.write_csv("folds.csv", folds_table(prepared.dataset, prepared.fold_of))
    cache = reuse.cache_dir(config, folder.path)
    board = ProgressBoard([p.unit for p in prepared.plans], folder.log_path)
    if not verbose:
        # Tune's console reporter prints an experiment banner and a TensorBoard hint into
        # Ray's temp folder even at verbose=0; its legacy reporter stays silent there.
        # raycv prints a line per trial result itself (TrialProgress).
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    n_folds = len(prepared.plans)
    try:
        started_here = connect(address, verbose, board)
    except BaseException:
        board.close()
        raise
    finished = False
    try:
        # every node must see the trials' folders and the shared phase cache
        check_shared_storage(str(folder.path.resolve()))
        check_shared_storage(str(cache))
        joined = cluster_address(address) is not None
        lanes = Lanes(
            shared=lane_count(config, n_folds, joined=joined),
            per_trial=lane_count(config, n_folds, config.tune.max_concurrent_trials, joined),
        )
        board.say(
            f"raycv: {'resuming' if resumed else 'starting'} search {config.name!r}: "
            f"{config.tune.num_samples} trials x {n_folds} folds -> {folder}"
        )
        grid = run_tune(prepared, folder, board, space, lanes, resumed, cache)
        finished = True
    finally:
        board.close()
        end_lanes(started_here, wind_down=finished)  # the shared phases' trainers
    units = [p.unit for p in prepared.plans]
    trials = trials_table(grid, list(space), units, folder.path / "trials")
    folder.write_csv("trials.csv", trials)
    summary = tune_summary(trials, list(space), units, time.time() - t0)
    publish_best(
        folder.path,
        trials.loc[trials["trial_id"] == summary["best"]["trial_id"]].iloc[0],
        config.name,
    )
    folder.write_json("summary.json", summary)
    return TuneOutcome(folder, summary, top_table(trials, list(space), summary))
