"""The report's figures, drawn from the run folder's files and saved as PNG.

Drawn on `matplotlib.figure.Figure` objects, never through pyplot: no global figure
state and no GUI backend (Agg renders the PNG), so the report also builds inside a Ray
worker or a headless CI machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from raycv.report.load import RunRecord, TuneRecord
from raycv.report.overfitting import phase_label, phases_of
from raycv.report.scores import ModelScores
from raycv.statistics.calibration import EDGES, brier, model_rows, reliability

DPI = 110
FOLD_COLOURS = [f"C{i}" for i in range(10)]
# training curves: (split, line style, marker of a one-evaluation stage, alpha)
CURVE_STYLES = (("train", "--", "x", 0.7), ("val", "-", "o", None))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def fold_kappas(
    scores: list[ModelScores], kappa_weights: str, path: Path, labels: list[str] | None = None
) -> Path:
    """Grouped bars: one group per model, one bar per outer fold (labels: one per fold, in
    kappa_per_fold order), the mean as a line."""
    n_models, n_folds = len(scores), len(scores[0].kappa_per_fold)
    labels = labels or [f"fold {k}" for k in range(n_folds)]
    fig = Figure(figsize=(max(6.0, 1.6 * n_models + 2), 3.8))
    ax = fig.subplots()
    width = 0.8 / n_folds
    for k in range(n_folds):
        x = np.arange(n_models) - 0.4 + width * (k + 0.5)
        values = [s.kappa_per_fold[k] for s in scores]
        ax.bar(x, values, width, label=labels[k], color=FOLD_COLOURS[k % 10], alpha=0.85)
    for i, s in enumerate(scores):
        ax.hlines(s.kappa_mean, i - 0.45, i + 0.45, colors="black", linewidth=2)
        ax.annotate(
            f"{s.kappa_mean:.3f}",
            (i, s.kappa_mean),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "linewidth": 0},
        )
    ax.plot([], [], color="black", linewidth=2, label="mean over folds")
    ax.set_xticks(np.arange(n_models), [s.model for s in scores])
    ax.set_ylabel(f"kappa ({kappa_weights})")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_title("Outer-fold kappa per model")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def confusion_matrices(run: RunRecord, path: Path) -> Path:
    """One pooled out-of-fold confusion matrix per model, rows true, class order."""
    n, classes = len(run.classes), run.classes
    fig = Figure(figsize=(3.1 * len(run.models), 3.2))
    axes = np.atleast_1d(fig.subplots(1, len(run.models)))
    for ax, m in zip(axes, run.models, strict=True):
        counts = np.zeros((n, n), dtype=int)
        known = run.predicted(m)
        np.add.at(counts, (run.y[known], run.preds[m][known]), 1)
        # colour by share of the true class, so rare classes are as readable as common ones
        share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{counts[i, j]}\n{share[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        ax.set_xticks(range(n), classes)
        ax.set_yticks(range(n), classes)
        ax.set_xlabel("predicted")
        ax.set_title(m, fontsize=10)
    axes[0].set_ylabel("true")
    return _save(fig, path)


def training_curves(history: pd.DataFrame, path: Path) -> Path:
    """Per phase (columns) kappa and loss (rows); a colour per fold, train dashed,
    inner validation solid."""
    phases = phases_of(history)
    fig = Figure(figsize=(max(7.0, 3.3 * len(phases)), 5.6))
    axes = fig.subplots(2, len(phases), squeeze=False)
    for col, (phase, branch) in enumerate(phases):
        part = history[history["phase"] == phase]
        if branch is not None:
            part = part[part["branch"] == branch]
        for fold, curve in part.groupby("fold", sort=True):
            curve = curve.sort_values("epoch")
            colour = FOLD_COLOURS[int(fold) % 10]
            short = len(curve) <= 2  # a one-evaluation stage is points: x train, o validation
            for row, metric in enumerate(("kappa", "loss")):
                for split, style, marker, alpha in CURVE_STYLES:
                    axes[row, col].plot(
                        curve["epoch"],
                        curve[f"{split}_{metric}"],
                        style,
                        color=colour,
                        marker=marker if short else None,
                        alpha=alpha,
                    )
        axes[0, col].set_title(phase_label(phase, branch), fontsize=10)
        axes[1, col].set_xlabel("epoch")
        for ax in axes[:, col]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if part["epoch"].max() == 0:  # a single evaluation: centre its points
                ax.set_xlim(-1, 1)
    axes[0, 0].set_ylabel("kappa")
    axes[1, 0].set_ylabel("loss")
    handles = [
        axes[0, 0].plot([], [], color="black", linestyle="--", label="train")[0],
        axes[0, 0].plot([], [], color="black", label="inner validation")[0],
    ]
    for fold in sorted(history["fold"].unique()):
        handles.append(
            axes[0, 0].plot([], [], color=FOLD_COLOURS[int(fold) % 10], label=f"fold {fold}")[0]
        )
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8)
    fig.subplots_adjust(top=0.86, hspace=0.3, wspace=0.3)
    return _save(fig, path)


def _depth_order(value) -> tuple:
    text = str(value)
    return (1, 0) if text == "all" else (0, float(text)) if _is_number(text) else (2, text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def tune_objective(tune: TuneRecord, path: Path) -> Path:
    """Left: the objective against stage2.lr (log axis), coloured by unfreeze_depth, fold
    spread as error bars. Right: the best trial's outer kappa beside the nested estimate."""
    trials = tune.trials.dropna(subset=["val_kappa_mean"])
    searched = tune.summary.get("searched", [])
    x_key = "stage2.lr" if "stage2.lr" in trials else next(iter(searched), None)
    colour_key = "stage2.unfreeze_depth" if "stage2.unfreeze_depth" in trials else None
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    groups = (
        sorted(trials.groupby(trials[colour_key].astype(str)), key=lambda g: _depth_order(g[0]))
        if colour_key
        else [("all trials", trials)]
    )
    for i, (value, part) in enumerate(groups):
        x = part[x_key].astype(float) if x_key else np.arange(len(part))
        left.errorbar(
            x,
            part["val_kappa_mean"].astype(float),
            yerr=part["val_kappa_std"].astype(float).fillna(0),
            fmt="o",
            capsize=3,
            color=f"C{i % 10}",
            label=f"unfreeze_depth={value}" if colour_key else value,
        )
    if x_key == "stage2.lr":
        left.set_xscale("log")
    left.set_xlabel(x_key or "trial")
    left.set_ylabel("objective: inner-validation kappa\n(mean over folds ± std)")
    left.set_title("Search: objective per trial")
    left.legend(fontsize=8, loc="best")

    best, nested = tune.summary["best"], tune.summary["nested"]
    nested_folds = [p["outer_kappa"] for p in nested["per_fold"]]
    labels = ["best trial\n(optimistic)", "nested\nestimate"]
    means = [best["outer_kappa_mean"], nested["kappa_mean"]]
    spreads = [best.get("outer_kappa_std") or 0.0, float(np.std(nested_folds))]
    right.bar(labels, means, yerr=spreads, capsize=5, color=["C1", "C2"], alpha=0.85)
    right.plot(np.ones(len(nested_folds)), nested_folds, "k.", label="nested, per fold")
    for i, v in enumerate(means):
        right.annotate(f"{v:.3f}", (i, v), xytext=(8, 4), textcoords="offset points", fontsize=8)
    right.set_ylabel("outer fusion kappa (mean over folds)")
    right.set_title("Outer-fold estimate")
    top = max([*means, *nested_folds, 0.0]) + max(spreads)
    right.set_ylim(top=top * 1.3 if top > 0 else 1.0)  # room for the legend above the bars
    right.legend(fontsize=8, loc="upper right")
    fig.subplots_adjust(wspace=0.35)
    return _save(fig, path)


