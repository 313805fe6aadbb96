"""A timm backbone as an image branch: the library's model without its classifier, then
raycv's head (dropout, linear), with the input normalisation inside.

timm (Hugging Face's PyTorch Image Models) builds every architecture the original project
compared (DenseNet121, EfficientNet, ResNet) and torchvision's, with one interface: a
model made with `num_classes=0` returns its pooled features, `feature_info` names its
stages, `pretrained_cfg` gives the mean and std its pretrained weights expect.

Blocks, the units of freezing (`stage2.unfreeze_depth`, `pretrain.unfreeze_depth`), are
the backbone's stages as `feature_info` reports them, then the head. A parameter between
two reported stages (a DenseNet transition, EfficientNet's head convolution) belongs to
the stage it feeds, or to the last one; the stem to the first.

Input: a map (1 channel) enters the 3-channel backbone repeated into its three channels,
so pretrained weights apply unchanged. With pretrained weights each map is first scaled
to [0, 1] by its own minimum and maximum (no statistic of any fold, so the frozen
backbone's output stays a function of the image alone: raycv/frozen_features.py), and
every input is normalised with the weights' own mean and std. With random weights the
fold's inner-training pixels give mean and std (per channel), as for the CNN.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import nn


class BackboneBranch(nn.Module):
    """(B, c, S, S) images -> (B, C) class logits through a timm backbone."""

    # images this process has passed through a backbone: the frozen-feature cache's
    # promise (one pass per image) is counted, not timed (tests/test_backbones.py)
    images_through = 0

    def __init__(
        self, name: str, n_classes: int, dropout: float, in_channels: int, pretrained: bool
    ):
        super().__init__()
        import timm  # seconds to import: only runs that use a backbone pay for it

        self.name, self.in_channels, self.pretrained = name, in_channels, pretrained
        self.backbone = timm.create_model(name, pretrained=False, num_classes=0)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.backbone.num_features, n_classes),  # (B, D) -> (B, n_classes)
        )
        cfg = self.backbone.pretrained_cfg
        mean, std = cfg.get("mean", (0.5, 0.5, 0.5)), cfg.get("std", (0.5, 0.5, 0.5))
        # the weights' own normalisation, or (random weights) the fold's: saved with the
        # weights, so a checkpoint is usable on its own
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(3, 1, 1))
        self._groups = stage_groups(self.backbone)

    # -- normalisation ------------------------------------------------------------
    def set_normalisation(self, images: np.ndarray) -> None:
        """Random weights: fit mean and std on the fold's (K, c, S, S) training images.
        Pretrained weights keep their own (a fold statistic would change their input)."""
        if self.pretrained:
            return
        mean = images.mean(axis=(0, 2, 3)) * np.ones(3)  # a map's one channel -> all three
        std = images.std(axis=(0, 2, 3)) * np.ones(3)
        self.pixel_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1))
        self.pixel_std.copy_(
            torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6).view(3, 1, 1)
        )

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c, S, S) images -> (B, 3, S, S) backbone input."""
        if self.pretrained and self.in_channels == 1 and len(x):
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            x = (x - lo) / (hi - lo).clamp_min(1e-6)  # each map on [0, 1], as a photo is
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.pixel_mean) / self.pixel_std

    # -- forward --------------------------------------------------------------------
    def forward(self, x: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """skip > 0: x is already `features(images, 1)`, the frozen backbone's output."""
        return self.head(x if skip else self.features(x, 1))

    def features(self, x: torch.Tensor, upto: int = 1, start: int = 0) -> torch.Tensor:
        """(B, c, S, S) images -> (B, D) pooled backbone features. A backbone is one
        block for precomputing: its stages are not run piecewise."""
        BackboneBranch.images_through += len(x)
        return self.backbone(self.normalise(x))

    def frozen_prefix_length(self) -> int:
        """1 when no parameter of the backbone trains (its output is then a fixed function
        of the image, in eval mode: training.loop.set_train_modes), else 0."""
        return 0 if any(p.requires_grad for p in self.backbone.parameters()) else 1

    # -- blocks -------------------------------------------------------------------------
    def stage_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """(name, parameters) of each block, first to last: the stages, then the head."""
        params = dict(self.backbone.named_parameters())
        stages = [(name, [params[p] for p in names]) for name, names in self._groups]
        return [*stages, ("head", list(self.head.parameters()))]


def stage_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """(stage module name, its parameter names) of a timm model's `feature_info` stages.

    Parameters are walked in registration order (the order of the forward pass in timm's
    models); one that lies in no reported stage goes to the next stage to come (a stem to
    the first, a transition to the stage it feeds), or to the last after the last stage.
    """
    stages = [info["module"] for info in model.feature_info]
    groups: list[list[str]] = [[] for _ in stages]
    last = -1
    for pname, _ in model.named_parameters():
        k = next((i for i, s in enumerate(stages) if pname == s or pname.startswith(s + ".")), None)
        if k is None:
            k = min(last + 1, len(stages) - 1)
        else:
            last = k
        groups[k].append(pname)
    return list(zip(stages, groups, strict=True))


@cache
def n_stages(name: str) -> int:
    """How many stages timm reports for the architecture (its blocks before the head)."""
    import timm

    return len(timm.create_model(name, pretrained=False, num_classes=0).feature_info)


def known_model(name: str) -> bool:
    import timm

    return timm.is_model(name)
