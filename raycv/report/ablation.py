"""The report of an ablation folder: the combinations ranked with their intervals, each
against the reference (both p-values), the nested estimate of choosing one beside the
chosen one's own kappa, and which phases the combinations shared. Read from the folder's
files (combinations.csv, comparisons.csv, summary.json); never trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from raycv.ablation import AblationSummary, read_ablation
from raycv.report.document import Document, Figure, Paragraph, Section, Table, number
from raycv.report.figures import DPI


def is_ablation_folder(folder: Path) -> bool:
    return (Path(folder) / "combinations.csv").is_file()


def ranked(summary: AblationSummary) -> list[dict]:
    """The combinations' rows, best mean kappa first (undefined last)."""
    rows = list(summary.combinations.values())
    return sorted(rows, key=lambda r: -np.inf if r["kappa_mean"] is None else -r["kappa_mean"])


def ranking_table(summary: AblationSummary) -> str:
    """The terminal's table: combinations by mean outer kappa, the reference marked."""
    rows = ranked(summary)
    width = max(len("combination"), *(len(r["combination"]) for r in rows)) + 2
    head = f"{'combination':<{width}}{'mean +- std':>15}{'pooled [95% CI]':>24}{'inner val':>11}"
    lines = ["kappa by combination (outer folds; * the reference)", head, "-" * len(head)]
    for r in rows:
        name = r["combination"] + (" *" if r["combination"] == summary.reference else "")
        interval = f"[{number(r['kappa_pooled_ci_low'])}, {number(r['kappa_pooled_ci_high'])}]"
        lines.append(
            f"{name:<{width}}"
            f"{number(r['kappa_mean']) + ' +- ' + number(r['kappa_std']):>15}"
            f"{number(r['kappa_pooled']) + ' ' + interval:>24}"
            f"{number(r['inner_val_kappa_mean']):>11}"
        )
    best = summary.combinations[summary.best_by_inner_val]
    lines += [
        "",
        f"best by inner validation: {summary.best_by_inner_val} (its own mean kappa "
        f"{number(best['kappa_mean'])}, optimistic); nested estimate of choosing the best: "
        f"{number(summary.nested_kappa)}",
    ]
    return "\n".join(lines)


def build_ablation_report(folder: Path) -> Document:
    """The report's blocks; the forest plot is written beside it."""
    folder = Path(folder)
    summary = read_ablation(folder)
    comparisons = pd.read_csv(folder / "comparisons.csv")
    rows = ranked(summary)
    classes = [c.removeprefix("f1_") for c in rows[0] if c.startswith("f1_")]
    ranking = Table(
        [
            "combination",
            "modalities",
            "kappa mean +- std",
            "pooled",
            "95% CI",
            "inner val",
            "macro F1",
            *[f"F1 {c}" for c in classes],
            "Brier",
            "ECE",
            "visits",
        ],
        [
            [
                r["combination"]
                + (" (reference)" if r["combination"] == summary.reference else ""),
                str(r["n_modalities"]),
                f"{number(r['kappa_mean'])} +- {number(r['kappa_std'])}",
                number(r["kappa_pooled"]),
                f"[{number(r['kappa_pooled_ci_low'])}, {number(r['kappa_pooled_ci_high'])}]",
                number(r["inner_val_kappa_mean"]),
                number(r["macro_f1_mean"]),
                *[number(r[f"f1_{c}"]) for c in classes],
                number(r["brier"]),
                number(r["ece"]),
                str(r["n_predicted"]),
            ]
            for r in rows
        ],
        "Each combination's model (its fusion, or its single model) on the outer folds: "
        "mean over (repeat, fold) units, pooled kappa with its 95% patient-bootstrap CI, "
        "mean inner-validation kappa, pooled per-class F1, calibration.",
    )
    forest = forest_plot(rows, summary.reference, folder / "ablation_forest.png")
    against = Table(
        ["combination", "reference", "mean difference", "t", "df", "p", "p (Holm)", "95% CI"],
        [
            [
                str(c["combination"]),
                str(c["reference"]),
                number(_value(c["mean_difference"])),
                number(_value(c["t"]), 2),
                str(c["df"]),
                number(_value(c["p_value"]), 4),
                number(_value(c["p_holm"]), 4),
                f"[{number(_value(c['ci95_low']))}, {number(_value(c['ci95_high']))}]",
            ]
            for c in comparisons.to_dict("records")
        ],
        "Per-unit kappa differences against the reference on the visits both predict: "
        "Nadeau & Bengio's corrected resampled t-test; p (Holm) adjusts for every row at once.",
        text_columns=(0, 1),
    )
    best = summary.combinations[summary.best_by_inner_val]
    choosing = [
        Paragraph(
            f"Chosen by mean inner-validation kappa: {summary.best_by_inner_val}, whose own "
            f"mean outer kappa is {number(best['kappa_mean'])}. That figure is optimistic: the "
            f"choice saw every unit. The nested estimate (per unit, the combination best on "
            f"that unit's inner validation, scored on its outer fold) is "
            f"{number(summary.nested_kappa)}.",
            strong=True,
        ),
        Table(
            ["unit", "chosen", "inner val", "outer"],
            [
                [
                    f"repeat {p['repeat']} fold {p['fold']}",
                    str(p["combination"]),
                    number(p["val_kappa"]),
                    number(p["outer_kappa"]),
                ]
                for p in summary.nested_per_fold
            ],
            text_columns=(0, 1),
        ),
    ]
    shared = ", ".join(summary.shared_phases) or "none"
    sections = [
        Section(
            "Combinations, ranked",
            [ranking, Figure(forest, "Pooled kappa and 95% CI per combination")],
        ),
        Section(f"Against the reference ({summary.reference})", [against]),
        Section("Choosing a combination", choosing),
        Section(
            "Computed once",
            [
                Paragraph(
                    f"Shared by every combination, computed once per fold: {shared}. Each "
                    "combination's folder under combos/ is a complete run folder: `raycv run` "
                    "of its config.yaml reproduces it; `raycv report` and `raycv predict` take it."
                )
            ],
        ),
    ]
    return Document(
        f"raycv ablation report: {folder.name}",
        f"{folder} · {len(rows)} combinations · {summary.wall_seconds:.0f} s",
        sections,
    )


def forest_plot(rows: list[dict], reference: str, path: Path) -> Path:
    """Pooled kappa and its 95% patient-bootstrap interval per combination, best on top."""
    fig = MplFigure(figsize=(7.0, 1.2 + 0.35 * len(rows)))
    ax = fig.subplots()
    for i, r in enumerate(rows):
        colour = "C3" if r["combination"] == reference else "C0"
        if r["kappa_pooled_ci_low"] is not None and r["kappa_pooled_ci_high"] is not None:
            ax.hlines(i, r["kappa_pooled_ci_low"], r["kappa_pooled_ci_high"], color=colour)
        if r["kappa_pooled"] is not None:
            ax.plot(r["kappa_pooled"], i, "o", color=colour)
    ax.set_yticks(range(len(rows)), [r["combination"] for r in rows])
    ax.invert_yaxis()
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("pooled kappa, 95% patient-bootstrap CI (red: the reference)")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _value(x):
    """A CSV cell: NaN (an empty cell) -> None."""
    return None if x is None or (isinstance(x, float) and x != x) else x
