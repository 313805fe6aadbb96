"""`run_fold`: one outer fold end to end — forest, CNN pretraining, two-stage fusion.

A pure function of (dataset, fold split, config): no Ray, no global state besides torch's
seeded generators. Each phase seeds itself from (cv.seed, repeat, fold, phase), and each finished
phase is saved to the fold's PhaseStore, so a rerun loads it instead of training again.
Only the final evaluation touches the outer test fold (science rule 2, tests/test_science.py).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from raycv.checkpoints import PhaseStore
from raycv.config import Config
from raycv.data.dataset import Dataset
from raycv.folds import FoldSplit
from raycv.metrics import kappa
from raycv.models.backbone import BackboneBranch
from raycv.models.branches import build_branch
from raycv.models.choice import is_pretrained
from raycv.models.cnn import ImageBranch, augment, freeze, unfreeze_trailing
from raycv.models.forest import dump_forest, forest_probabilities
from raycv.models.fusion import LateFusion, PrecomputedPrefix, fit_fusion_weights
from raycv.models.visits import Batch, visit_mean
from raycv.phase_states import ForestState, PhaseState, PretrainState, Stage1State, Stage2State
from raycv.phases import FOREST, PRETRAIN, RESULT, STAGE1, STAGE2, pretrain_file
from raycv.results import FoldResult
from raycv.seeds import phase_seed, repeat_seed
from raycv.training.loop import PhaseSettings, Split, predict, train_phase
from raycv.training.two_stage import (
    frozen_outputs,
    phase_settings,
    run_stage1,
    run_stage2,
    stage2_beats_stage1,
)

log = logging.getLogger(__name__)

Progress = Callable[[str, str, int, dict], None]  # (unit, phase, epoch, row) -> None
State = TypeVar("State", bound=PhaseState)


class SingleBranch(torch.nn.Module):
    """One image branch as a classifier of visits (for pretraining and evaluation): a
    visit's probabilities are the mean over its images; NaN for a visit without one.
    skip: the images are already through the branch's first `skip` (frozen) blocks."""

    def __init__(self, branch: torch.nn.Module, modality: str, skip: int = 0):
        super().__init__()
        self.branch, self.modality, self.skip = branch, modality, skip

    def forward(self, batch: Batch) -> torch.Tensor:
        logits = self.branch(batch.images[self.modality], self.skip)  # (K, C), one per image
        owner = batch.owner.get(self.modality)
        if owner is None:  # one image per visit
            return logits.log_softmax(-1)
        probs, present = visit_mean(logits.softmax(-1), owner, batch.n)  # (n, C)
        out = torch.log(probs.clamp_min(1e-7))
        if present is not None:
            out = out.masked_fill(~present[:, None], float("nan"))
        return out


def balanced_class_weight(y: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


class FoldInputs:
    """The fold's tensors, moved to its device once (not per batch)."""

    def __init__(self, dataset: Dataset, modalities: list[str], device: torch.device):
        self.dataset, self.modalities, self.device = dataset, modalities, device
        self.meta_probs: np.ndarray | None = None  # (N, C), filled for train and test rows

    def split(self, idx: np.ndarray) -> Split:
        """Visits idx: their forest probabilities, every image of theirs, their labels."""
        visits, images, offsets, frozen = {}, {}, {}, {}
        for m in self.modalities:
            if m == "metadata":
                visits[m] = torch.as_tensor(self.meta_probs[idx], dtype=torch.float32)
                continue
            rows, counts = self.dataset.images[m].rows_of(idx, len(self.dataset))
            # fancy indexing copies out of the read-only store
            images[m] = torch.from_numpy(self.dataset.images[m].batch(rows))
            if m in self.dataset.frozen:  # the frozen backbone's features, same rows
                frozen[m] = torch.from_numpy(self.dataset.frozen[m][rows])
            if not np.all(counts == 1):
                offsets[m] = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]))
        y = torch.as_tensor(self.dataset.y[idx], dtype=torch.long)
        on = self.device
        return Split(
            y.to(on),
            {k: v.to(on) for k, v in visits.items()},
            {k: v.to(on) for k, v in images.items()},
            {k: v.to(on) for k, v in offsets.items()},
            frozen={k: v.to(on) for k, v in frozen.items()},
        )


def _monitor(config: Config, dataset: Dataset, split: FoldSplit) -> str:
    monitor = config.early_stopping.monitor
    if monitor == "val_kappa" and len(np.unique(dataset.y[split.inner_val])) < 2:
        log.warning(
            "%s: the inner-validation split holds one class, so kappa is undefined; "
            "early stopping and the stage choice use val_loss",
            split.unit,
        )
        return "val_loss"
    return monitor


