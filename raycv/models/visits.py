"""A batch of visits, and how a visit's several images become one prediction.

A wound visit may have several images of a modality (angles, before/after
debridement) or, with `data.missing_images: mask`, none. Every model sees a batch of
visits: per-visit inputs (the forest's probabilities) plus each modality's images with
the batch visit each belongs to. A visit's image-model probability is the mean of its
images' probabilities; gradients flow through that mean (stage 2 trains through it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """n visits. `owner[m]` is None when modality m has exactly one image per visit, in
    visit order: the common case, which then costs no gather and no mean."""

    n: int
    visits: dict[str, torch.Tensor] = field(default_factory=dict)  # 'metadata' -> (n, C)
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # m -> (K, 1, S, S) or features
    owner: dict[str, torch.Tensor | None] = field(default_factory=dict)  # m -> (K,) in 0..n-1


def visit_mean(
    probs: torch.Tensor, owner: torch.Tensor | None, n: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(K, C) image probabilities -> ((n, C) per-visit means, (n,) bool has-an-image).

    The mask is None when every visit has an image; a visit without one gets a zero row,
    which callers must leave out (LateFusion renormalises over the branches present).
    """
    if owner is None:
        return probs, None
    sums = probs.new_zeros((n, probs.shape[1])).index_add(0, owner, probs)  # (n, C)
    counts = torch.bincount(owner, minlength=n)  # (n,) images per visit
    means = sums / counts.clamp_min(1).to(probs.dtype)[:, None]
    present = counts > 0
    return means, (None if bool(present.all()) else present)
