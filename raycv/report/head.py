"""The report's head: what was run, so a reader can judge the numbers without opening
config.yaml — the split, the settings that change results, the time it took, the raycv
version and the data fingerprint (provenance.json)."""

from __future__ import annotations

import json

from raycv.report.document import Section, Table
from raycv.report.load import RunRecord

TITLE = "What was run"


def provenance(run: RunRecord) -> dict:
    path = run.path / "provenance.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def split_text(run: RunRecord) -> str:
    """How the outer folds were made: folds x repeats, or one site per fold."""
    cv = run.config.get("cv", {})
    n_patients = len(set(run.patient_id))
    folds = cv.get("folds")
    if cv.get("split_by"):
        sites = run.summary.get("sites") or []
        named = f": {', '.join(map(str, sites))}" if sites else ""
        return (
            f"leave one site out: one outer fold per value of {cv['split_by']!r} "
            f"({folds} sites{named}; cv.split_by), {n_patients} patients; inner splits "
            "grouped by patient"
        )
    repeats = cv.get("repeats", 1)
    source = (
        f"from {cv['folds_file']} (cv.folds_file)"
        if cv.get("folds_file")
        else (f"stratified by label, cv.seed {cv.get('seed', 0)}")
    )
    times = f"{folds} folds × {repeats} repeat{'s' if repeats != 1 else ''}"
    return f"{times}, grouped by patient ({n_patients} patients), {source}"


def _epochs(config: dict) -> str:
    parts = []
    for phase in ("pretrain", "stage1", "stage2"):
        p = config.get(phase, {})
        parts.append(f"{phase} {p.get('epochs')} (patience {p.get('patience')})")
    monitor = config.get("early_stopping", {}).get("monitor", "val_kappa")
    return "; ".join(parts) + f"; early stopping on inner-validation {monitor}"


def _fusion(config: dict, has_fusion: bool) -> str:
    if not has_fusion:
        return "none (one branch)"
    fusion = config.get("fusion", {})
    weights = fusion.get("weights") or {}
    shown = ", ".join(f"{m} {w:.2f}" for m, w in weights.items())
    if fusion.get("mode") == "learned":
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
    data = config.get("data", {})
    stage2 = config.get("stage2", {})
    forest = config.get("metadata", {})
    prov = provenance(run)
    commit = prov.get("git_commit")
    version = f"raycv {prov.get('raycv_version', '?')}" + (f" (commit {commit})" if commit else "")
    source = data.get("path") or "the built-in synthetic cohort ({patients} patients, seed {seed})"
    source = source.format(**data.get("synthetic", {})) if not data.get("path") else source
    inner = config.get("cv", {}).get("inner_val_fraction")
    return [
        ["outer cross-validation", split_text(run)],
        [
            "inner validation",
            f"{inner:.0%} of each training fold's patients: early stopping and every in-fold "
            "choice (stage 1 or 2, learned weights)"
            if isinstance(inner, float)
            else "n/a",
        ],
        [
            "stage 2",
            f"lr {stage2.get('lr')}, unfreeze_depth {stage2.get('unfreeze_depth')}, "
            f"BatchNorm {stage2.get('batchnorm', 'frozen')}",
        ],
        ["fusion", _fusion(config, run.has_fusion)],
        ["epochs (most)", _epochs(config)],
        [
            "random forest",
            f"{forest.get('n_estimators')} trees, max_depth "
            f"{forest.get('max_depth') or 'unlimited'}, "
            f"class_weight {forest.get('class_weight')}",
        ],
        [
            "data",
            f"{source}; modalities {', '.join(data.get('modalities') or [])}; visits without "
            f"an image: {data.get('missing_images', 'refuse')}; fingerprint "
            f"{prov.get('dataset_fingerprint', 'n/a')}",
        ],
        [
            "wall time",
            f"{_wall(run.summary.get('wall_seconds'))} (executor {prov.get('executor', '?')})",
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