def _kappa(config, y, probs) -> float:
    """Kappa over the visits the model predicts (a NaN row: no image of its modality)."""
    known = ~np.isnan(probs).any(1)
    if not known.any():
        return float("nan")
    k = kappa(y[known], probs[known].argmax(1), len(config.classes), config.metrics.kappa_weights)
    return k


@dataclass
class FoldContext:
    """What every phase of one fold reads: its data, split, settings and where it saves."""

    dataset: Dataset
    split: FoldSplit
    config: Config
    device: torch.device
    monitor: str  # early stopping's score: val_kappa, or val_loss if kappa is undefined
    inputs: FoldInputs
    store: PhaseStore | None
    progress: Progress | None

    @property
    def n_classes(self) -> int:
        return len(self.config.classes)

    def seed(self, phase: str, salt: str = "") -> int:
        seed = repeat_seed(self.config.cv.seed, self.split.repeat)  # repeat 0: cv.seed
        return phase_seed(seed, self.split.fold, phase, salt)

    def report(self, branch: str):
        """Progress rows of one branch's training epochs (None: nobody listens)."""
        if self.progress is None:
            return None
        k = self.split.unit
        return lambda phase, epoch, row: self.progress(k, phase, epoch, {"branch": branch, **row})

    def predict(self, model, part: Split) -> np.ndarray:
        return predict(model, part, self.config.image.batch_size, self.config.resources.bf16)

    def predict_fused(self, fusion: LateFusion, part: Split) -> np.ndarray:
        """A fusion's probabilities, each frozen pretrained backbone's output taken from
        the split's frozen features (where it has them) instead of computed again."""
        skip = {
            m: 1
            for m, branch in fusion.branches.items()
            if isinstance(branch, BackboneBranch) and m in part.frozen
        }
        if not skip:
            return self.predict(fusion, part)
        features = {m: part.frozen[m] for m in skip}
        return self.predict(PrecomputedPrefix(fusion, skip), part.with_images(features))

    def cached(self, phase: str, kind: type[State], compute: Callable[[], State]) -> State:
        """The phase's saved state if the store has it (a rerun), else compute and save it."""
        saved = self.store.load(phase) if self.store is not None else None
        if saved is None:
            state = compute()
            if self.store is not None:
                self.store.save(phase, state.to_dict())
            return state
        if self.progress:
            self.progress(self.split.unit, phase, -1, {"note": "restored from checkpoint"})
        return kind.from_dict(saved)


def run_fold(
    dataset: Dataset,
    split: FoldSplit,
    config: Config,
    *,
    store: PhaseStore | None = None,
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
    until: str | None = None,
) -> FoldResult | None:
    """Train and evaluate every model of one outer fold; returns its FoldResult.

    until ('forest', 'pretrain' or 'stage1') stops once that phase is saved in `store` and
    returns None: Tune computes the phases no trial changes once per fold, up front.
    """
    if store is not None and (done := store.load(RESULT)) is not None:
        log.info("%s: finished earlier, reusing its result", split.unit)
        return FoldResult.from_dict(done)
    started, through = time.time(), BackboneBranch.images_through
    device = torch.device(device)
    ctx = FoldContext(
        dataset,
        split,
        config,
        device,
        _monitor(config, dataset, split),
        FoldInputs(dataset, config.modalities, device),
        store,
        progress,
    )
    test_probs: dict[str, np.ndarray] = {}
    val_probs: dict[str, np.ndarray] = {}

    # -- metadata branch: out-of-fold probabilities for training rows (science rule 3, tests/test_science.py) --------
    if "metadata" in config.modalities:
        forest = ctx.cached(FOREST, ForestState, lambda: fit_forest(ctx))
        ctx.inputs.meta_probs = np.full((len(dataset), ctx.n_classes), np.nan)
        ctx.inputs.meta_probs[split.train] = forest.oof
        ctx.inputs.meta_probs[split.test] = forest.test
        test_probs["metadata"] = forest.test
        val_probs["metadata"] = ctx.inputs.meta_probs[split.inner_val]
    if until == FOREST:
        return None

    fit, val, test = (ctx.inputs.split(i) for i in (split.inner_train, split.inner_val, split.test))

    # -- image branches: pretraining on the maps alone --------------------------------------
    branches: dict[str, ImageBranch] = {}
    history: list[dict] = []
    stale: list[str] = []  # modalities whose backbone fine-tuning moved
    for m in config.image_modalities:
        pre = ctx.cached(
            pretrain_file(m), PretrainState, lambda m=m: pretrain_branch(ctx, m, fit, val, test)
        )
        branch = build_branch(config, m)
        branch.load_state_dict(pre.state)
        branches[m] = branch.to(device)
        log.debug("%s: loaded pretrained %s layers %s", split.unit, m, list(pre.state))
        history += pre.history
        test_probs[m], val_probs[m] = pre.test_probs, pre.val_probs
        if pre.finetuned:  # the backbone moved: the cohort's frozen features are not its own
            stale.append(m)
    fit, val, test = (part.without_frozen(stale) for part in (fit, val, test))
    if until == PRETRAIN:
        return None

    result = FoldResult(
        fold=split.fold,
        test_index=split.test,
        probs=test_probs,
        val_kappa={},
        history=history,
        repeat=split.repeat,
    )
    # -- late fusion in two stages ----------------------------------------------------------
    if len(config.modalities) >= 2:
        if config.fusion.mode == "learned":
            weights = fit_fusion_weights(val_probs, dataset.y[split.inner_val])
        else:
            weights = config.fusion_weights()
        fusion = LateFusion(copy.deepcopy(branches), weights).to(device)
        s1 = ctx.cached(STAGE1, Stage1State, lambda: fusion_stage1(ctx, fusion, fit, val))
        if until == STAGE1:
            return None
        fusion.load_state_dict(s1.state)
        test_probs["fusion_stage1"] = ctx.predict_fused(fusion, test)
        val_probs["fusion_stage1"] = ctx.predict_fused(fusion, val)
        s2 = ctx.cached(STAGE2, Stage2State, lambda: fusion_stage2(ctx, fusion, fit, val, s1))
        fusion.load_state_dict(s2.state)
        if s2.kept and stage2_moves_backbones(config):  # their features are stale now
            test, val = (part.without_frozen() for part in (test, val))
        test_probs["fusion"], val_probs["fusion"] = (
            ctx.predict_fused(fusion, test),
            ctx.predict_fused(fusion, val),
        )
        result.history += [{"branch": "fusion", **row} for row in s1.history + s2.history]
        result.stage1_val_score, result.stage2_val_score = s1.score, s2.score
        result.stage2_kept, result.fusion_weights = bool(s2.kept), weights
        if progress:
            verdict = "kept" if s2.kept else "not better: fell back to stage 1"
            progress(split.unit, STAGE2, -1, {"note": f"stage 2 {verdict}"})

    y_val = dataset.y[split.inner_val]
    result.val_kappa = {m: _kappa(config, y_val, p) for m, p in val_probs.items()}
    result.seconds = time.time() - started
    result.backbone_images = BackboneBranch.images_through - through
    if store is not None:
        store.save(RESULT, result.to_dict())
    return result


