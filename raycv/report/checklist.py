"""The appendix: what a reader applying TRIPOD+AI (Collins et al., BMJ 2024) or CLAIM
(Mongan et al., Radiology: AI 2020; 2024 update) looks for, and where this report shows it.

Not a filled-in checklist (most items are about the study, which only its authors can
describe): a map from the items this run can answer to the sections that answer them.
"""

from __future__ import annotations

from raycv.report.document import Paragraph, Section, Table
from raycv.report.head import TITLE as HEAD
from raycv.report.load import RunRecord
from raycv.report.subgroups import TITLE as SUBGROUPS

TITLE = "Appendix: reporting checklist (TRIPOD+AI, CLAIM)"


def checklist_rows(run: RunRecord, comparison_title: str, searched: bool) -> list[list[str]]:
    split_by = run.config.cv.split_by
    subgroups = list(run.summary.subgroups or {})
    return [
        [
            "Partitioning of the data by patient",
            f"{HEAD} (outer cross-validation)",
            "outer folds and every inner split (validation, forest inner CV) are grouped by "
            "patient: no patient is in two folds; folds.csv lists each visit's fold",
        ],
        [
            "Validation type",
            f"{HEAD}",
            "internal-external: leave one site out by " + repr(split_by)
            if split_by
            else "internal: cross-validation",
        ],
        [
            "How settings were chosen",
            "Search" if searched else HEAD,
            "searched with raycv tune on inner validation; the nested estimate is the unbiased one"
            if searched
            else "fixed in config.yaml before the run; early stopping, the stage 1 / 2 choice "
            "and learned fusion weights use each fold's inner validation, never its test fold",
        ],
        [
            "Missing data",
            HEAD,
            "missing feature values imputed, fitted on each training fold; visits without an "
            "image as data.missing_images says",
        ],
        [
            "Discrimination",
            "Models compared; Figures",
            "Cohen's kappa per fold and pooled, accuracy, macro F1, confusion matrices",
        ],
        [
            "Calibration",
            "Models compared (Brier, ECE); Figures (reliability diagrams)",
            "over all out-of-fold predictions of each model",
        ],
        [
            "Uncertainty",
            f"Models compared (95% CI); {comparison_title}",
            "patient bootstrap intervals; Nadeau & Bengio's corrected resampled t-test over "
            "folds for each model comparison",
        ],
        [
            "Subgroups (fairness)",
            SUBGROUPS,
            f"kappa by {', '.join(subgroups)}"
            if subgroups
            else "none requested (report.subgroups): the section says how to add them",
        ],
        [
            "Overfitting",
            "Overfitting check",
            "train against inner-validation kappa per fold and phase",
        ],
        [
            "Reproducibility",
            HEAD,
            "raycv version and commit, data fingerprint, seeds; config.yaml reruns the run",
        ],
    ]


def checklist_section(run: RunRecord, comparison_title: str, searched: bool = False) -> Section:
    return Section(
        TITLE,
        [
            Paragraph(
                "Where this report answers the items of TRIPOD+AI (prediction models, "
                "BMJ 2024) and CLAIM (AI in medical imaging) that a cross-validation can "
                "answer. Items about the study itself (participants, setting, outcome "
                "definition, sample size rationale, intended use) are the authors' to write."
            ),
            Table(
                columns=["item", "where", "this run"],
                rows=checklist_rows(run, comparison_title, searched),
                text_columns=(0, 1, 2),
            ),
        ],
    )
