"""Which image model each modality gets, decided from the config alone: the one place
that knows (image.backbone, image.weights, image.modalities.<m>) and how many channels
its images have (data.rgb: 3, a map: 1).

`check_image_models` refuses a bad choice before any data is read or anything written.
Without torch: the driver of a Ray run or a search checks the config but trains nothing,
and importing torch would cost it ~1 s of a 2-core machine's start (timm, and with it
torch, loads only for a timm backbone). The branches themselves are built in branches.py.
"""

from __future__ import annotations

from raycv.config import Config
from raycv.config_coercion import ConfigError
from raycv.models import weights as weights_mod

CNN = "cnn"


def in_channels(config: Config, modality: str) -> int:
    return 3 if modality in config.data.rgb else 1


def is_pretrained(config: Config, modality: str) -> bool:
    """Whether the modality's branch starts from pretrained weights (a timm backbone with
    image.weights other than none): pretraining then has two steps, and its frozen
    backbone's features are computed once (frozen_features.py)."""
    backbone, spec = config.image.model_of(modality)
    return backbone != CNN and spec != weights_mod.NONE


def n_blocks(config: Config, modality: str) -> int:
    """The blocks `unfreeze_depth` counts: the CNN's conv blocks or the backbone's stages,
    then the head."""
    backbone, _ = config.image.model_of(modality)
    if backbone == CNN:
        return len(config.image.channels) + 1
    from raycv.models.backbone import n_stages  # timm: only for a timm backbone

    return n_stages(backbone) + 1


def weights_key(config: Config, modality: str) -> str:
    """The config key a modality's weights come from, for messages."""
    own = config.image.modalities.get(modality)
    return f"image.modalities.{modality}.weights" if own and own.weights else "image.weights"


def _backbone_key(config: Config, modality: str) -> str:
    own = config.image.modalities.get(modality)
    return f"image.modalities.{modality}.backbone" if own and own.backbone else "image.backbone"


def check_image_models(config: Config) -> dict[str, weights_mod.WeightsFile | None]:
    """Refuse, naming the key, a backbone timm does not know, weights that a backbone
    cannot take (or that are neither on disk nor reachable), and an unfreeze depth beyond
    a branch's blocks. Returns each image modality's checked weights file (None: none)."""
    checked = {}
    for m in config.image_modalities:
        backbone, spec = config.image.model_of(m)
        if backbone == CNN:
            if spec != weights_mod.NONE:
                raise ConfigError(
                    f"{weights_key(config, m)}={spec!r}: raycv's cnn trains from scratch; "
                    f"pretrained weights need a timm backbone ({_backbone_key(config, m)}: "
                    "resnet18, densenet121, ...)"
                )
            checked[m] = None
        else:
            from raycv.models.backbone import known_model  # timm: only for a timm backbone

            if not known_model(backbone):
                raise ConfigError(
                    f"{_backbone_key(config, m)}={backbone!r} is neither cnn nor a timm model "
                    f"(python -c \"import timm; print(timm.list_models('*{backbone[:6]}*'))\")"
                )
            checked[m] = weights_mod.resolve(backbone, spec, weights_key(config, m))
        blocks = n_blocks(config, m)
        depths = [("stage2.unfreeze_depth", config.stage2.unfreeze_depth)]
        if is_pretrained(config, m):
            depths.append(("pretrain.unfreeze_depth", config.pretrain.unfreeze_depth))
        for key, depth in depths:
            if depth != "all" and depth > blocks:
                raise ConfigError(
                    f"{key}={depth} is more than the {blocks} blocks of the {m} branch "
                    f"({backbone}: {blocks - 1} {'conv blocks' if backbone == CNN else 'stages'}"
                    f" plus the head); use 1..{blocks} or 'all'"
                )
    return checked