def stage2_moves_backbones(config: Config) -> bool:
    """Whether stage 2 trains some stage of a timm backbone (depth beyond the head)."""
    depth = config.stage2.unfreeze_depth
    return depth == "all" or depth >= 2


def fit_forest(ctx: FoldContext) -> ForestState:
    """The forest's out-of-fold probabilities of the training rows, its test ones, and the
    forest fit on the whole training fold (skops bytes: what `raycv predict` applies)."""
    if ctx.progress:
        ctx.progress(ctx.split.unit, FOREST, 0, {"note": "fitting"})
    oof, test, model = forest_probabilities(
        ctx.dataset.features,
        ctx.dataset.y,
        ctx.dataset.patient_id,
        ctx.split.train,
        ctx.split.test,
        ctx.n_classes,
        ctx.config.metadata,
        ctx.seed(FOREST),
        n_jobs=max(1, torch.get_num_threads()),
    )
    return ForestState(oof=oof, test=test, model=dump_forest(model))


def pretrain_branch(ctx: FoldContext, m: str, fit: Split, val: Split, test: Split) -> PretrainState:
    """Train modality m's image branch alone on the inner-training images: every block at
    once from scratch, or, from pretrained weights, in two steps (pretrain_two_steps)."""
    config, split, device = ctx.config, ctx.split, ctx.device
    torch.manual_seed(ctx.seed(PRETRAIN, m))  # initial weights
    branch = build_branch(config, m, initial=True)
    examples = fit.examples_of(m)  # every inner-training image of m, its visit's label
    branch.set_normalisation(examples.images[m].cpu().numpy())  # pretrained: their own
    if device.type == "cuda" and isinstance(branch, BackboneBranch):
        branch = branch.to(memory_format=torch.channels_last)  # convolutions' fast layout
    aug = config.image.augment
    settings = phase_settings(
        config,
        PRETRAIN,
        ctx.seed(PRETRAIN, m),
        ctx.monitor,
        class_weight=(
            balanced_class_weight(ctx.dataset.y[split.inner_train], ctx.n_classes).to(device)
            if config.pretrain.class_weight == "balanced"
            else None
        ),
        augment=lambda batch, gen: _augmented(batch, m, aug, gen),
    )
    if is_pretrained(config, m):
        return pretrain_two_steps(ctx, m, branch.to(device), examples, val, test, settings)
    model = SingleBranch(branch, m).to(device)
    outcome = train_phase(model, examples, val, settings, ctx.report(m))
    return PretrainState(
        state={n: t.cpu() for n, t in branch.state_dict().items()},
        history=[{"branch": m, **row} for row in outcome.history],
        best_score=outcome.best_score,
        val_probs=ctx.predict(model, val),
        test_probs=ctx.predict(model, test),
    )


