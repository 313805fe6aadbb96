"""The decisive numbers: does the fusion beat the single modalities, did stage 2 help?

Each answer is a paired patient-level bootstrap of a kappa difference and one line in
words. "Beats" needs the whole 95% interval above 0; anything else is no evidence. Beside
it, the corrected resampled t-test of the per-fold differences (raycv.statistics.corrected)
answers the other question: how much the difference moves from one split to another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raycv.report.load import RunRecord
from raycv.report.scores import ModelScores
from raycv.statistics.bootstrap import Interval, paired_difference, repeat_confusions
from raycv.statistics.corrected import CorrectedTTest, compare
from raycv.summary import RunSummary


@dataclass
class Comparison:
    model: str  # kappa(model) - kappa(baseline)
    baseline: str
    difference: Interval  # pooled kappa, paired patient bootstrap
    verdict: str
    corrected: CorrectedTTest  # per-fold kappa, Nadeau & Bengio's corrected t-test


def modality_name(model: str) -> str:
    return {"fusion_stage1": "stage 1 alone", "fusion": "the fusion"}.get(model, f"{model}-only")


def fusion_verdict(diff: Interval, baseline: str) -> str:
    name = modality_name(baseline)
    if diff.low is not None and diff.low > 0:
        return f"fusion beats {name} by {diff.estimate:.2f} [{diff.low:.2f}, {diff.high:.2f}]"
    if diff.high is not None and diff.high < 0:
        return (
            f"{name} beats the fusion by {-diff.estimate:.2f} [{-diff.high:.2f}, {-diff.low:.2f}]"
        )
    return f"no evidence that the fusion beats {name}: {diff.text(signed=True)}"


def stage2_verdict(diff: Interval, identical: bool) -> str:
    if identical:
        return "no evidence that stage 2 helped: its test predictions equal stage 1's"
    if diff.low is not None and diff.low > 0:
        return f"stage 2 helped: {diff.text(signed=True)}"
    if diff.high is not None and diff.high < 0:
        return f"stage 2 hurt: {diff.text(signed=True)}"
    return f"no evidence that stage 2 helped: {diff.text(signed=True)}"


def best_single_modality(scores: list[ModelScores], singles: list[str]) -> str:
    """The single modality with the highest pooled kappa: the bar the fusion must clear."""
    pooled = {s.model: s.kappa_pooled.estimate for s in scores if s.model in singles}
    return max(pooled, key=lambda m: -np.inf if pooled[m] != pooled[m] else pooled[m])


def fusion_comparisons(
    run: RunRecord, scores: list[ModelScores], confusions: dict, draws: np.ndarray
) -> list[Comparison]:
    """Fusion against each single modality (best first), then fusion against stage 1."""
    if not run.has_fusion:
        return []
    best = best_single_modality(scores, run.single_modalities)
    order = [best] + [m for m in run.single_modalities if m != best]
    out = []
    for baseline in order:
        fusion, other = _on_common_visits(run, confusions, "fusion", baseline)
        diff = paired_difference(fusion, other, draws, run.kappa_weights)
        verdict = fusion_verdict(diff, baseline)
        out.append(Comparison("fusion", baseline, diff, verdict, _corrected(run, baseline)))
    diff = paired_difference(
        confusions["fusion"], confusions["fusion_stage1"], draws, run.kappa_weights
    )
    identical = bool((run.preds["fusion"] == run.preds["fusion_stage1"]).all())
    verdict = stage2_verdict(diff, identical)
    out.append(
        Comparison("fusion", "fusion_stage1", diff, verdict, _corrected(run, "fusion_stage1"))
    )
    return out


def _corrected(run: RunRecord, baseline: str) -> CorrectedTTest:
    return compare(run.predictions, "fusion", baseline, run.classes, run.kappa_weights)


def _on_common_visits(run: RunRecord, confusions: dict, a: str, b: str):
    """Both models' patient confusions over the visits both predict: a paired difference
    compares the same visits (an image model under data.missing_images: mask predicts
    fewer than the fusion)."""
    both = run.predicted(a) & run.predicted(b)
    if both.all():
        return confusions[a], confusions[b]
    n = len(run.classes)
    return tuple(
        repeat_confusions(run.patient_id, run.y, run.preds[m], n, both, run.repeats) for m in (a, b)
    )


def stage2_kept(summary: RunSummary) -> tuple[int, int] | None:
    """(folds that kept stage 2, folds); None when the run has no two-stage fusion."""
    kept = [k for k in summary.stage2_kept if k is not None]
    return (sum(bool(k) for k in kept), len(kept)) if kept else None
