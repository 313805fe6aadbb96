"""`run_fold`: one outer fold end to end — forest, CNN pretraining, two-stage fusion.

A pure function of (dataset, fold split, config): no Ray, no global state besides torch's
seeded generators. Each phase seeds itself from (cv.seed, fold, phase), and each finished
phase is saved to the fold's PhaseStore, so a rerun loads it instead of training again.
Only the final evaluation touches the outer test fold (CONTRACTS 4.2).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from raycv.checkpoints import PhaseStore
from raycv.config import Config
from raycv.data.dataset import Dataset
from raycv.folds import FoldSplit
from raycv.metrics import kappa
from raycv.models.cnn import ImageBranch, augment
from raycv.models.forest import forest_probabilities
from raycv.models.fusion import LateFusion, fit_fusion_weights
from raycv.results import FoldResult
from raycv.seeds import phase_seed
from raycv.training.loop import Split, predict, train_phase
from raycv.training.two_stage import (
    phase_settings,
    run_stage1,
    run_stage2,
    stage2_beats_stage1,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, str, int, dict], None]  # (fold, phase, epoch, row) -> None


class SingleBranch(torch.nn.Module):
    """One image branch as a classifier of batch dicts (for pretraining and evaluation)."""

    def __init__(self, branch: ImageBranch, modality: str):
        super().__init__()
        self.branch, self.modality = branch, modality

    def forward(self, batch):
        return self.branch(batch[self.modality]).log_softmax(-1)


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
        inputs = {}
        for m in self.modalities:
            if m == "metadata":
                inputs[m] = torch.as_tensor(self.meta_probs[idx], dtype=torch.float32)
            else:
                # (n, S, S) -> (n, 1, S, S); fancy indexing copies out of the read-only store
                inputs[m] = torch.from_numpy(self.dataset.images[m][idx][:, None].copy())
        y = torch.as_tensor(self.dataset.y[idx], dtype=torch.long)
        return Split({k: v.to(self.device) for k, v in inputs.items()}, y.to(self.device))


def _monitor(config: Config, dataset: Dataset, split: FoldSplit) -> str:
    monitor = config.early_stopping.monitor
    if monitor == "val_kappa" and len(np.unique(dataset.y[split.inner_val])) < 2:
        log.warning(
            "fold %d: the inner-validation split holds one class, so kappa is undefined; "
            "early stopping and the stage choice use val_loss",
            split.fold,
        )
        return "val_loss"
    return monitor


def _kappa(config, y, probs) -> float:
    return kappa(y, probs.argmax(1), len(config.classes), config.metrics.kappa_weights)


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
    if store is not None and (done := store.load("result")) is not None:
        log.info("fold %d: finished earlier, reusing its result", split.fold)
        return FoldResult.from_dict(done)
    started = time.time()
    device = torch.device(device)
    k, seed, n_classes = split.fold, config.cv.seed, len(config.classes)
    monitor = _monitor(config, dataset, split)
    inputs = FoldInputs(dataset, config.modalities, device)
    y_val = dataset.y[split.inner_val]
    report = (lambda phase, epoch, row: progress(k, phase, epoch, row)) if progress else None

    def pred(model, part: Split) -> np.ndarray:
        return predict(model, part, config.image.batch_size, config.resources.bf16)

    history: list[dict] = []
    test_probs: dict[str, np.ndarray] = {}
    val_probs: dict[str, np.ndarray] = {}

    def cached(phase: str, compute: Callable[[], dict]) -> dict:
        state = store.load(phase) if store is not None else None
        if state is None:
            state = compute()
            if store is not None:
                store.save(phase, state)
        elif progress:
            progress(k, phase, -1, {"note": "restored from checkpoint"})
        return state

    # -- metadata branch: out-of-fold probabilities for training rows (CONTRACTS 4.3) --------
    if "metadata" in config.modalities:

        def fit_forest():
            if progress:
                progress(k, "forest", 0, {"note": "fitting"})
            oof, test, _ = forest_probabilities(
                dataset.features,
                dataset.y,
                dataset.patient_id,
                split.train,
                split.test,
                n_classes,
                config.metadata,
                phase_seed(seed, k, "forest"),
                n_jobs=max(1, torch.get_num_threads()),
            )
            return {"oof": oof, "test": test}

        forest = cached("forest", fit_forest)
        inputs.meta_probs = np.full((len(dataset), n_classes), np.nan)
        inputs.meta_probs[split.train] = forest["oof"]
        inputs.meta_probs[split.test] = forest["test"]
        test_probs["metadata"] = forest["test"]
        val_probs["metadata"] = inputs.meta_probs[split.inner_val]
    if until == "forest":
        return None

    fit, val, test = (inputs.split(i) for i in (split.inner_train, split.inner_val, split.test))

    # -- image branches: pretraining on the maps alone --------------------------------------
    branches: dict[str, ImageBranch] = {}
    for m in config.image_modalities:

        def pretrain(m=m):
            torch.manual_seed(phase_seed(seed, k, "pretrain", m))  # initial weights
            branch = ImageBranch(config.image.channels, n_classes, config.image.dropout)
            pixels = dataset.images[m][split.inner_train]
            branch.set_normalisation(pixels.mean(), pixels.std())
            model = SingleBranch(branch, m).to(device)
            aug = config.image.augment
            settings = phase_settings(
                config,
                "pretrain",
                phase_seed(seed, k, "pretrain", m),
                monitor,
                class_weight=(
                    balanced_class_weight(dataset.y[split.inner_train], n_classes).to(device)
                    if config.pretrain.class_weight == "balanced"
                    else None
                ),
                augment=lambda batch, gen: {
                    key: augment(v, aug.flip, aug.rotate_degrees, gen) if key == m else v
                    for key, v in batch.items()
                },
            )
            outcome = train_phase(model, fit, val, settings, _tagged(report, m))
            return {
                "state": {n: t.cpu() for n, t in branch.state_dict().items()},
                "history": [{"branch": m, **row} for row in outcome.history],
                "best_score": outcome.best_score,
                "val_probs": pred(model, val),
                "test_probs": pred(model, test),
            }

        state = cached(f"pretrain_{m}", pretrain)
        branch = ImageBranch(config.image.channels, n_classes, config.image.dropout)
        branch.load_state_dict(state["state"])
        branches[m] = branch.to(device)
        log.debug("fold %d: loaded pretrained %s layers %s", k, m, list(state["state"]))
        history += state["history"]
        test_probs[m], val_probs[m] = state["test_probs"], state["val_probs"]

    if until == "pretrain":
        return None
    result = FoldResult(
        fold=k,
        test_index=split.test,
        probs=test_probs,
        val_kappa={},
        history=history,
    )

    # -- late fusion in two stages ----------------------------------------------------------
    if len(config.modalities) >= 2:
        if config.fusion.mode == "learned":
            weights = fit_fusion_weights(val_probs, y_val)
        else:
            weights = config.fusion_weights()
        fusion = LateFusion(copy.deepcopy(branches), weights).to(device)

        def stage1():
            s1 = run_stage1(
                fusion,
                fit,
                val,
                phase_settings(config, "stage1", phase_seed(seed, k, "stage1"), monitor),
                _tagged(report, "fusion"),
            )
            return {"state": s1.state, "score": s1.score, "history": s1.history}

        s1 = cached("stage1", stage1)
        if until == "stage1":
            return None
        fusion.load_state_dict(s1["state"])
        test_probs["fusion_stage1"], val_probs["fusion_stage1"] = (
            pred(fusion, test),
            pred(fusion, val),
        )

        def stage2():
            settings = phase_settings(
                config,
                "stage2",
                phase_seed(seed, k, "stage2"),
                monitor,
                baseline=s1["score"],
                batchnorm_frozen=config.stage2.batchnorm == "frozen",
            )
            s2 = run_stage2(
                fusion, fit, val, settings, config.stage2.unfreeze_depth, _tagged(report, "fusion")
            )
            kept = stage2_beats_stage1(s2)
            return {
                "state": s2.state if kept else s1["state"],
                "score": s2.top_score,
                "kept": kept,
                "history": s2.history,
            }

        s2 = cached("stage2", stage2)
        fusion.load_state_dict(s2["state"])
        test_probs["fusion"], val_probs["fusion"] = pred(fusion, test), pred(fusion, val)
        result.history += [{"branch": "fusion", **row} for row in s1["history"] + s2["history"]]
        result.stage1_val_score, result.stage2_val_score = s1["score"], s2["score"]
        result.stage2_kept, result.fusion_weights = bool(s2["kept"]), weights
        if progress:
            verdict = "kept" if s2["kept"] else "not better: fell back to stage 1"
            progress(k, "stage2", -1, {"note": f"stage 2 {verdict}"})

    result.val_kappa = {m: _kappa(config, y_val, p) for m, p in val_probs.items()}
    result.seconds = time.time() - started
    if store is not None:
        store.save("result", result.to_dict())
    return result


def _tagged(report, branch: str):
    """Report rows with the branch they belong to (pretraining can have several)."""
    if report is None:
        return None
    return lambda phase, epoch, row: report(phase, epoch, {"branch": branch, **row})
