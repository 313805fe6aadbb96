"""`raycv tune`: a Ray Tune search in which every trial is a full cross-validation.

Three layers, as in Ray's train/tune interop: the fold worker (fold_worker.py) knows
nothing of Tune; a trial (`_trial`) runs every fold in lanes, as `raycv run` does, and
reports to Tune after each fold in fold order; the driver (`run_tune`) builds the Tuner
around it. A trial with several lanes runs them on Ray Train; a trial whose share of the
cluster is one lane runs it in its own process, which Tune reuses from trial to trial
(a trainer's processes would cost more to start than the stage 2 work they run). Phases
no searched key changes are computed once per fold before the trials start (reuse.py),
and every trial loads them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import ray
from ray import tune

from raycv import config as config_mod
from raycv.config import Config, ConfigError
from raycv.errors import RaycvError, RunFolderError
from raycv.experiment import Prepared, write_results
from raycv.folds import folds_table
from raycv.metrics import kappa
from raycv.orchestration import reuse
from raycv.orchestration.ray_runner import lane_count, run_folds_on_ray
from raycv.orchestration.sequential import run_sequential
from raycv.orchestration.tune_results import OBJECTIVE
from raycv.orchestration.tune_space import default_space, search_space, trial_config
from raycv.progress import ProgressBoard
from raycv.provenance import now, provenance
from raycv.report.tracking import allow_file_store, default_mlflow_uri, import_mlflow
from raycv.results import FoldResult
from raycv.runfolder import RunFolder

log = logging.getLogger(__name__)

TRIAL_MEMORY = 128 * 2**20  # bytes of Ray's logical memory a trial process reserves


# -- one trial ------------------------------------------------------------------------


def fold_scores(result: FoldResult, dataset, kappa_weights: str) -> tuple[float, float]:
    """(inner-validation fusion kappa, outer test fusion kappa) of one fold."""
    y = dataset.y[result.test_index]
    n = result.probs["fusion"].shape[1]
    outer = kappa(y, result.probs["fusion"].argmax(1), n, kappa_weights)
    return result.val_kappa["fusion"], outer


def _trial(
    params: dict, *, base: dict, refs: dict, tune_dir: str, shared: dict, n_lanes: int
) -> None:
    """A Tune function trainable: one full cross-validation of one setting."""
    config = trial_config(base, params)
    dataset = ray.get(refs["dataset"])
    prepared = Prepared(config, dataset, refs["fold_of"], refs["plans"])
    trial_id = tune.get_context().get_trial_id()
    folder = RunFolder(Path(tune_dir) / "trials" / trial_id)
    started = now()
    if not folder.exists():
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.write_text("config.yaml", config_mod.dump(config))
        folder.write_csv("folds.csv", folds_table(dataset, prepared.fold_of))
    board = ProgressBoard(len(prepared.plans), folder.log_path, quiet=True)
    n_folds = len(prepared.plans)
    done: dict[int, FoldResult] = {}
    reported = [0]

    def on_result(result: FoldResult) -> None:
        done[result.fold] = result
        # report folds in fold order, so ASHA's rungs compare the same folds across trials
        while reported[0] in done:
            reported[0] += 1
            if reported[0] == n_folds:
                # the last report can be the trial's end: a scheduler may stop it there
                # (ASHA at max_t), and Tune ends a stopped trial inside tune.report
                finish_folder([done[k] for k in range(n_folds)])
            tune.report(_metrics(done, reported[0], dataset, config.metrics.kappa_weights))

    def finish_folder(results: list[FoldResult]) -> None:
        for k, files in shared.items():  # each trial's folder stands alone (CONTRACTS 3)
            for stem, path in files.items():
                if not folder.fold_dir(k).joinpath(f"{stem}.pt").exists():
                    shutil.copy2(path, folder.fold_dir(k) / f"{stem}.pt")
        write_results(prepared, folder, results, wall=sum(r.seconds for r in results))
        folder.write_json("provenance.json", provenance(refs["fingerprint"], started, "ray-tune"))

    try:
        if n_lanes == 1:
            # the trial's one lane runs here, in the process Tune started (and reuses) for
            # it: no trainer and worker processes to start per trial (see run_tune)
            board.event("tune: the trial runs its folds in its own process (one lane)")
            run_sequential(prepared, folder, board, shared=shared, on_result=on_result)
        else:
            run_folds_on_ray(
                prepared,
                folder,
                board,
                run_prefix=f"{trial_id}-",
                dataset_ref=refs["dataset"],
                shared=shared,
                on_result=on_result,
                n_lanes=n_lanes,
            )
    finally:
        board.close()


def _metrics(done: dict[int, FoldResult], n_done: int, dataset, kappa_weights: str) -> dict:
    scores = [fold_scores(done[k], dataset, kappa_weights) for k in range(n_done)]
    val, outer = zip(*scores, strict=True)
    metrics = {
        "folds_done": n_done,
        OBJECTIVE: float(np.mean(val)),
        "val_kappa_std": float(np.std(val)),
        "outer_kappa_mean": float(np.mean(outer)),
        "outer_kappa_std": float(np.std(outer)),
    }
    for k in range(n_done):
        metrics[f"val_kappa_fold{k}"] = float(val[k])
        metrics[f"outer_kappa_fold{k}"] = float(outer[k])
    return metrics


# -- the driver -----------------------------------------------------------------------


def precompute_shared(
    prepared: Prepared,
    tune_folder: RunFolder,
    board: ProgressBoard,
    dataset_ref,
    cache: Path,
    n_lanes: int,
) -> dict[int, dict[str, Path]]:
    """Compute the reusable phases once per fold (or find them cached); {fold: {stem: path}}."""
    config = prepared.config
    phases = reuse.reusable_phases(config.tune.space or default_space(config), config.tune.reuse)
    if not phases:
        board.say("raycv: reuse off: the search changes pretraining and stage 1 settings")
        return {}
    fingerprint = prepared.dataset.fingerprint()
    keys = {p: reuse.phase_key(p, config, fingerprint, prepared.fold_of) for p in phases}
    files = {
        plan.fold: {
            stem: path
            for p in phases
            for stem, path in reuse.phase_files(
                p, reuse.stems(p, config.image_modalities), cache, keys[p], plan.fold
            ).items()
        }
        for plan in prepared.plans
    }
    missing = [k for k, f in files.items() if not all(p.exists() for p in f.values())]
    if not missing:
        board.say(f"raycv: reusing cached {', '.join(phases)} of every fold ({cache})")
        return files
    board.say(f"raycv: computing {', '.join(phases)} once per fold before the trials")
    todo = dataclasses.replace(prepared, plans=[p for p in prepared.plans if p.fold in missing])
    base = RunFolder(tune_folder.path / "shared")
    shutil.rmtree(base.path, ignore_errors=True)  # stale partial work; phases are in `cache`
    run_folds_on_ray(
        todo,
        base,
        board,
        run_prefix="shared-",
        dataset_ref=dataset_ref,
        until=phases[-1],  # reuse.PHASE_DEPENDS lists phases in the order they run
        n_lanes=n_lanes,
        shared={k: {s: p for s, p in files[k].items() if p.exists()} for k in missing},
    )
    for k in missing:
        for stem, target in files[k].items():
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(base.fold_dir(k) / f"{stem}.pt", target)
    return files


def _scheduler(config: Config, n_folds: int):
    if config.tune.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # time = folds reported in fold order; a rung compares trials on the same folds
        return ASHAScheduler(time_attr="folds_done", max_t=n_folds, grace_period=1)
    return None


def check_search_alg(config: Config) -> None:
    """Refuse a search algorithm whose library is missing, before any work starts.
    (Ray's optuna module imports without optuna and only fails, with an assert, when
    the searcher is built: after the shared phases were computed.)"""
    if config.tune.search_alg == "optuna" and importlib.util.find_spec("optuna") is None:
        raise RaycvError("tune.search_alg=optuna needs optuna: pip install 'raycv[optuna]'")


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
    resume: bool,
    cache: Path,
    joined: bool = False,
):
    """Run (or resume) the search; returns (Tune's ResultGrid, the searched keys)."""
    config = prepared.config
    space = search_space(config)
    n_folds = len(prepared.plans)
    dataset_ref = ray.put(prepared.dataset)  # put again on every (re)start: refs die with us
    # the shared phases run before any trial, on every lane the cluster has
    shared = precompute_shared(
        prepared, folder, board, dataset_ref, cache, lane_count(config, n_folds, joined=joined)
    )
    # concurrent trials share the cluster: each runs its folds in its share of the lanes
    n_lanes = lane_count(config, n_folds, config.tune.max_concurrent_trials, joined)
    refs = {
        "dataset": dataset_ref,
        "fold_of": prepared.fold_of,
        "plans": prepared.plans,
        "fingerprint": prepared.dataset.fingerprint(),
    }
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial,
            base=config.to_dict(),
            refs=refs,
            tune_dir=str(folder.path.resolve()),
            shared=shared,
            n_lanes=n_lanes,
        ),
        trial_resources(config, n_lanes),
    )
    board.say(
        "raycv: each trial runs its folds in turn in its own process (one lane per trial)"
        if n_lanes == 1
        else f"raycv: each trial runs its folds on {n_lanes} Ray Train lanes"
    )
    storage = str(folder.path.resolve())
    experiment = Path(storage) / "search"
    if resume and tune.Tuner.can_restore(str(experiment)):
        board.say("raycv: resuming the search; finished trials are kept")
        tuner = tune.Tuner.restore(
            str(experiment), trainable, resume_unfinished=True, resume_errored=True
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE,
                mode="max",
                num_samples=config.tune.num_samples,
                # a Searcher (Optuna) gets Tune's own cap; the variant generator takes
                # the cap itself (_search_alg), and Tune warns it would ignore this one
                max_concurrent_trials=(
                    config.tune.max_concurrent_trials
                    if config.tune.search_alg != "random"
                    else None
                ),
                search_alg=_search_alg(config),
                scheduler=_scheduler(config, n_folds),
                # a finished one-lane trial's process (torch and the data loaded) serves
                # the next trial: every trial asks for the same resources, and run_fold
                # seeds itself. Not with lanes: a trial stopped early (ASHA) ends in its
                # thread, and only the end of its process also ends the lanes it started
                reuse_actors=n_lanes == 1,
            ),
            run_config=tune.RunConfig(
                storage_path=storage,
                name="search",
                verbose=0,
                # a one-lane trial has no trainer to retry it: Tune restarts it instead,
                # and the restarted trial resumes from the phases in its folder
                failure_config=tune.FailureConfig(
                    max_failures=config.resources.max_failures if n_lanes == 1 else 0
                ),
                callbacks=[
                    TrialProgress(str(folder.log_path.resolve()), n_folds, config.tune.num_samples)
                ],
            ),
        )
    return tuner.fit(), list(space)


