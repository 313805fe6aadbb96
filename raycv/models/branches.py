"""The image branch of one modality, built from the config: the one place that knows
which model a modality gets (image.backbone, image.modalities.<m>) and how many channels
its images have (data.rgb: 3, a map: 1)."""

from __future__ import annotations

from torch import nn

from raycv.config import Config
from raycv.models.cnn import ImageBranch


def in_channels(config: Config, modality: str) -> int:
    return 3 if modality in config.data.rgb else 1


def build_branch(config: Config, modality: str) -> nn.Module:
    """An untrained image branch of `modality` (weights: see models.weights)."""
    return ImageBranch(
        config.image.channels,
        len(config.classes),
        config.image.dropout,
        in_channels(config, modality),
    )
