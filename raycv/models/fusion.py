"""Late fusion: fused probabilities = sum_m w_m * p_m over the forest and each image branch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raycv.models.cnn import ImageBranch
from raycv.models.visits import Batch, visit_mean


class LateFusion(nn.Module):
    """Fixed-weight mixture of branch probabilities; returns log-probabilities for NLL.

    The forest's probabilities arrive precomputed (they are not trainable); each image
    branch turns its map into probabilities with a softmax.
    """

    def __init__(self, branches: dict[str, ImageBranch], weights: dict[str, float]):
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.names = list(weights)  # 'metadata' (if used) and the image modalities
        w = torch.tensor([weights[m] for m in self.names], dtype=torch.float32)
        self.register_buffer("weights", w / w.sum())

    def forward(self, batch: Batch, skip: dict[str, int] | None = None) -> torch.Tensor:
        """skip: per image branch, how many leading blocks its images have already been
        through (PrecomputedPrefix); raw maps otherwise.

        A visit without an image of some modality (data.missing_images: mask) is fused
        from the branches it has, their weights renormalised to sum 1.
        """
        skip = skip or {}
        parts = []
        for name in self.names:
            if name == "metadata":
                parts.append((batch.visits[name], None))
            else:
                per_image = self.branches[name](batch.images[name], skip.get(name, 0)).softmax(-1)
                parts.append(visit_mean(per_image, batch.owner[name], batch.n))  # (n, C)
        return fuse(parts, self.weights)


def fuse(
    parts: list[tuple[torch.Tensor, torch.Tensor | None]], weights: torch.Tensor
) -> torch.Tensor:
    """Per branch (in the fusion's order) its (n, C) probabilities and (n,) has-it mask
    (None: every visit has it) -> (n, C) fused log-probabilities.

    A visit without some branch's input is fused from the branches it has, their weights
    renormalised to sum 1. `raycv predict` fuses with this same function.
    """
    probs, total, partial = 0.0, 0.0, False
    for w_m, (p, present) in zip(weights, parts, strict=True):
        if present is None:
            probs, total = probs + w_m * p, total + w_m
        else:
            w = w_m * present.to(p.dtype)  # (n,): 0 where the visit has none
            probs, total, partial = probs + w[:, None] * p, total + w, True
    if partial:  # (n,) weight of the branches each visit has
        probs = probs / torch.as_tensor(total)[:, None]
    return torch.log(probs.clamp_min(1e-7))


class PrecomputedPrefix(nn.Module):
    """A LateFusion whose image inputs were passed through each branch's frozen leading
    blocks once, up front (training.two_stage.skip_frozen_prefixes), instead of on every
    batch of every epoch.

    Exact, not an approximation: a frozen block holds no trainable parameter and stays in
    eval mode while training (no dropout, fixed BatchNorm statistics), so its output never
    changes. Its parameters are the fusion's own, so training it trains the fusion.
    """

    def __init__(self, fusion: LateFusion, skip: dict[str, int]):
        super().__init__()
        self.fusion, self.skip = fusion, skip

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.fusion(batch, self.skip)


def fit_fusion_weights(probs: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """Softmax-normalised weights minimising the fused NLL on out-of-sample probabilities.

    Callers pass the inner-validation split's probabilities: out-of-fold for the forest
    and out-of-sample for each CNN (none was trained on it), never in-sample ones. A NaN
    row (a visit without that modality's image) leaves the branch out of that visit's
    mixture, whose weights renormalise, exactly as LateFusion fuses it.
    """
    names = list(probs)
    stacked = np.stack([probs[m] for m in names])  # (M, n, C)
    present = torch.tensor(~np.isnan(stacked).any(-1), dtype=torch.float64)  # (M, n)
    partial = bool((present == 0).any())
    stacked = torch.tensor(np.nan_to_num(stacked), dtype=torch.float64)
    target = torch.as_tensor(y, dtype=torch.long)
    logits = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        w = logits.softmax(0)[:, None] * present  # (M, n)
        if partial:
            w = w / w.sum(0).clamp_min(1e-12)
        fused = (w[:, :, None] * stacked).sum(0).clamp_min(1e-7)  # (n, C)
        loss = nn.functional.nll_loss(fused.log(), target)
        loss.backward()
        return loss

    opt.step(closure)
    w = logits.detach().softmax(0).numpy()
    return {m: float(v) for m, v in zip(names, w, strict=True)}
