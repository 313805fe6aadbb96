"""`raycv tune`, the driver: a Ray Tune search in which every trial is a full cross-validation.

Three layers, as in Ray's train/tune interop: the fold task (fold_tasks.py) knows nothing
of Tune; a trial (tune_trial.py) asks for every fold and reports to Tune after each
fold; this driver works out what every trial shares once (the checked search
space, the shared phases) and builds the Tuner around the trial. Phases no searched key
changes are computed once per fold (reuse.py) and every trial loads them. Every fold, of
the shared phases and of every trial, is a Ray task on one pool of workers (fold_tasks.py):
the shared phases are asked for first, the trials start at once, and a trial's fold runs
as soon as its fold's shared phases are in. Compute only: the caller writes the report
(publish.py).
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
from raycv.orchestration.connect import connect, stop_ray
from raycv.orchestration.fold_tasks import SharedPhases
from raycv.orchestration.lanes import lane_count
from raycv.orchestration.placement import cluster_address
from raycv.orchestration.shared_phases import plan_shared
from raycv.orchestration.storage_check import check_shared_storage
from raycv.orchestration.tune_callbacks import (
    DEFAULT_LOGGERS_OFF,
    TrialProgress,
    mlflow_uri,
    tune_callbacks,
)
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
# What a trial's process reserves. Its folds are tasks that ask for the folds' CPUs and
# GPUs themselves, and even a sliver of CPU per trial (0.01) would leave 1.98 of 2 CPUs,
# so a second 1-CPU fold could never start: a trial asks for some memory instead (Tune
# needs a non-empty bundle), on the head node: it only waits on its folds, and a worker
# node that died must cost those folds a retry, not the trial.
TRIAL_RESOURCES = {"memory": TRIAL_MEMORY, HEAD_NODE: 0.001}


def in_flight(config: Config, n_folds: int, joined: bool, total: dict | None = None) -> int:
    """How many of its folds a trial asks of Ray at once. Every fold, by default: Ray runs
    them as cores come free, so the last trials' folds spread over every core. With a
    scheduler, a trial's share of the cluster: ASHA judges trials on their first folds, and
    a trial it stops should not have trained its later ones meanwhile.
    resources.concurrent_folds caps it. total: the cluster's resources (lanes.lane_count)."""
    if config.resources.concurrent_folds is None and config.tune.scheduler == "none":
        return n_folds
    return lane_count(config, n_folds, config.tune.max_concurrent_trials, joined, total)


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


def run_tune(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    space: dict[str, tuple[str, list]],
    folds_at_once: int,
    resume: bool,
    cache: Path,
):
    """Run (or resume) the search over the checked `space`, each trial asking Ray for
    `folds_at_once` of its folds at a time; returns Tune's ResultGrid."""
    config = prepared.config
    dataset_ref = ray.put(prepared.dataset)  # put again on every (re)start: refs die with us
    phases = reuse.reusable_phases(list(space), config.tune.reuse)
    board.say(
        f"raycv: each trial's folds are Ray tasks, {folds_at_once} of them asked for at a "
        "time, on the workers every trial shares"
    )
    shared: dict = {}
    computing = None
    if phases:
        shared, left = plan_shared(
            prepared,
            folder,
            board,
            phases,
            cache,
            resume=resume,
            before="the trials (a trial's fold starts once its fold's are in)",
        )
        if left is not None:
            cap = config.resources.concurrent_folds
            computing = SharedPhases(board, until=phases[-1])  # PHASE_DEPENDS' order
            computing.submit(left.todo, left.work, dataset_ref, shared, left.loaded, cap)
            shared = {**shared, **computing.refs}
    else:
        board.say("raycv: reuse off: the search changes pretraining and stage 1 settings")
    try:
        return _search(prepared, folder, board, space, shared, folds_at_once, resume, dataset_ref)
    finally:
        if computing is not None:
            computing.close()


def _search(prepared, folder, board, space, shared, folds_at_once, resume, dataset_ref):
    """Tune's part of run_tune: the Tuner (or the restored one), fitted."""
    config = prepared.config
    n_folds = len(prepared.plans)
    plan = TrialPlan(
        base=config.to_dict(),
        dataset=dataset_ref,
        fold_of=prepared.fold_of,
        plans=prepared.plans,
        sites=prepared.sites,
        tune_dir=str(folder.path.resolve()),
        shared=shared,
        in_flight=folds_at_once,
    )
    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan), TRIAL_RESOURCES)
    storage = str(folder.path.resolve())
    experiment = Path(storage) / "search"
    if resume and tune.Tuner.can_restore(str(experiment)):
        board.say("raycv: resuming the search; finished trials are kept")
        if getattr(config.tracking, "mlflow", False):
            mlflow_uri(storage, config.tracking)  # Tune restores the callbacks it pickled
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
            # a finished trial's process serves the next trial: every trial asks for the
            # same resources, and its folds run elsewhere (tasks)
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=storage,
            name="search",
            verbose=0,
            # a trial's process that died is restarted, and resumes from its folder (Ray
            # retries a fold whose worker died by itself: fold_tasks.unit_options)
            failure_config=tune.FailureConfig(max_failures=config.resources.max_failures),
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
    for name, value in DEFAULT_LOGGERS_OFF.items():
        os.environ.setdefault(name, value)
    n_folds = len(prepared.plans)
    try:
        started_here = connect(address, verbose, board)
    except BaseException:
        board.close()
        raise
    try:
        # every node must see the trials' folders and the shared phase cache
        check_shared_storage(str(folder.path.resolve()))
        check_shared_storage(str(cache))
        joined = cluster_address(address) is not None
        board.say(
            f"raycv: {'resuming' if resumed else 'starting'} search {config.name!r}: "
            f"{config.tune.num_samples} trials x {n_folds} folds -> {folder}"
        )
        at_once = in_flight(config, n_folds, joined)
        grid = run_tune(prepared, folder, board, space, at_once, resumed, cache)
    finally:
        board.close()
        if started_here:
            stop_ray()
    if grid.num_terminated + grid.num_errors < config.tune.num_samples:
        # Tune ends a search it was told to stop (Ctrl-C) as if it had finished: results
        # of the trials done so far would pass for the search's. raycv's own message says
        # how to go on (--resume), as for an interrupted run
        raise KeyboardInterrupt
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
