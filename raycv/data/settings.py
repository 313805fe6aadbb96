"""What the config, dataset.yaml and the defaults resolve to for one dataset.

Precedence: a value set in the config (not None) wins, then dataset.yaml, then the
built-in default ([I, P, R]; [metadata, thermal_map]; every column that is not an id or
the label). `data.colormaps` merges per modality: the config's entry wins over
dataset.yaml's. `data.crop_margin`, `data.rgb` and `image.modalities` may name any image
modality the dataset declares (a typo would silently crop without a margin, read photos
as maps, or train the section's model, so any other name is refused). A photo modality (`data.rgb`) is never colour-mapped: one that
dataset.yaml's colormaps names is refused (the config refuses its own overlap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raycv.config import DEFAULT_CLASSES, DEFAULT_MODALITIES, ColumnsConfig, Config
from raycv.data import colormap
from raycv.errors import DataError


@dataclass(frozen=True)
class Settings:
    classes: tuple[str, ...]
    modalities: tuple[str, ...]  # the branches in use
    features: tuple[str, ...]
    columns: ColumnsConfig
    image_size: int
    # image modality -> matplotlib colormap name of its colour PNGs
    colormaps: dict[str, str] = field(default_factory=dict)
    # every modality a manifest row may name: the ones in use and dataset.yaml's list
    declared_modalities: tuple[str, ...] = ()
    na_values: tuple[str, ...] = ()
    encoding: str = "utf-8"
    missing_images: str = "refuse"
    max_off_colormap: float = 0.05
    # image modality -> margin around each box of images.csv (int pixels, float share)
    crop_margin: dict[str, int | float] = field(default_factory=dict)
    resize: str = "stretch"  # how a map becomes the CNN's square: stretch | pad
    # image modalities whose files are colour photos, read as 3-channel RGB (data.rgb)
    rgb: tuple[str, ...] = ()

    @property
    def image_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m != "metadata")


def resolve(config: Config, spec: dict, header: list[str]) -> Settings:
    """Apply the precedence config > dataset.yaml (`spec`) > defaults."""
    data = config.data
    default_columns = ColumnsConfig()
    spec_columns = spec.get("columns", {})
    columns = ColumnsConfig(
        **{
            role: (ours if ours != getattr(default_columns, role) else spec_columns.get(role, ours))
            for role, ours in vars(data.columns).items()
        }
    )
    roles = (columns.sample_id, columns.patient_id, columns.label)
    features = data.features
    if features is None:
        features = spec.get("features", [c for c in header if c not in roles])
    modalities = tuple(data.modalities or spec.get("modalities") or DEFAULT_MODALITIES)
    colormaps = {**spec.get("colormaps", {}), **data.colormaps}
    for modality, name in data.colormaps.items():
        if not colormap.known(name):
            raise DataError(
                f"data.colormaps.{modality}={name!r} is not a matplotlib colormap "
                "(e.g. viridis, inferno, magma, jet, turbo, gray; see matplotlib.colormaps)"
            )
    for modality, name in spec.get("colormaps", {}).items():
        if modality not in data.colormaps and not colormap.known(name):
            raise DataError(
                f"dataset.yaml colormaps.{modality}={name!r} is not a matplotlib colormap; "
                f"fix it or override it with --set data.colormaps.{modality}=<name>"
            )
    declared = tuple(dict.fromkeys([*modalities, *spec.get("modalities", [])]))
    images = [m for m in declared if m != "metadata"]
    named = [(f"data.crop_margin.{m}", m) for m in data.crop_margin]
    named += [(f"image.modalities.{m}", m) for m in config.image.modalities]
    for key, modality in named:
        if modality not in images:
            raise DataError(
                f"{key}: {modality!r} is no image modality of this "
                f"dataset (data.modalities or dataset.yaml's modalities: {images})"
            )
    _check_rgb(data.rgb, images, spec.get("colormaps", {}))
    return Settings(
        classes=tuple(data.classes or spec.get("classes") or DEFAULT_CLASSES),
        modalities=modalities,
        features=tuple(features),
        columns=columns,
        image_size=data.image_size,
        colormaps=colormaps,
        declared_modalities=declared,
        na_values=tuple(data.na_values),
        encoding=data.encoding,
        missing_images=data.missing_images,
        max_off_colormap=data.max_off_colormap,
        crop_margin=dict(data.crop_margin),
        resize=data.resize,
        rgb=tuple(data.rgb),
    )


def _check_rgb(rgb: list[str], images: list[str], yaml_colormaps: dict[str, str]) -> None:
    """Every data.rgb entry is an image modality of the dataset, and none is colour-mapped."""
    for modality in rgb:
        if modality not in images:
            raise DataError(
                f"data.rgb: {modality!r} is no image modality of this dataset "
                f"(data.modalities or dataset.yaml's modalities: {images})"
            )
        if modality in yaml_colormaps:
            raise DataError(
                f"data.rgb names {modality!r}, but dataset.yaml's colormaps.{modality}="
                f"{yaml_colormaps[modality]!r} says its PNGs are colour-mapped maps; a photo is "
                f"read as RGB, a map through its colormap: drop {modality!r} from data.rgb, or "
                "its colormap from dataset.yaml"
            )
