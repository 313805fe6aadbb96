"""The image branch: a small CNN read top to bottom, with its pixel normalisation inside.

Blocks are the units of freezing: `stages()` lists the conv blocks then the head, so
`stage2.unfreeze_depth = k` unfreezes the last k of them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    # (B, c_in, H, W) -> (B, c_out, H/2, W/2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ImageBranch(nn.Module):
    """(B, c, S, S) images -> (B, C) class logits: c = 1 for a map (deg C, colormap
    positions, gray levels), 3 for a colour photo (data.rgb)."""

    def __init__(self, channels: list[int], n_classes: int, dropout: float, in_channels: int = 1):
        super().__init__()
        widths = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            conv_block(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),  # (B, C_last, h, w) -> (B, C_last, 1, 1)
            nn.Flatten(),  # -> (B, C_last)
            nn.Dropout(dropout),
            nn.Linear(channels[-1], n_classes),  # -> (B, n_classes)
        )
        # Fitted on the fold's inner-training pixels (set_normalisation), saved with the weights
        # so a checkpoint is usable on its own: one value for a map, one per channel of a photo.
        shape = () if in_channels == 1 else (in_channels, 1, 1)
        self.register_buffer("pixel_mean", torch.zeros(shape))
        self.register_buffer("pixel_std", torch.ones(shape))

    def set_normalisation(self, images: np.ndarray) -> None:
        """Fit the pixel normalisation on (K, c, S, S) training images (per channel)."""
        axes = (0, 2, 3) if self.pixel_mean.ndim else None
        mean, std = images.mean(axis=axes), images.std(axis=axes)
        self.pixel_mean.copy_(torch.as_tensor(mean).view(self.pixel_mean.shape))
        self.pixel_std.copy_(torch.as_tensor(std).clamp_min(1e-6).view(self.pixel_std.shape))

    def stage_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """(name, parameters) of each block, first to last: the conv blocks, then the head."""
        named = [(f"block{i + 1}", b) for i, b in enumerate(self.blocks)] + [("head", self.head)]
        return [(name, list(module.parameters())) for name, module in named]

    def forward(self, x: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """skip > 0: x is already `features(maps, skip)`, the output of the first `skip`
        blocks (see frozen_prefix_length)."""
        return self.head(self.features(x, len(self.blocks), start=skip))

    def features(self, x: torch.Tensor, upto: int, start: int = 0) -> torch.Tensor:
        """x after blocks start..upto-1; start=0 means x is the raw map (normalised first)."""
        if start == 0:
            x = (x - self.pixel_mean) / self.pixel_std
        for block in self.blocks[start:upto]:
            x = block(x)
        return x

    def frozen_prefix_length(self) -> int:
        """How many leading conv blocks cannot change while training: no trainable
        parameter, so (in eval mode, see training.loop.set_train_modes) their output is a
        fixed function of the input. Stage 2 computes it once instead of every epoch."""
        n = 0
        for block in self.blocks:
            if any(p.requires_grad for p in block.parameters()):
                break
            n += 1
        return n


def augment(
    x: torch.Tensor, flip: bool, rotate_degrees: float, gen: torch.Generator
) -> torch.Tensor:
    """Random flips and small rotations of a (B, 1, S, S) batch, drawn from `gen`."""
    b = x.shape[0]
    if flip:
        h = torch.rand(b, generator=gen, device=gen.device) < 0.5
        v = torch.rand(b, generator=gen, device=gen.device) < 0.5
        x = torch.where(h[:, None, None, None], x.flip(-1), x)
        x = torch.where(v[:, None, None, None], x.flip(-2), x)
    if rotate_degrees > 0:
        angle = (torch.rand(b, generator=gen, device=gen.device) * 2 - 1) * math.radians(
            rotate_degrees
        )
        cos, sin = angle.cos(), angle.sin()
        zero = torch.zeros_like(cos)
        theta = torch.stack(
            [torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1
        )
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return x


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def unfreeze_trailing(branch: nn.Module, depth: int | str) -> list[str]:
    """Make the last `depth` blocks of an image branch trainable ('all' = every block; a
    CNN's or a backbone's, see their stage_groups); returns their names."""
    groups = branch.stage_groups()
    k = len(groups) if depth == "all" else min(int(depth), len(groups))
    for _, params in groups[len(groups) - k :]:
        for p in params:
            p.requires_grad_(True)
    return [name for name, _ in groups[len(groups) - k :]]
