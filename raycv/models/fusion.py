"""Late fusion: fused probabilities = sum_m w_m * p_m over the forest and each image branch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raycv.models.cnn import ImageBranch


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

    def forward(
        self, batch: dict[str, torch.Tensor], skip: dict[str, int] | None = None
    ) -> torch.Tensor:
        """skip: per image branch, how many leading blocks its batch entry has already been
        through (PrecomputedPrefix); raw maps otherwise."""
        skip = skip or {}
        # each term: (B, C) probabilities of one branch, scaled by its weight
        probs = 0.0
        for i, name in enumerate(self.names):
            if name == "metadata":
                p = batch[name]
            else:
                p = self.branches[name](batch[name], skip.get(name, 0)).softmax(-1)
            probs = probs + self.weights[i] * p
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

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fusion(batch, self.skip)


def fit_fusion_weights(probs: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """Softmax-normalised weights minimising the fused NLL on out-of-sample probabilities.

    Callers pass the inner-validation split's probabilities: out-of-fold for the forest
    and out-of-sample for each CNN (none was trained on it), never in-sample ones.
    """
    names = list(probs)
    stacked = torch.tensor(np.stack([probs[m] for m in names]), dtype=torch.float64)  # (M, n, C)
    target = torch.as_tensor(y, dtype=torch.long)
    logits = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        w = logits.softmax(0)
        fused = (w[:, None, None] * stacked).sum(0).clamp_min(1e-7)  # (n, C)
        loss = nn.functional.nll_loss(fused.log(), target)
        loss.backward()
        return loss

    opt.step(closure)
    w = logits.detach().softmax(0).numpy()
    return {m: float(v) for m, v in zip(names, w, strict=True)}
