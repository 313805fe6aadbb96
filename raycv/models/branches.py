"""The image branch of one modality, built from the config's choice (choice.py):
wherever a fold, `raycv predict` or the frozen-feature cache needs one.
"""

from __future__ import annotations

from torch import nn

from raycv.config import Config
from raycv.models import weights as weights_mod
from raycv.models.backbone import BackboneBranch
from raycv.models.choice import CNN, in_channels, weights_key
from raycv.models.cnn import ImageBranch


def build_branch(config: Config, modality: str, initial: bool = False) -> nn.Module:
    """The image branch of `modality`. initial: with its starting weights loaded (image.weights;
    the file is read again here, so a worker needs nothing from the driver but the config);
    otherwise the caller loads a saved state into it."""
    backbone, spec = config.image.model_of(modality)
    n_classes, dropout = len(config.classes), config.image.dropout
    channels = in_channels(config, modality)
    if backbone == CNN:
        return ImageBranch(config.image.channels, n_classes, dropout, channels)
    branch = BackboneBranch(backbone, n_classes, dropout, channels, spec != weights_mod.NONE)
    if initial and spec != weights_mod.NONE:
        source = weights_mod.resolve(backbone, spec, weights_key(config, modality))
        branch.backbone.load_state_dict(weights_mod.strip_classifier(backbone, source.state_dict()))
    return branch
