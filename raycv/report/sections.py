"""What the report says, section by section, built from a run (or tune) record.

Numbers are computed here once and handed to both renderers through document blocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raycv.report import figures
from raycv.report.decisive import fusion_comparisons, modality_name, stage2_kept
from raycv.report.document import Bullets, Figure, Paragraph, Section, Table, number
from raycv.report.load import RunRecord, TuneRecord
from raycv.report.overfitting import GAP_LIMIT, overfitting_check
from raycv.report.scores import confusions_by_model, model_scores
from raycv.report.subgroups import subgroup_section
from raycv.statistics.bootstrap import patient_draws


def _interval_cells(interval, signed: bool = False) -> list[str]:
    estimate = number(interval.estimate)
    if signed and estimate != "n/a":
        estimate = f"{interval.estimate:+.3f}"
    if interval.low is None:
        return [estimate, "n/a"]
    return [estimate, f"[{interval.low:.3f}, {interval.high:.3f}]"]


MAX_FOLD_COLUMNS = 6


def comparison_table(scores, run: RunRecord, n_boot: int) -> Table:
    labels = run.unit_labels()
    # one column per fold while it stays readable; repeated CV: their range instead
    per_unit = len(labels) <= MAX_FOLD_COLUMNS
    n_visits = len(run.y)
    # data.missing_images: mask leaves image models without some visits: say how many
    partial = any(s.n_predicted < n_visits for s in scores)
    rows = []
    for s in scores:
        if per_unit:
            folds = [number(k) for k in s.kappa_per_fold]
        else:
            defined = [k for k in s.kappa_per_fold if k == k]
            folds = [f"{min(defined):.3f} – {max(defined):.3f}" if defined else "n/a"]
        mean = f"{number(s.kappa_mean)} ± {number(s.kappa_std)}"
        pooled = _interval_cells(s.kappa_pooled)
        rows.append(
            [s.model, *folds, mean, *pooled, number(s.accuracy), number(s.macro_f1)]
            + [number(f) for f in s.f1_per_class]
            + [number(s.brier), number(s.ece)]
            + ([str(s.n_predicted)] if partial else [])
        )
    n_patients = len(np.unique(run.patient_id))
    return Table(
        columns=[
            "model",
            *(labels if per_unit else [f"range over {len(labels)} folds"]),
            "mean ± std",
            "pooled",
            "95% CI",
            "accuracy",
            "macro F1",
            *[f"F1 {c}" for c in run.classes],
            "Brier",
            "ECE",
            *(["visits"] if partial else []),
        ],
        rows=rows,
        caption=(
            f"Cohen's kappa ({run.kappa_weights}) on the outer test folds. Pooled: all "
            "out-of-fold predictions together (with repeats: the mean over repeats of each "
            f"repeat's), 95% CI from {n_boot} bootstrap resamples of the {n_patients} "
            "patients. Accuracy, macro F1 and each class's F1: pooled. Calibration of the "
            "probabilities, pooled: Brier score (mean squared distance to the true class, 0 "
            f"is perfect, {1 - 1 / len(run.classes):.3f} is a uniform guess) and ECE "
            "(expected calibration error: the gap between confidence and accuracy over 10 "
            "equal-width bins of the top-class probability, weighted by their rows)."
            + (
                f" Visits: how many of the {n_visits} each model predicts; an image model "
                "has no prediction for a visit without its image (data.missing_images: "
                "mask), and each comparison below uses the visits both models predict."
                if partial
                else ""
            )
        ),
    )


DECISIVE_TITLE = "Does the fusion beat the single modalities?"


def decisive_section(run: RunRecord, scores, confusions, draws) -> Section:
    section = Section(DECISIVE_TITLE)
    comparisons = fusion_comparisons(run, scores, confusions, draws)
    if not comparisons:
        section.blocks.append(
            Paragraph("This run has no fusion (one modality): nothing to compare.")
        )
        return section
    best, stage = comparisons[0], comparisons[-1]
    kept = stage2_kept(run.summary)
    lines = [best.verdict, stage.verdict]
    if kept is not None:
        lines.append(f"stage 2 was kept in {kept[0]} of {kept[1]} folds")
    section.blocks.append(Bullets(lines, strong=True))
    rows = [
        [
            f"fusion − {c.baseline}" + (" (best single modality)" if c is best else ""),
            *_interval_cells(c.difference, signed=True),
            *_corrected_cells(c.corrected),
            c.verdict,
        ]
        for c in comparisons
    ]
    test = comparisons[0].corrected
    section.blocks.append(
        Table(
            columns=[
                "difference",
                "pooled",
                "bootstrap 95% CI",
                "mean over folds",
                "corrected t-test 95% CI",
                "p",
                "in words (bootstrap)",
            ],
            rows=rows,
            text_columns=(0, 6),
            caption=(
                "Pooled: kappa of all out-of-fold predictions, fusion minus the other model, "
                "with a paired patient-level bootstrap (both models scored on the same "
                "resampled patients; 'beats' needs the whole interval above 0). Mean over "
                f"folds: the mean of the J = {test.units} per-fold kappa differences, with "
                f"Nadeau & Bengio's corrected resampled t-test (t with {test.df} degrees of "
                f"freedom, variance (1/J + n_test/n_train) · s², n_test/n_train = "
                f"{number(test.test_train_ratio)}), two-sided p. Each difference uses the "
                "visits both models predict. The best single modality "
                f"({modality_name(best.baseline)}) was picked by pooled kappa."
            ),
        )
    )
    section.blocks.append(Paragraph(TWO_QUESTIONS.format(j=test.units)))
    return section


# what the bootstrap and the corrected t-test each answer, and why few folds widen both
TWO_QUESTIONS = (
    "The two intervals answer different questions. The patient bootstrap asks how the pooled "
    "difference would vary had other patients of the same population been sampled, the "
    "fitted models held fixed. The corrected t-test asks how the difference varies from one "
    "split of the data into training and test folds to another, models retrained each time; "
    "it corrects the plain paired t-test over folds, which ignores that the folds' training "
    "sets overlap and so is too confident. With few folds both are wide: {j} per-fold "
    "differences leave the t-test few degrees of freedom (a large t quantile) and a noisy "
    "s², and each small test fold gives the bootstrap few patients per model fit. More "
    "repeats (cv.repeats) add degrees of freedom, but the correction term n_test/n_train "
    "does not shrink with them: a wide interval is an honest answer for a cohort this size."
)


def _corrected_cells(test) -> list[str]:
    mean = "n/a" if test.mean_difference is None else f"{test.mean_difference:+.3f}"
    if test.ci95 is None:
        return [mean, "n/a (no spread over folds)" if test.units >= 2 else "n/a", "n/a"]
    low, high = test.ci95
    p = f"{test.p_value:.3f}" if test.p_value >= 0.001 else "< 0.001"
    return [mean, f"[{low:.3f}, {high:.3f}]", p]


def overfitting_section(run: RunRecord) -> Section:
    section = Section("Overfitting check: train vs inner-validation kappa")
    if run.history is None:
        section.blocks.append(Paragraph("No history.csv in this run folder."))
        return section
    if run.history.empty:
        section.blocks.append(Paragraph("No network was trained in this run: nothing to check."))
        return section
    check = overfitting_check(run.history, run.monitor)
    flagged = int(check["flagged"].sum())
    section.blocks.append(
        Paragraph(
            f"{flagged} of {len(check)} fold-phases have a train − inner-validation gap "
            f"above {GAP_LIMIT}" + (" (highlighted)." if flagged else "."),
            strong=bool(flagged),
        )
    )
    rows = [
        [
            str(r.fold),
            r.phase,
            str(r.epochs),
            str(r.kept_epoch),
            number(r.train_kappa),
            number(r.val_kappa),
            f"{r.gap:+.3f}" if r.gap == r.gap else "n/a",
            f"gap > {GAP_LIMIT}" if r.flagged else "",
        ]
        for r in check.itertuples()
    ]
    section.blocks.append(
        Table(
            columns=["fold", "phase", "epochs", "kept epoch", "train", "inner val", "gap", "flag"],
            rows=rows,
            flagged=check["flagged"].tolist(),
            text_columns=(1, 7),
            caption=(
                f"Kappa at the epoch early stopping kept (best inner-validation {run.monitor}). "
                "Train kappa is measured during the epoch, with augmentation and dropout on."
            ),
        )
    )
    return section


def run_sections(
    run: RunRecord, n_boot: int, seed: int, out_dir: Path, prefix: str = "", title: str = ""
) -> list[Section]:
    """Comparison table, decisive numbers, subgroups, overfitting check and figures of one
    run."""
    draws = patient_draws(len(np.unique(run.patient_id)), n_boot, seed)
    confusions = confusions_by_model(run)
    scores = model_scores(run, confusions, draws)
    head = f"{title}: " if title else ""
    sections = [
        Section(f"{head}Models compared", [comparison_table(scores, run, n_boot)]),
        decisive_section(run, scores, confusions, draws),
        subgroup_section(run, out_dir, prefix),
        overfitting_section(run),
    ]
    plots = [
        Figure(
            figures.fold_kappas(
                scores, run.kappa_weights, out_dir / f"{prefix}fold_kappas.png", run.unit_labels()
            ),
            "Kappa per outer fold and model; the black line is the mean over folds.",
        ),
        Figure(
            figures.confusion_matrices(run, out_dir / f"{prefix}confusion.png"),
            "Pooled out-of-fold confusion matrices (rows: true class; colour: share of the "
            "true class).",
        ),
        Figure(
            figures.reliability_diagrams(run, out_dir / f"{prefix}reliability.png"),
            "Reliability diagrams: per model, the accuracy of its out-of-fold predictions in "
            "10 equal-width bins of the top-class probability (bars; dots at each bin's mean "
            "confidence). On the dashed diagonal the probabilities mean what they say; below "
            "it the model is overconfident. Bottom: rows per bin.",
        ),
    ]
    if run.history is not None and not run.history.empty:
        plots.append(
            Figure(
                figures.training_curves(run.history, out_dir / f"{prefix}training_curves.png"),
                "Training curves per phase: kappa (top) and loss (bottom), train dashed, "
                "inner validation solid, one colour per fold.",
            )
        )
    sections.append(Section(f"{head}Figures", plots))
    return sections


def tune_sections(tune: TuneRecord, out_dir: Path) -> list[Section]:
    """The search: best trial against the nested estimate, top trials, the tune figure."""
    s, trials = tune.summary, tune.trials
    best, nested = s["best"], s["nested"]
    params = ", ".join(f"{k}={_param(v)}" for k, v in best["params"].items())
    optimism = best["outer_kappa_mean"] - nested["kappa_mean"]
    lines = [
        f"best trial {best['trial_id']} ({params}): outer fusion kappa "
        f"{best['outer_kappa_mean']:.3f} ± {best['outer_kappa_std']:.3f} (optimistic: "
        "chosen on every fold's inner validation)",
        f"nested estimate: outer fusion kappa {nested['kappa_mean']:.3f} (per fold, the trial "
        "best on that fold's own inner validation)",
        f"optimism of picking one trial on all folds: {optimism:+.3f}",
    ]
    searched = [k for k in s.get("searched", []) if k in trials]
    top = trials.sort_values("val_kappa_mean", ascending=False).head(10)
    top_table = Table(
        columns=["trial", *searched, "objective", "± std", "outer kappa", "folds", "status"],
        rows=[
            [
                str(r["trial_id"]),
                *(_param(r[k]) for k in searched),
                number(r["val_kappa_mean"]),
                number(r["val_kappa_std"]),
                number(r["outer_kappa_mean"]),
                str(r["folds_done"]),
                str(r["status"]),
            ]
            for _, r in top.iterrows()
        ],
        text_columns=(0, len(searched) + 5),
        caption=(
            f"Top {len(top)} of {s['trials']} trials ({s['complete']} complete) by the "
            "objective: mean inner-validation fusion kappa over folds."
        ),
    )
    nested_table = Table(
        columns=["fold", "trial picked", "its inner-val kappa", "its outer kappa"],
        rows=[
            [str(p["fold"]), str(p["trial_id"]), number(p["val_kappa"]), number(p["outer_kappa"])]
            for p in nested["per_fold"]
        ],
        text_columns=(1,),
        caption="Nested estimate: each outer fold judged by the trial its own inner split chose.",
    )
    figure = Figure(
        figures.tune_objective(tune, out_dir / "tune_objective.png"),
        "Left: objective against the searched setting, colour = unfreeze_depth, bars = spread "
        "over folds. Right: the best trial's outer kappa beside the nested estimate.",
    )
    return [Section("Search", [Bullets(lines, strong=True), top_table, nested_table, figure])]


def _param(value) -> str:
    if isinstance(value, float) and value == value and value != 0 and abs(value) < 1e-2:
        return f"{value:.2e}"
    return "n/a" if value is None or value != value else str(value)
