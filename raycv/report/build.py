"""`raycv report`: read a finished run or tune folder, write report.html, report.md and
their PNG figures beside them. Reads only the folder's files; never trains."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from raycv.report.ablation import build_ablation_report, is_ablation_folder
from raycv.report.checklist import checklist_section
from raycv.report.document import Document, Figure
from raycv.report.head import head_section
from raycv.report.html import render_html
from raycv.report.load import RunRecord, is_tune_folder, load_run, load_tune
from raycv.report.markdown import render_markdown
from raycv.report.preview import preview_sections
from raycv.report.sections import DECISIVE_TITLE, run_sections, tune_sections

log = logging.getLogger(__name__)


def _subtitle(run: RunRecord, extra: str = "") -> str:
    n_patients = len(np.unique(run.patient_id))
    parts = [
        f"{len(run.predictions)} samples, {n_patients} patients, "
        f"{len(np.unique(run.folds))} outer folds",
        "classes " + " < ".join(run.classes),
        f"kappa {run.kappa_weights}",
    ]
    provenance = run.path / "provenance.json"
    if provenance.is_file():
        p = json.loads(provenance.read_text())
        when = str(p.get("ended", "?")).replace("T", " ")
        parts.append(f"raycv {p.get('raycv_version', '?')}, run ended {when}")
    return " · ".join([extra or str(run.path), *parts])


def build_report(run_dir: Path, n_boot: int = 2000, seed: int = 0) -> list[Path]:
    """Write the report of a run folder (or tune folder) into it; returns the files written:
    report.html, report.md, then the figures."""
    run_dir = Path(run_dir)
    if is_ablation_folder(run_dir):
        doc = build_ablation_report(run_dir)
    elif is_tune_folder(run_dir):
        tune = load_tune(run_dir)
        sections = [head_section(tune.best), *tune_sections(tune, run_dir)]
        sections += run_sections(tune.best, n_boot, seed, run_dir, "best_", "Best trial")
        sections += preview_sections(tune.best, run_dir, "best_")
        sections.append(checklist_section(tune.best, DECISIVE_TITLE, searched=True))
        doc = Document(
            f"raycv search report: {tune.best.name.removesuffix('-best')}",
            _subtitle(tune.best, f"{run_dir} (best trial: best/)"),
            sections,
        )
    else:
        run = load_run(run_dir)
        sections = [head_section(run), *run_sections(run, n_boot, seed, run_dir)]
        sections += preview_sections(run, run_dir)
        sections.append(checklist_section(run, DECISIVE_TITLE))
        doc = Document(f"raycv report: {run.name}", _subtitle(run), sections)
    html, md = run_dir / "report.html", run_dir / "report.md"
    html.write_text(render_html(doc))
    md.write_text(render_markdown(doc))
    pngs = [b.path for s in doc.sections for b in s.blocks if isinstance(b, Figure)]
    return [html, md, *pngs]


def try_build_report(run_dir: Path, n_boot: int = 2000, seed: int = 0) -> list[Path]:
    """build_report for the end of `run` / `tune`: the results are already on disk, so a
    report that fails is a warning (`raycv report` rebuilds it), never a lost run."""
    try:
        return build_report(run_dir, n_boot, seed)
    except Exception as exc:  # noqa: BLE001 - any failure here must not fail the run
        log.warning(
            "the report could not be written (%s); retry with `raycv report %s`",
            exc,
            run_dir,
        )
        return []
