"""One training phase: epochs of mini-batches, inner-validation scoring, early stopping.

Models take a Batch of visits (models.visits: 'metadata' -> (B, C) forest
probabilities, each modality's (K, 1, S, S) images and the visit each belongs to) and
return (B, C) log-probabilities; the loss is their NLL. A visit a model cannot predict
(no image of its modality, data.missing_images: mask) gets a NaN row, left out of
every score.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raycv.metrics import kappa
from raycv.models.visits import Batch
from raycv.training.early_stopping import EarlyStopping

Report = Callable[[str, int, dict], None]  # (phase, epoch, history row) -> None


@dataclass
class Split:
    """n visits' inputs and labels, already on the fold's device."""

    y: torch.Tensor  # (n,) class indices
    visits: dict[str, torch.Tensor] = field(default_factory=dict)  # 'metadata' -> (n, C)
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # m -> (K, 1, S, S)
    # m -> (n + 1,) where each visit's images start in images[m]; None: one per visit
    offsets: dict[str, torch.Tensor | None] = field(default_factory=dict)
    # (n,) loss weight of each example; None: all 1 (pretraining weighs an image by
    # 1 / its visit's image count, so each visit counts once)
    weight: torch.Tensor | None = None
    # m -> (K, D): each image's frozen pretrained-backbone features, rows as images[m]
    # (raycv.frozen_features); only for modalities whose branch is such a backbone
    frozen: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: torch.Tensor) -> Batch:
        out = Batch(len(idx), {k: v[idx] for k, v in self.visits.items()})
        for m, pixels in self.images.items():
            offsets = self.offsets.get(m)
            if offsets is None:
                out.images[m], out.owner[m] = pixels[idx], None
            else:
                rows, owner = image_rows(offsets, idx)
                out.images[m], out.owner[m] = pixels[rows], owner
        return out

    def examples_of(self, modality: str) -> Split:
        """Each image of `modality` as an example of its own, carrying its visit's label,
        weighted 1 / its visit's image count so that every visit counts once in the loss
        (as in evaluation); visits without an image drop out."""
        pixels, offsets = self.images[modality], self.offsets.get(modality)
        frozen = {modality: self.frozen[modality]} if modality in self.frozen else {}
        if offsets is None:  # one image per visit: the split itself
            return Split(self.y, {}, {modality: pixels}, {modality: None}, self.weight, frozen)
        counts = offsets[1:] - offsets[:-1]
        y = torch.repeat_interleave(self.y, counts)
        weight = torch.repeat_interleave(1.0 / counts.clamp_min(1).float(), counts)
        return Split(y, {}, {modality: pixels}, {modality: None}, weight, frozen)

    def without_frozen(self, modalities: list[str] | None = None) -> Split:
        """The same split without the frozen features of `modalities` (None: of every one):
        for a backbone that trained, they are no longer its output."""
        keep = {
            m: f for m, f in self.frozen.items() if modalities is not None and m not in modalities
        }
        return dataclasses.replace(self, frozen=keep)

    def with_images(self, images: dict[str, torch.Tensor]) -> Split:
        """The same visits with some modalities' images replaced (e.g. by features)."""
        return Split(
            self.y, self.visits, {**self.images, **images}, self.offsets, self.weight, self.frozen
        )