def pretrain_two_steps(
    ctx: FoldContext,
    m: str,
    branch: BackboneBranch,
    examples: Split,
    val: Split,
    test: Split,
    settings: PhaseSettings,
) -> PretrainState:
    """A pretrained backbone, as the original trains it: (1) the head alone on the frozen
    backbone, on its precomputed features (no augmentation passes through a frozen
    backbone); (2) the last pretrain.unfreeze_depth blocks fine-tuned at
    pretrain.finetune_lr, BatchNorm statistics fixed, starting from step 1 with its score
    to beat: kept only if inner-validation kappa improves, else step 1's weights stay."""
    config = ctx.config
    freeze(branch.backbone)
    on_features = lambda part: part.with_images(  # noqa: E731 - read as a noun below
        {m: frozen_outputs(branch, part, m, 1, settings)}
    )
    head_only = SingleBranch(branch, m, skip=1)
    step1 = train_phase(
        head_only,
        on_features(examples),
        on_features(val),
        dataclasses.replace(settings, augment=None),
        ctx.report(m),
    )
    history = [{"branch": m, **row, "note": "head on the frozen backbone"} for row in step1.history]
    best, finetuned = step1.best_score, None
    depth = config.pretrain.unfreeze_depth
    blocks = len(branch.stage_groups())
    if depth == "all" or depth >= 2:
        kept_state = copy.deepcopy(branch.state_dict())
        unfrozen = unfreeze_trailing(branch, depth)
        step2 = train_phase(
            SingleBranch(branch, m),
            examples,
            val,
            dataclasses.replace(
                settings,
                lr=config.pretrain.finetune_lr,
                seed=ctx.seed(PRETRAIN, f"{m}/finetune"),
                baseline=step1.best_score,
                batchnorm_frozen=True,
            ),
            ctx.report(m),
        )
        note = f"fine-tuning {', '.join(unfrozen)} ({len(unfrozen)} of {blocks} blocks)"
        offset = len(step1.history)
        history += [
            {"branch": m, **row, "epoch": row["epoch"] + offset, "note": note}
            for row in step2.history
        ]
        finetuned = step2.best_score is not None  # it beat step 1 (early stopping's baseline)
        if finetuned:
            best = step2.best_score
        else:
            branch.load_state_dict(kept_state)
        if ctx.progress:
            verdict = "kept" if finetuned else "not better: kept the head-only weights"
            ctx.progress(ctx.split.unit, PRETRAIN, -1, {"note": f"{m} fine-tuning {verdict}"})
    freeze(branch)
    if finetuned:  # the backbone changed: its cached features no longer apply
        model, val_in, test_in = SingleBranch(branch, m), val, test
    else:
        model, val_in, test_in = head_only, on_features(val), on_features(test)
    return PretrainState(
        state={n: t.cpu() for n, t in branch.state_dict().items()},
        history=history,
        best_score=best,
        val_probs=ctx.predict(model, val_in),
        test_probs=ctx.predict(model, test_in),
        finetuned=finetuned,
    )


def _augmented(batch: Batch, m: str, aug, gen: torch.Generator) -> Batch:
    images = {**batch.images, m: augment(batch.images[m], aug.flip, aug.rotate_degrees, gen)}
    return Batch(batch.n, batch.visits, images, batch.owner)


def fusion_stage1(ctx: FoldContext, fusion: LateFusion, fit: Split, val: Split) -> Stage1State:
    """Stage 1: the fusion with every image branch frozen."""
    settings = phase_settings(ctx.config, STAGE1, ctx.seed(STAGE1), ctx.monitor)
    s1 = run_stage1(fusion, fit, val, settings, ctx.report("fusion"))
    return Stage1State(state=s1.state, score=s1.score, history=s1.history)


def fusion_stage2(
    ctx: FoldContext, fusion: LateFusion, fit: Split, val: Split, s1: Stage1State
) -> Stage2State:
    """Stage 2: the last blocks unfrozen, stage 1's score to beat; kept only if it does."""
    config = ctx.config
    settings = phase_settings(
        config,
        STAGE2,
        ctx.seed(STAGE2),
        ctx.monitor,
        baseline=s1.score,
        batchnorm_frozen=config.stage2.batchnorm == "frozen",
    )
    s2 = run_stage2(fusion, fit, val, settings, config.stage2.unfreeze_depth, ctx.report("fusion"))
    kept = stage2_beats_stage1(s2)
    return Stage2State(
        state=s2.state if kept else s1.state,
        score=s2.top_score,
        kept=kept,
        history=s2.history,
    )