def trial_resources(config: Config, n_lanes: int) -> dict:
    """What a trial process reserves. One lane: the fold's own resources, since its folds
    run in it. Several: its lanes ask for the folds' CPUs and GPUs themselves, and even a
    sliver of CPU per trial (0.01) would leave 1.98 of 2 CPUs, so the second trial's 1-CPU
    lane could never start: the trial asks for some memory instead (Tune needs a non-empty
    bundle), which every node has."""
    if n_lanes > 1:
        return {"memory": TRIAL_MEMORY}
    res = config.resources.per_fold
    return {"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu > 0 else {})}


def tune_callbacks(tune_dir: str | Path, tracking, experiment: str) -> list:
    """Ray Tune logger callbacks for a search, as `tracking` asks: MLflow gets one run per
    trial (its config and every per-fold report); TensorBoard event files go to each
    trial's folder under <tune_dir>/search. Pass to tune.RunConfig(callbacks=[...])."""
    callbacks = []
    if getattr(tracking, "mlflow", False):
        import_mlflow()
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        uri = getattr(tracking, "mlflow_uri", None) or default_mlflow_uri(Path(tune_dir))
        allow_file_store(uri)
        callbacks.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment))
    if getattr(tracking, "tensorboard", False):
        # Tune adds one by default too; naming it keeps it when
        # TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1 turns the defaults off
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    return callbacks


