"""A run folder's life, the same whoever writes it: `raycv run`, every tune trial, (next)
every ablation combination.

`start_run` claims the folder (fresh, resumed or replaced; runfolder.RunFolder.claim) and
writes what is known before any fold trains: config.yaml and folds.csv. `finish_run`
writes what the folds computed (predictions.csv, history.csv, summary.json), makes the
folder stand alone (phases loaded from a shared cache are copied in, so `raycv predict`
finds every model), records provenance.json with what loading the data found, and
uploads it. A folder written by any of them is one thing: the contract tests check them
all the same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from raycv.folds import folds_table
from raycv.prepared import Prepared
from raycv.provenance import provenance
from raycv.results import (
    FoldResult,
    fold_summary,
    history_table,
    model_names,
    predictions_table,
    summarize,
)
from raycv.runfolder import RESUMABLE_CHANGES, RunFolder
from raycv.statistics import with_statistics
from raycv.subgroup_data import subgroup_table
from raycv.summary import RunSummary


def start_run(
    folder: RunFolder,
    prepared: Prepared,
    *,
    resume: bool,
    overwrite: bool,
    resumable: tuple[str, ...] = RESUMABLE_CHANGES,
) -> bool:
    """Claim `folder` for the prepared run and write config.yaml and folds.csv; True if an
    earlier run in it is being resumed. resumable: the keys a resume may change."""
    resumed = folder.claim(prepared.config, resume, overwrite, resumable)
    folder.write_csv("folds.csv", folds_table(prepared.dataset, prepared.fold_of))
    return resumed


def finish_run(
    folder: RunFolder,
    prepared: Prepared,
    results: list[FoldResult],
    *,
    started: str,
    wall: float,
    executor: str,
    shared: dict[str, dict[str, Path]] | None = None,
) -> RunSummary:
    """Write every result file of a finished run and upload the folder; -> its summary.
    shared: per unit, phase files the folds loaded from elsewhere (tune's cache)."""
    copy_shared_phases(folder, shared or {})
    summary = write_results(prepared, folder, results, wall)
    folder.write_json("provenance.json", run_provenance(prepared, started, executor))
    folder.sync()
    return summary


def write_results(
    prepared: Prepared, folder: RunFolder, results: list[FoldResult], wall: float
) -> RunSummary:
    """predictions.csv, history.csv and summary.json of the folds' results."""
    config, models = prepared.config, model_names(prepared.config)
    results = sorted(results, key=lambda r: (r.repeat, r.fold))
    predictions = predictions_table(prepared.dataset, results, models, config.classes)
    split_by = config.cv.split_by  # leave one site out: fold k is the k-th site
    summary = RunSummary(
        kappa_weights=config.metrics.kappa_weights,
        classes=config.classes,
        models=summarize(predictions, models, config.classes, config.metrics.kappa_weights),
        folds=[fold_summary(r) for r in results],
        wall_seconds=round(wall, 2),
        repeats=config.cv.repeats,
        monitor=config.early_stopping.monitor,
        split_by=split_by,
        sites=prepared.sites,
    )
    # calibration, t-tests, subgroups
    summary = with_statistics(summary, predictions, subgroup_table(config))
    folder.write_csv("predictions.csv", predictions)
    folder.write_csv("history.csv", history_table(results))
    folder.write_json("summary.json", summary.to_json())
    return summary


def run_provenance(prepared: Prepared, started: str, executor: str) -> dict:
    """provenance.json: versions, machine, command line and times, what loading the data
    found (its layout, warnings, and the visits data.missing_images: drop left out), and
    the content of the image backbones' starting weights files (sha256)."""
    # here, not at the top: a search's trial process writes this but never needs torch
    from raycv.models import weights as weights_mod

    dataset = prepared.dataset
    record = provenance(dataset.fingerprint(), started, executor)
    if digests := weights_mod.digests(prepared.config):
        record["image_weights"] = digests
    notes = dataset.notes
    record["data"] = {
        "layout": notes.get("layout"),
        "warnings": list(notes.get("warnings", [])),
        "dropped": notes.get("dropped", {}),  # per modality
    }
    return record


def copy_shared_phases(folder: RunFolder, shared: dict[str, dict[str, Path]]) -> None:
    """Copy phase files a run loaded from a shared cache into its own checkpoints, so the
    folder holds every model its predictions came from."""
    for unit, files in shared.items():
        for stem, path in files.items():
            target = folder.fold_dir(unit) / f"{stem}.pt"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
