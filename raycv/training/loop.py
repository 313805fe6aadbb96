"""One training phase: epochs of mini-batches, inner-validation scoring, early stopping.

Models take a batch dict ('metadata' -> (B, C) forest probabilities, modality ->
(B, 1, S, S) maps) and return (B, C) log-probabilities; the loss is their NLL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raycv.metrics import kappa
from raycv.training.early_stopping import EarlyStopping

Report = Callable[[str, int, dict], None]  # (phase, epoch, history row) -> None


@dataclass
class Split:
    """One split's inputs and labels, already on the fold's device."""

    inputs: dict[str, torch.Tensor]
    y: torch.Tensor  # (n,) class indices

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.inputs.items()}


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
    """(loss, kappa, probabilities) of `model` on `split`."""
    probs = predict(model, split, settings.batch_size, settings.bf16)
    y = split.y.cpu().numpy()
    loss = float(F.nll_loss(torch.from_numpy(np.log(np.clip(probs, 1e-7, None))), split.y.cpu()))
    k = kappa(y, probs.argmax(1), settings.n_classes, settings.kappa_weights)
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
            loss = F.nll_loss(logp, train.y[idx], weight=s.class_weight)
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