def reliability_diagrams(run: RunRecord, path: Path) -> Path:
    """Per model (columns): accuracy against confidence in 10 equal-width bins of the
    top-class probability (top; the diagonal is perfect calibration), and how many rows
    fall in each bin (bottom)."""
    fig = Figure(figsize=(3.1 * len(run.models), 4.4))
    axes = fig.subplots(2, len(run.models), squeeze=False, height_ratios=[3, 1], sharex=True)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    for col, m in enumerate(run.models):
        probs, y = model_rows(run.predictions, m, run.classes)
        top, bottom = axes[0, col], axes[1, col]
        top.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        if len(y):
            bins = reliability(probs, y)
            filled = bins.count > 0
            top.bar(
                centres[filled],
                bins.accuracy[filled],
                width=0.1,
                color="C0",
                alpha=0.75,
                edgecolor="white",
                label="accuracy",
            )
            top.plot(bins.confidence[filled], bins.accuracy[filled], "k.", label="mean confidence")
            bottom.bar(centres, bins.count, width=0.1, color="C7", edgecolor="white")
            top.set_title(f"{m}\nECE {bins.ece:.3f} · Brier {brier(probs, y):.3f}", fontsize=9)
        else:
            top.set_title(f"{m}\n(no predictions)", fontsize=9)
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        bottom.set_xlabel("confidence (top-class probability)")
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("rows")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.subplots_adjust(hspace=0.08, wspace=0.3)
    return _save(fig, path)


def subgroup_forest(column: str, groups: dict, pooled: dict, kappa_weights: str, path: Path):
    """Forest plot of one subgroup column: per value (rows) each model's kappa with its 95%
    patient-bootstrap interval; dotted lines: each model's pooled kappa over all visits."""
    values = list(groups)
    models = list(next(iter(groups.values()))) if groups else []
    fig = Figure(figsize=(7.0, 1.2 + 0.2 * len(values) * max(2, len(models))))
    ax = fig.subplots()
    step = 0.7 / max(1, len(models))
    for i, m in enumerate(models):
        colour = f"C{i % 10}"
        y = np.arange(len(values)) + (i - (len(models) - 1) / 2) * step
        for row, value in enumerate(values):
            score = groups[value][m]
            if score["kappa"] is None:
                continue
            if score["ci95"] is not None:
                ax.hlines(y[row], *score["ci95"], color=colour, linewidth=1.4)
            ax.plot(score["kappa"], y[row], "o", color=colour, markersize=4)
        ax.plot([], [], "o-", color=colour, label=m)
        if pooled.get(m) is not None:
            ax.axvline(pooled[m], color=colour, linestyle=":", linewidth=0.9)
    labels = [f"{v}  (n={max((s['n'] for s in groups[v].values()), default=0)})" for v in values]
    ax.set_yticks(np.arange(len(values)), labels)
    ax.invert_yaxis()  # first group on top, as the table lists them
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"kappa ({kappa_weights}), 95% patient-bootstrap CI")
    ax.set_title(f"Kappa by {column}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)
