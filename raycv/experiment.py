"""`run_cv`: validate everything, start the run folder, run the folds, finish the folder
(lifecycle.py: the same start and finish as every tune trial's).

Compute only: the report and the tracking of the finished folder are the caller's
(publish.py), so nothing here imports the report.

Shaped like scikit-learn's cross_validate: check once at the boundary, dispatch one
`run_fold` per split through an executor, get plain records back, then aggregate.
The executor only decides where and when folds run; the numbers are the same.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raycv import config as config_mod
from raycv import frozen_features
from raycv.checkpoints import PhaseStore
from raycv.config import Config
from raycv.data import load_dataset, load_table, resolve_config
from raycv.errors import DataError
from raycv.folds import (
    FoldSplit,
    outer_splits,
    plan_folds,
    read_folds_file,
    site_names,
    split_column,
)
from raycv.lifecycle import finish_run, start_run
from raycv.models.choice import check_image_models
from raycv.phases import RESULT
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.provenance import now
from raycv.results import FoldResult
from raycv.runfolder import RunFolder
from raycv.subgroup_data import check_subgroups
from raycv.summary import RunSummary
from raycv.tracking import check_tracking


def prepare(config: Config, output: str | Path | None = None) -> Prepared:
    """Load and check data and splits; raises before any training or writing (`output`,
    the run's folder, places the cache of frozen backbone features beside it)."""
    config = resolve_config(config)
    # the resolved config is what config.yaml holds: check it as a whole, weights spelled out
    config = config_mod.from_dict(config.to_dict())
    config.fusion.weights = config.fusion_weights()
    check_tracking(config.tracking)  # a missing extra is refused before any training
    check_subgroups(config)  # an unknown report.subgroups column is refused before training
    weights = check_image_models(config)  # backbones and weights files, before any data
    dataset = load_dataset(config)
    sites = None  # the split column's values with cv.split_by (which excludes a folds_file)
    if config.cv.folds_file:
        fold_of = read_folds_file(config.cv.folds_file, dataset.sample_id, dataset.patient_id)
        counts = sorted({int(folds.max()) + 1 for folds in fold_of})
        if len(counts) > 1:
            raise DataError(
                f"cv.folds_file {config.cv.folds_file!r}: its repeats have {counts} folds; "
                "every repeat needs the same number"
            )
        cv = dataclasses.replace(config.cv, folds=counts[0], repeats=len(fold_of))
    else:
        # leave one site out: any column of the metadata table, a feature of the run or not
        split_by = config.cv.split_by
        sites = split_column(load_table(config), dataset, split_by) if split_by else None
        fold_of = outer_splits(dataset, config, sites)  # (R, N); leave one site out: one row
        cv = dataclasses.replace(config.cv, folds=int(fold_of.max()) + 1)
    config = dataclasses.replace(config, cv=cv)  # what config.yaml says: folds spelled out
    names = site_names(sites) if sites is not None else None
    plans = plan_folds(dataset, fold_of, config)
    # last: every refusal above comes before this one forward pass over the images
    cache = feature_cache(config, output)
    frozen_features.attach(config, dataset, weights, cache, say=_say)
    return Prepared(config, dataset, fold_of, plans, names)


def feature_cache(config: Config, output: str | Path | None) -> Path | None:
    """Where frozen backbone features are kept: the phase cache tune and ablate share
    (tune.cache_dir, else .raycv-cache beside the run folder); None for a URI output."""
    if config.tune.cache_dir:
        return Path(config.tune.cache_dir)
    folder = output or default_output(config)
    if "://" in str(folder):
        return None
    return Path(folder).resolve().parent / ".raycv-cache"


def _say(line: str) -> None:
    print(f"raycv: {line}", file=sys.stderr, flush=True)


def reuse_finished_folds(
    prepared: Prepared, folder: RunFolder, board: ProgressBoard
) -> tuple[dict[str, FoldResult], list[FoldSplit]]:
    """Results of folds an earlier (interrupted) run finished, and the plans still to run."""
    done, pending = {}, []
    for plan in prepared.plans:
        state = PhaseStore(folder.fold_dir(plan.unit)).load(RESULT)
        if state is not None:  # never retrained
            done[plan.unit] = FoldResult.from_dict(state)
            board.fold_done(plan.unit, "done earlier (reused)")
        else:
            pending.append(plan)
    return done, pending


# An executor runs every fold and returns their results, in any order.
Executor = Callable[[Prepared, RunFolder, ProgressBoard], list[FoldResult]]


@dataclass
class RunOutcome:
    folder: RunFolder  # written and uploaded; still open for the report (publish.py)
    summary: RunSummary


def default_output(config: Config) -> Path:
    return Path("runs") / config.name


def run_cv(
    prepared: Prepared,
    executor: Executor,
    executor_name: str,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stream=None,
) -> RunOutcome:
    config = prepared.config
    started, t0 = now(), time.time()
    folder = RunFolder(output or default_output(config))
    resumed = start_run(folder, prepared, resume=resume, overwrite=overwrite)
    board = ProgressBoard([p.unit for p in prepared.plans], folder.log_path, stream)
    try:
        board.say(
            f"raycv: {'resuming' if resumed else 'running'} {config.name!r}: "
            f"{len(prepared.dataset)} samples, {len(np.unique(prepared.dataset.patient_id))} "
            f"patients, {len(prepared.plans)} folds, executor {executor_name} -> {folder}"
        )
        for line in data_notes(prepared.dataset):  # what loading the data found, kept in run.log
            board.say(f"raycv: data: {line}")
        if config.fusion.mode == "fixed":
            # stage1.epochs would otherwise look ignored: with fixed weights and a frozen
            # image branch no weight can change, so the stage is a single evaluation
            board.say(
                "raycv: stage 1 has nothing to train (fixed fusion weights, frozen image "
                "branch): it is evaluated once per fold, and stage1.epochs does not apply"
            )
        results = executor(prepared, folder, board)
    finally:
        board.close()
    summary = finish_run(
        folder, prepared, results, started=started, wall=time.time() - t0, executor=executor_name
    )
    return RunOutcome(folder, summary)


def data_notes(dataset) -> list[str]:
    """One line per thing a user should know about how their data was read."""
    notes = dataset.notes
    lines = list(notes.get("warnings", []))
    for modality, ids in (notes.get("dropped") or {}).items():
        if ids:
            lines.append(
                f"{len(ids)} visit(s) without a {modality} image dropped "
                f"(data.missing_images: drop; ids in provenance.json)"
            )
    for modality, stats in (notes.get("images") or {}).items():
        without = (stats.get("visits") or {}).get("0", 0)
        if without:
            lines.append(
                f"{without} visit(s) without a {modality} image kept (data.missing_images: "
                f"mask): the {modality} model does not predict them"
            )
    return lines
