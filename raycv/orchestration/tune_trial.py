"""One trial of `raycv tune`: a full cross-validation of one setting, reported to Tune.

The middle of the three layers of Ray's train/tune interop: the fold task below it
(fold_tasks.py, which runs the sequential executor's fold) knows nothing of Tune; the
driver above it (tune.py) builds the Tuner. A trial's process only asks for its folds and
reports them to Tune, in fold order, so ASHA's rungs compare the same folds: each fold is
a Ray task on the pool of workers every trial and the shared phases use, so the trial
holds no CPU or GPU itself, and a fold starts as soon as its shared phases are in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from raycv.folds import FoldSplit
from raycv.lifecycle import finish_run, start_run
from raycv.metrics import kappa
from raycv.orchestration.fold_tasks import run_units
from raycv.orchestration.tune_results import OBJECTIVE
from raycv.orchestration.tune_space import trial_config
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.provenance import now
from raycv.results import FoldResult
from raycv.runfolder import RunFolder


@dataclass
class TrialPlan:
    """What every trial of a search shares; the driver computes it once."""

    base: dict  # the search's resolved Config as a dict; a trial overrides searched keys
    dataset: Any  # ObjectRef of the Dataset (put again on every (re)start of the search)
    fold_of: np.ndarray  # (R, N) outer fold per sample in each repeat
    plans: list[FoldSplit]
    sites: list[str] | None  # leave one site out: the site of each fold, in order
    tune_dir: str  # the tune folder; trial folders are <tune_dir>/trials/<trial id>
    # per unit: the task computing its shared phases (fold_tasks.SharedPhases), or their
    # files in the cache; empty: no phase is shared
    shared: dict[str, Any]
    in_flight: int  # how many of its folds a trial asks of Ray at once (tune.in_flight)


def fold_scores(result: FoldResult, dataset, kappa_weights: str) -> tuple[float, float]:
    """(inner-validation fusion kappa, outer test fusion kappa) of one fold."""
    y = dataset.y[result.test_index]
    n = result.probs["fusion"].shape[1]
    outer = kappa(y, result.probs["fusion"].argmax(1), n, kappa_weights)
    return result.val_kappa["fusion"], outer


def trial_metrics(
    done: dict[str, FoldResult], units: list[str], dataset, kappa_weights: str
) -> dict:
    """What a trial reports after the (repeat, fold) units `units`, its first ones."""
    scores = [fold_scores(done[u], dataset, kappa_weights) for u in units]
    n_done = len(units)
    val, outer = zip(*scores, strict=True)
    metrics = {
        "folds_done": n_done,
        OBJECTIVE: float(np.mean(val)),
        "val_kappa_std": float(np.std(val)),
        "outer_kappa_mean": float(np.mean(outer)),
        "outer_kappa_std": float(np.std(outer)),
    }
    for unit, v, o in zip(units, val, outer, strict=True):
        metrics[f"val_kappa_{unit}"] = float(v)
        metrics[f"outer_kappa_{unit}"] = float(o)
    return metrics


def run_trial(params: dict, *, plan: TrialPlan) -> None:
    """A Tune function trainable: one full cross-validation of one setting."""
    config = trial_config(plan.base, params)
    dataset = ray.get(plan.dataset)
    prepared = Prepared(config, dataset, plan.fold_of, plan.plans, plan.sites)
    trial_id = tune.get_context().get_trial_id()
    folder = RunFolder(Path(plan.tune_dir) / "trials" / trial_id)
    started = now()
    # a trial Tune restarted (its process died) continues the folder it had begun
    start_run(folder, prepared, resume=folder.exists(), overwrite=False)
    units = [p.unit for p in prepared.plans]
    board = ProgressBoard(units, folder.log_path, quiet=True)
    n_folds = len(units)
    done: dict[str, FoldResult] = {}
    reported = [0]

    def on_result(result: FoldResult) -> None:
        done[result.unit] = result
        # report units in (repeat, fold) order, so ASHA's rungs compare the same folds
        while reported[0] < n_folds and units[reported[0]] in done:
            reported[0] += 1
            if reported[0] == n_folds:
                # the last report can be the trial's end: a scheduler may stop it there
                # (ASHA at max_t), and Tune ends a stopped trial inside tune.report
                finish_folder([done[u] for u in units])
            first = units[: reported[0]]
            tune.report(trial_metrics(done, first, dataset, config.metrics.kappa_weights))

    def finish_folder(results: list[FoldResult]) -> None:
        # wall: the trial's own fold seconds (its folds share the cluster with other trials)
        wall = sum(r.seconds for r in results)
        shared = {
            u: ray.get(s) if isinstance(s, ray.ObjectRef) else s for u, s in plan.shared.items()
        }
        finish_run(
            folder,
            prepared,
            results,
            started=started,
            wall=wall,
            executor="ray-tune",
            shared=shared,
        )

    try:
        board.event(f"tune: the trial's folds run as Ray tasks, up to {plan.in_flight} at once")
        run_units(
            prepared, folder, plan.dataset, plan.shared, plan.in_flight, on_result, board.started
        )
    finally:
        board.close()