def image_rows(offsets: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The image rows of visits `idx` (each visit's images together, in idx order) and
    the batch position (0..len(idx)-1) each belongs to: ((K,), (K,))."""
    starts, counts = offsets[idx], offsets[idx + 1] - offsets[idx]
    owner = torch.repeat_interleave(torch.arange(len(idx), device=idx.device), counts)
    first = torch.cumsum(counts, 0) - counts  # where each visit starts in the batch
    rows = starts[owner] + torch.arange(len(owner), device=idx.device) - first[owner]
    return rows, owner


@dataclass
class PhaseSettings:
    phase: str  # 'pretrain', 'stage1', 'stage2' (names the history rows)
    epochs: int
    lr: float
    patience: int
    min_delta: float
    monitor: str  # 'val_kappa' or 'val_loss'
    seed: int
    batch_size: int
    n_classes: int
    kappa_weights: str
    baseline: float | None = None  # score to beat from the start (stage 2: stage 1's)
    class_weight: torch.Tensor | None = None  # (C,) training-loss weights
    batchnorm_frozen: bool = False  # keep BatchNorm running statistics fixed
    augment: Callable[[dict, torch.Generator], dict] | None = None
    bf16: bool = False


@dataclass
class PhaseOutcome:
    best_score: float | None  # None: no epoch beat the baseline
    best_epoch: int
    top_score: float | None = None  # best score seen, baseline or not (for the record)
    history: list[dict] = field(default_factory=list)


def predict(model: nn.Module, split: Split, batch_size: int, bf16: bool = False) -> np.ndarray:
    """(n, C) probabilities in eval mode."""
    model.eval()
    out = []
    with torch.no_grad(), autocast(split.y.device, bf16):
        for start in range(0, len(split), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(split)), device=split.y.device)
            out.append(model(split.batch(idx)).float().exp())
    return torch.cat(out).cpu().numpy().astype(np.float64)


def evaluate(model, split: Split, settings: PhaseSettings) -> tuple[float, float, np.ndarray]:
    """(loss, kappa, probabilities) of `model` on `split`; loss and kappa over the visits
    the model predicts (NaN rows, a modality's missing image, are left out)."""
    probs = predict(model, split, settings.batch_size, settings.bf16)
    y = split.y.cpu().numpy()
    known = ~np.isnan(probs).any(1)
    if not known.all():
        if not known.any():
            return float("nan"), float("nan"), probs
        probs_known, y = probs[known], y[known]
    else:
        probs_known = probs
    log_probs = torch.from_numpy(np.log(np.clip(probs_known, 1e-7, None)))
    loss = float(F.nll_loss(log_probs, torch.from_numpy(y)))
    k = kappa(y, probs_known.argmax(1), settings.n_classes, settings.kappa_weights)
    return loss, k, probs


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def set_train_modes(model: nn.Module, batchnorm_frozen: bool) -> None:
    """Train mode only where something trains: a frozen block stays in eval mode (no dropout,
    no BatchNorm statistics updates), and `batchnorm_frozen` keeps every BatchNorm fixed."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
        if batchnorm_frozen and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def train_phase(
    model: nn.Module, train: Split, val: Split, s: PhaseSettings, report: Report | None = None
) -> PhaseOutcome:
    """Train the model's trainable parameters; restores the best epoch's weights on return."""
    torch.manual_seed(s.seed)  # dropout draws from the global generator
    device = train.y.device
    gen = torch.Generator(device=device).manual_seed(s.seed)
    params = trainable_parameters(model)
    score_of = (lambda loss, k: k) if s.monitor == "val_kappa" else (lambda loss, k: loss)
    stopper = EarlyStopping(
        mode="max" if s.monitor == "val_kappa" else "min",
        patience=s.patience,
        min_delta=s.min_delta,
        baseline=s.baseline,
    )
    outcome = PhaseOutcome(best_score=None, best_epoch=-1)

    if not params:
        # Nothing can change between epochs: one evaluation is the whole phase.
        val_loss, val_k, _ = evaluate(model, val, s)
        tr_loss, tr_k, _ = evaluate(model, train, s)
        row = _row(s.phase, 0, tr_loss, tr_k, val_loss, val_k, "nothing trainable: evaluated once")
        outcome.history.append(row)
        if report:
            report(s.phase, 0, row)
        score = score_of(val_loss, val_k)
        if stopper.update(score, 0):
            outcome.best_score, outcome.best_epoch = score, 0
        outcome.top_score = _top(outcome.history, s.monitor)
        return outcome

    optimizer = torch.optim.Adam(params, lr=s.lr)
    best_state = None
    y_train_np = train.y.cpu().numpy()
    for epoch in range(s.epochs):
        set_train_modes(model, s.batchnorm_frozen)
        order = torch.randperm(len(train), generator=gen, device=device)
        total, preds = 0.0, torch.empty(len(train), dtype=torch.long, device=device)
        for start in range(0, len(train), s.batch_size):
            idx = order[start : start + s.batch_size]
            batch = train.batch(idx)
            if s.augment is not None:
                batch = s.augment(batch, gen)
            with autocast(device, s.bf16):
                logp = model(batch).float()
            loss = _loss(logp, train.y[idx], s.class_weight, train.weight, idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            preds[idx] = logp.argmax(1).detach()
        tr_k = kappa(y_train_np, preds.cpu().numpy(), s.n_classes, s.kappa_weights)
        val_loss, val_k, _ = evaluate(model, val, s)
        row = _row(s.phase, epoch, total / len(train), tr_k, val_loss, val_k, "")
        outcome.history.append(row)
        if report:
            report(s.phase, epoch, row)
        if stopper.update(score_of(val_loss, val_k), epoch):
            best_state = copy.deepcopy(model.state_dict())
        if stopper.stopped:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    outcome.best_score, outcome.best_epoch = stopper.best, stopper.best_epoch
    outcome.top_score = _top(outcome.history, s.monitor)
    return outcome


def _loss(logp, y, class_weight, weight, idx) -> torch.Tensor:
    """NLL, weighted per class and, where the split weighs its examples, per example:
    sum(w_i * nll_i) / sum(w_i), what F.nll_loss computes with class weights alone."""
    if weight is None:
        return F.nll_loss(logp, y, weight=class_weight)
    w = weight[idx] if class_weight is None else weight[idx] * class_weight[y]
    return (w * F.nll_loss(logp, y, reduction="none")).sum() / w.sum()


def _top(history: list[dict], monitor: str) -> float | None:
    values = [r[monitor] for r in history if r[monitor] == r[monitor]]  # drop NaN
    if not values:
        return None
    return max(values) if monitor == "val_kappa" else min(values)


def _row(phase, epoch, tr_loss, tr_k, val_loss, val_k, note) -> dict:
    return {
        "phase": phase,
        "epoch": epoch,
        "train_loss": tr_loss,
        "train_kappa": tr_k,
        "val_loss": val_loss,
        "val_kappa": val_k,
        "note": note,
    }


def autocast(device: torch.device, bf16: bool):
    enabled = bf16 and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)