class TrialProgress(tune.Callback):
    """One line per trial result in the terminal and the tune folder's run.log.

    Holds a path, not an open file: Tune pickles its callbacks with the experiment state.
    """

    def __init__(self, log_path: str, n_folds: int, n_trials: int):
        self.log_path, self.n_folds, self.n_trials = log_path, n_folds, n_trials
        self.finished = 0

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        with open(self.log_path, "a") as log_file:
            log_file.write(text + "\n")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.say(
            f"trial {trial.trial_id}: {result.get('folds_done')}/{self.n_folds} folds, "
            f"inner-validation fusion kappa {result.get(OBJECTIVE, float('nan')):.3f}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.finished += 1
        self.say(f"trial {trial.trial_id} finished ({self.finished}/{self.n_trials} this session)")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(f"trial {trial.trial_id} FAILED (see its run.log under trials/)")


def tune_experiment(
    prepared: Prepared,
    output: str | None,
    resume: bool,
    overwrite: bool,
    address: str | None,
    verbose: bool,
) -> tuple[RunFolder, dict, str]:
    """`raycv tune`: claim the tune folder, search, write trials.csv, best/, summary."""
    import time

    from raycv.orchestration.ray_runner import cluster_address, start_ray
    from raycv.orchestration.storage_check import check_shared_storage
    from raycv.orchestration.tune_results import (
        publish_best,
        top_table,
        trials_table,
        tune_summary,
    )
    from raycv.report import try_build_report

    config = prepared.config
    if len(config.modalities) < 2:
        raise ConfigError(f"raycv tune searches the fusion; data.modalities={config.modalities}")
    search_space(config)  # refuse a bad space before anything is written or started
    check_search_alg(config)
    folder = RunFolder(output or Path("runs") / f"{config.name}-tune")
    if folder.uri:
        raise RunFolderError("raycv tune writes to a local or shared path, not a URI (yet)")
    t0 = time.time()
    resumed = folder.claim(config, resume, overwrite)
    folder.write_csv("folds.csv", folds_table(prepared.dataset, prepared.fold_of))
    cache = Path(config.tune.cache_dir or folder.path.resolve().parent / ".raycv-cache")
    board = ProgressBoard(len(prepared.plans), folder.log_path)
    if not verbose:
        # Tune's console reporter prints an experiment banner and a TensorBoard hint into
        # Ray's temp folder even at verbose=0; its legacy reporter stays silent there.
        # raycv prints a line per trial result itself (TrialProgress).
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started_here = start_ray(address, verbose)
    try:
        # every node must see the trials' folders and the shared phase cache
        check_shared_storage(str(folder.path.resolve()))
        check_shared_storage(str(cache))
        board.say(
            f"raycv: {'resuming' if resumed else 'starting'} search {config.name!r}: "
            f"{config.tune.num_samples} trials x {len(prepared.plans)} folds -> {folder}"
        )
        grid, searched = run_tune(
            prepared, folder, board, resumed, cache, joined=cluster_address(address) is not None
        )
    finally:
        board.close()
        if started_here:
            ray.shutdown()
    n_folds = len(prepared.plans)
    trials = trials_table(grid, searched, n_folds, folder.path / "trials")
    folder.write_csv("trials.csv", trials)
    summary = tune_summary(trials, searched, n_folds, time.time() - t0)
    publish_best(
        folder.path,
        trials.loc[trials["trial_id"] == summary["best"]["trial_id"]].iloc[0],
        config.name,
    )
    folder.write_json("summary.json", summary)
    try_build_report(folder.path)  # report.html/.md + figures; a failure only warns
    return folder, summary, top_table(trials, searched, summary)
