"""The subgroup section: kappa per value of each `report.subgroups` column, as summary.json
holds it (raycv.statistics.subgroups computed it from predictions.csv and the dataset's
metadata), a table and a forest plot per column."""

from __future__ import annotations

from pathlib import Path

from raycv.report import figures
from raycv.report.document import Figure, Paragraph, Section, Table
from raycv.report.load import RunRecord

TITLE = "Subgroups"


def _cell(score: dict) -> str:
    if score["kappa"] is None:
        return "n/a" if score["n"] else "—"
    if score["ci95"] is None:
        return f"{score['kappa']:.3f} [CI n/a]"
    low, high = score["ci95"]
    return f"{score['kappa']:.3f} [{low:.3f}, {high:.3f}]"


def subgroup_section(run: RunRecord, out_dir: Path, prefix: str = "") -> Section:
    section = Section(TITLE)
    groups = run.summary.subgroups or {}
    asked = list(run.config.report.subgroups)
    if not groups:
        how = f"`raycv report {run.path} --set report.subgroups=[{','.join(asked or ['age', 'sex'])}]`"
        text = (
            f"report.subgroups names {asked}, but summary.json holds no subgroups (written "
            f"before raycv computed them); {how} computes them from this folder, without "
            "training."
            if asked
            else f"No subgroups were requested. {how} adds kappa per value of those metadata "
            "columns from this folder, without training."
        )
        section.blocks.append(Paragraph(text))
        return section
    boot = run.summary.subgroups_bootstrap or {}
    section.blocks.append(
        Paragraph(
            f"Kappa ({run.kappa_weights}) per value of each column, pooled over that group's "
            f"out-of-fold prediction rows, with a 95% CI from {boot.get('resamples', '?')} "
            "bootstrap resamples of the group's patients. Numeric columns are cut into "
            "quartiles of their visits' values, each labelled by the range it holds (a column "
            "with at most four values keeps one group per value); 'missing' holds the visits "
            "without a value. n/a: kappa undefined in the group (one class only). A small "
            "group has a wide interval: compare intervals, not point estimates."
        )
    )
    pooled = {m: s.kappa_pooled for m, s in run.summary.models.items()}
    for column, values in groups.items():
        models = list(next(iter(values.values()))) if values else []
        rows = [
            [value, str(max(s["n"] for s in scores.values())), *(_cell(scores[m]) for m in models)]
            for value, scores in values.items()
        ]
        section.blocks.append(
            Table(
                columns=[column, "rows", *models],
                rows=rows,
                text_columns=(0,),
                caption=(
                    f"Kappa by {column} [95% CI]. Rows: the group's prediction rows (an image "
                    "model under data.missing_images: mask predicts fewer)."
                ),
            )
        )
        path = out_dir / f"{prefix}subgroups_{_file_name(column)}.png"
        figure = figures.subgroup_forest(column, values, pooled, run.kappa_weights, path)
        section.blocks.append(
            Figure(
                figure,
                f"Kappa by {column}: each model's estimate and 95% CI per group; dotted "
                "lines: each model's pooled kappa over all visits.",
            )
        )
    return section


def _file_name(column: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in column)
