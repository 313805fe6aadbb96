"""The report's head: what was run, so a reader can judge the numbers without opening
config.yaml — the split, the settings that change results, the time it took, the raycv
version and the data fingerprint (provenance.json)."""

from __future__ import annotations

import json

from raycv.config import Config
from raycv.phases import TRAINED
from raycv.report.document import Section, Table
from raycv.report.load import RunRecord

TITLE = "What was run"


def provenance(run: RunRecord) -> dict:
    path = run.path / "provenance.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def split_text(run: RunRecord) -> str:
    """How the outer folds were made: folds x repeats, or one site per fold."""
    cv = run.config.cv
    n_patients = len(set(run.patient_id))
    if cv.split_by:
        sites = run.summary.sites or []
        named = f": {', '.join(map(str, sites))}" if sites else ""
        return (
            f"leave one site out: one outer fold per value of {cv.split_by!r} "
            f"({cv.folds} sites{named}; cv.split_by), {n_patients} patients; inner splits "
            "grouped by patient"
        )
    source = (
        f"from {cv.folds_file} (cv.folds_file)"
        if cv.folds_file
        else f"stratified by label, cv.seed {cv.seed}"
    )
    times = f"{cv.folds} folds × {cv.repeats} repeat{'s' if cv.repeats != 1 else ''}"
    return f"{times}, grouped by patient ({n_patients} patients), {source}"


def _epochs(config: Config) -> str:
    parts = []
    for phase in TRAINED:  # each has its config section of the same name
        p = getattr(config, phase)
        parts.append(f"{phase} {p.epochs} (patience {p.patience})")
    monitor = config.early_stopping.monitor
    return "; ".join(parts) + f"; early stopping on inner-validation {monitor}"


def _fusion(config: Config, has_fusion: bool) -> str:
    if not has_fusion:
        return "none (one branch)"
    weights = config.fusion.weights or {}
    shown = ", ".join(f"{m} {w:.2f}" for m, w in weights.items())
    if config.fusion.mode == "learned":
        return f"learned per fold on the inner-validation split (start: {shown})"
    return f"fixed weights: {shown}"


def _wall(seconds) -> str:
    if seconds is None:
        return "n/a"
    minutes, secs = divmod(round(float(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def settings_rows(run: RunRecord) -> list[list[str]]:
    config = run.config
    data, stage2, forest = config.data, config.stage2, config.metadata
    prov = provenance(run)
    commit = prov.get("git_commit")
    version = f"raycv {prov.get('raycv_version', '?')}" + (f" (commit {commit})" if commit else "")
    cohort = data.synthetic
    source = data.path or (
        f"the built-in synthetic cohort ({cohort.patients} patients, seed {cohort.seed})"
    )
    return [
        ["outer cross-validation", split_text(run)],
        [
            "inner validation",
            f"{config.cv.inner_val_fraction:.0%} of each training fold's patients: early "
            "stopping and every in-fold choice (stage 1 or 2, learned weights)",
        ],
        [
            "stage 2",
            f"lr {stage2.lr}, unfreeze_depth {stage2.unfreeze_depth}, BatchNorm {stage2.batchnorm}",
        ],
        ["fusion", _fusion(config, run.has_fusion)],
        ["epochs (most)", _epochs(config)],
        [
            "random forest",
            f"{forest.n_estimators} trees, max_depth {forest.max_depth or 'unlimited'}, "
            f"class_weight {forest.class_weight}",
        ],
        [
            "data",
            f"{source}; modalities {', '.join(config.modalities)}; visits without an image: "
            f"{data.missing_images}; fingerprint {prov.get('dataset_fingerprint', 'n/a')}",
        ],
        [
            "wall time",
            f"{_wall(run.summary.wall_seconds)} (executor {prov.get('executor', '?')})",
        ],
        ["software", f"{version}; run ended {str(prov.get('ended', '?')).replace('T', ' ')}"],
    ]


def head_section(run: RunRecord) -> Section:
    table = Table(
        columns=["setting", "value"],
        rows=settings_rows(run),
        text_columns=(0, 1),
        caption="From the run folder's config.yaml, summary.json and provenance.json.",
    )
    return Section(TITLE, [table])
