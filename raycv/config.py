"""Typed experiment config: its sections, their checks, and reading one from YAML.

Every section is a dataclass whose fields carry a comment each (`raycv config` prints
them) and whose __post_init__ refuses a bad value by its dotted key; checks that span
sections run once the whole config is built. A config comes from an experiment YAML
plus dotted `--set key=value` overrides, applied in order. Turning YAML and override
text into these dataclasses, strictly, is raycv.config_coercion's job.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from raycv.config_coercion import (
    ConfigError,
    accepts,
    build,
    key_type,
    parse_override,
    set_dotted,
)
from raycv.config_coercion import flatten as flatten_tree


@dataclass
class ColumnsConfig:
    sample_id: str = "sample_id"  # unique per row of metadata.csv
    patient_id: str = "patient_id"  # a patient may have several samples (visits)
    label: str = "label"  # one of data.classes


@dataclass
class SyntheticConfig:
    patients: int = 268  # size of the built-in cohort (~3.3 visits per patient)
    seed: int = 0  # the cohort is a pure function of (patients, seed, image_size)
    image_size: int = 64  # side of the generated maps, before data.image_size resizing
    # images per visit and modality: 1 = exactly one; k > 1 = 1 + Poisson(k - 1), k on average
    images_per_visit: int = 1
    # share of (visit, image modality) pairs without any image, drawn independently
    missing_images: float = 0.0

    def __post_init__(self):
        _require(self.patients >= 2, "data.synthetic.patients", self.patients, "an int >= 2")
        _require(self.image_size >= 8, "data.synthetic.image_size", self.image_size, "an int >= 8")
        _require(
            self.images_per_visit >= 1,
            "data.synthetic.images_per_visit",
            self.images_per_visit,
            "an int >= 1",
        )
        _require(
            0.0 <= self.missing_images < 1.0,
            "data.synthetic.missing_images",
            self.missing_images,
            "a share in [0, 1)",
        )


@dataclass
class DataConfig:
    path: str | None = None  # dataset folder (or URI); None = the synthetic cohort
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # None = from dataset.yaml if it has them, else [I, P, R]; ordinal, in this order
    classes: list[str] | None = None
    # None = from dataset.yaml if it has them, else [metadata, thermal_map]
    modalities: list[str] | None = None
    image_size: int = 64  # side of the square maps fed to the CNN
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    # feature columns of metadata.csv; None = every column that is not an id or the label
    features: list[str] | None = None
    # image modality -> the matplotlib colormap its RGB/RGBA PNGs were exported with
    colormaps: dict[str, str] = field(default_factory=dict)
    # image modalities whose files are colour photos (.png, .jpg, .jpeg), read as 3-channel
    # RGB (alpha dropped), never through a colormap
    rgb: list[str] = field(default_factory=list)
    # share of a colour-mapped PNG's pixels allowed far from every colormap colour
    # (annotations, background); a file with more is refused
    max_off_colormap: float = 0.05
    # a visit without an image of a selected modality: refuse | drop the visit | mask it
    missing_images: Literal["refuse", "drop", "mask"] = "refuse"
    # image modality -> margin added on every side of each box of images.csv (xmin, ymin,
    # xmax, ymax): an int in pixels, or a float below 1, a share of the box's side; the crop
    # is clipped to the file
    crop_margin: dict[str, int | float] = field(default_factory=dict)
    # how an image becomes the CNN's square: stretch (to the square) | pad (aspect ratio
    # kept, the longer side fitted, centred on a square filled with the scale's lowest value)
    resize: Literal["stretch", "pad"] = "stretch"
    # metadata.csv cells read as missing; words like "None" are categories, not gaps
    na_values: list[str] = field(default_factory=lambda: list(DEFAULT_NA_VALUES))
    encoding: str = "utf-8"  # metadata.csv text encoding (a UTF-8 BOM is accepted)

    def __post_init__(self):
        _require(self.image_size >= 8, "data.image_size", self.image_size, "an int >= 8")
        _require(
            0.0 <= self.max_off_colormap < 1.0,
            "data.max_off_colormap",
            self.max_off_colormap,
            "a share in [0, 1)",
        )
        _require(bool(self.encoding.strip()), "data.encoding", self.encoding, "an encoding name")
        for modality, margin in self.crop_margin.items():
            _require(
                margin >= 0 and (isinstance(margin, int) or margin < 1),
                f"data.crop_margin.{modality}",
                margin,
                "an int >= 0 (pixels) or a float in [0, 1) (a share of the box's side)",
            )
        if self.classes is not None:
            _require(len(self.classes) >= 2, "data.classes", self.classes, "two or more labels")
            _require(
                len(set(self.classes)) == len(self.classes),
                "data.classes",
                self.classes,
                "distinct labels",
            )
        if overlap := [m for m in self.rgb if m in self.colormaps]:
            raise ConfigError(
                f"data.rgb and data.colormaps both name {overlap}: a colour photo is read as "
                "RGB, a colour-mapped map through its colormap; name each modality in one"
            )
        if self.modalities is not None:
            _require(len(self.modalities) >= 1, "data.modalities", self.modalities, "one or more")
            _require(
                len(set(self.modalities)) == len(self.modalities),
                "data.modalities",
                self.modalities,
                "distinct names",
            )


@dataclass
class CVConfig:
    # outer folds, split by patient, stratified by label; null: 3, or with cv.split_by one
    # fold per value of that column
    folds: int | None = None
    seed: int = 0  # split and training seed; every phase's seed derives from it
    # independent repetitions of the patient-grouped split (repeated CV); repeat 0 is the
    # unrepeated split, repeat i is seeded from cv.seed and i
    repeats: int = 1
    # a metadata column constant within each patient (e.g. site): one outer fold per value
    # (leave one site out); null: folds stratified by label
    split_by: str | None = None
    # a folds.csv (sample_id, fold, optional repeat) to use instead of computing folds
    folds_file: str | None = None
    inner_val_fraction: float = 0.2  # patients of each training fold held out for early stopping

    def __post_init__(self):
        if self.folds is None and self.split_by is None:
            self.folds = 3
        _require(self.folds is None or self.folds >= 2, "cv.folds", self.folds, "an int >= 2")
        _require(self.repeats >= 1, "cv.repeats", self.repeats, "an int >= 1")
        if self.split_by is not None:
            _require(
                self.repeats == 1,
                "cv.repeats",
                self.repeats,
                f"1 with cv.split_by={self.split_by!r}: one fold per value is a fixed split, "
                "so repeating it would repeat the same folds",
            )
            _require(
                self.folds_file is None,
                "cv.folds_file",
                self.folds_file,
                f"null with cv.split_by={self.split_by!r} (one or the other decides the folds)",
            )
        _require(
            0.0 < self.inner_val_fraction < 0.5,
            "cv.inner_val_fraction",
            self.inner_val_fraction,
            "a fraction in (0, 0.5)",
        )


@dataclass
class MetadataConfig:
    n_estimators: int = 500  # trees of the random forest on the metadata features
    max_depth: int | None = None  # deepest a tree may grow; null: until its leaves are pure
    class_weight: Literal["balanced", "none"] = "balanced"  # forest class weighting
    min_samples_leaf: int = 1  # fewest training samples a forest leaf may hold
    # patient-grouped inner folds that give the fusion out-of-fold forest probabilities
    inner_folds: int = 5

    def __post_init__(self):
        _require(self.n_estimators >= 1, "metadata.n_estimators", self.n_estimators, "an int >= 1")
        _require(
            self.max_depth is None or self.max_depth >= 1,
            "metadata.max_depth",
            self.max_depth,
            "an int >= 1 or null",
        )
        _require(
            self.min_samples_leaf >= 1,
            "metadata.min_samples_leaf",
            self.min_samples_leaf,
            "an int >= 1",
        )
        _require(self.inner_folds >= 2, "metadata.inner_folds", self.inner_folds, "an int >= 2")


@dataclass
class AugmentConfig:
    flip: bool = True  # random horizontal and vertical flips
    rotate_degrees: float = 10.0  # random rotation in [-r, r]; 0 turns it off


@dataclass
class ImageModelConfig:
    """One image modality's own model, overriding the image section's (null: its value)."""

    backbone: str | None = None  # as image.backbone, for this modality
    weights: str | None = None  # as image.weights, for this modality


@dataclass
class ImageConfig:
    # cnn: raycv's small CNN (image.channels), trained from scratch; or a timm model name
    # (resnet18, densenet121, efficientnet_b0, convnext_tiny, ...)
    backbone: str = "cnn"
    # a timm backbone's starting weights: none (random) | imagenet (timm's pretrained
    # weights, from its cache or its hub) | a path or URI of a .pth/.pt state dict or a
    # .safetensors file
    weights: str = "none"
    # image modality -> {backbone, weights} of its own (the original tunes each modality)
    modalities: dict[str, ImageModelConfig] = field(default_factory=dict)
    # output channels of each conv-BN-ReLU-pool block of the cnn; its length is the depth
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    dropout: float = 0.3  # before the classification head
    batch_size: int = 32  # images per training step, in every phase that trains a branch
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        _require(len(self.channels) >= 1, "image.channels", self.channels, "one or more ints")
        _require(all(c >= 1 for c in self.channels), "image.channels", self.channels, "ints >= 1")
        _require(0.0 <= self.dropout < 1.0, "image.dropout", self.dropout, "a float in [0, 1)")
        _require(self.batch_size >= 1, "image.batch_size", self.batch_size, "an int >= 1")
        for key, spec in [
            ("image", self),
            *((f"image.modalities.{m}", s) for m, s in self.modalities.items()),
        ]:
            _require(
                spec.backbone is None or bool(spec.backbone.strip()),
                f"{key}.backbone",
                spec.backbone,
                "cnn or a timm model name",
            )
            _require(
                spec.weights is None or bool(spec.weights.strip()),
                f"{key}.weights",
                spec.weights,
                "none, imagenet, or a path",
            )

    def model_of(self, modality: str) -> tuple[str, str]:
        """(backbone, weights) of one image modality: its own entry's, else the section's."""
        own = self.modalities.get(modality) or ImageModelConfig()
        return own.backbone or self.backbone, own.weights or self.weights


@dataclass
class PhaseConfig:
    SECTION: ClassVar[str] = "phase"  # the dotted prefix its keys are named by

    epochs: int = 100  # most epochs the phase trains (early stopping may end it sooner)
    lr: float = 1e-3  # Adam learning rate
    patience: int = 10  # epochs without an improvement before early stopping ends the phase
    min_delta: float = 0.0  # smallest change of the monitored score that counts as one

    def __post_init__(self):
        key = self.SECTION
        _require(self.epochs >= 1, f"{key}.epochs", self.epochs, "an int >= 1")
        _require(self.lr > 0, f"{key}.lr", self.lr, "a number > 0")
        _require(self.patience >= 1, f"{key}.patience", self.patience, "an int >= 1")
        _require(self.min_delta >= 0, f"{key}.min_delta", self.min_delta, "a number >= 0")


@dataclass
class PretrainConfig(PhaseConfig):
    SECTION: ClassVar[str] = "pretrain"
    class_weight: Literal["balanced", "none"] = "balanced"  # CNN loss weighting by class
    # with pretrained weights (image.weights not none), pretraining has two steps: the head
    # alone on the frozen backbone (pretrain.lr), then the last unfreeze_depth blocks
    # (counted as stage2.unfreeze_depth counts them: the head is the last) fine-tuned at
    # finetune_lr with BatchNorm statistics fixed, kept only if inner-validation kappa
    # improves. 0 or 1: the head alone (no second step). Unused for weights: none.
    unfreeze_depth: int | Literal["all"] = 2
    finetune_lr: float = 1e-5  # Adam learning rate of the second step (the fine-tuning)

    def __post_init__(self):
        super().__post_init__()
        if self.unfreeze_depth != "all":
            _require(
                self.unfreeze_depth >= 0,
                "pretrain.unfreeze_depth",
                self.unfreeze_depth,
                "an int >= 0 or 'all'",
            )
        _require(self.finetune_lr > 0, "pretrain.finetune_lr", self.finetune_lr, "a number > 0")


@dataclass
class Stage1Config(PhaseConfig):
    SECTION: ClassVar[str] = "stage1"
    epochs: int = 30
    lr: float = 1e-4


@dataclass
class Stage2Config(PhaseConfig):
    SECTION: ClassVar[str] = "stage2"
    lr: float = 1e-6
    min_delta: float = 0.0005
    # trailing blocks of each image branch unfrozen (the head counts as the last block)
    unfreeze_depth: int | Literal["all"] = "all"
    # frozen: BatchNorm running statistics stay fixed, so the LR alone moves the branch
    batchnorm: Literal["frozen", "train"] = "frozen"

    def __post_init__(self):
        super().__post_init__()
        if self.unfreeze_depth != "all":
            _require(
                self.unfreeze_depth >= 1,
                "stage2.unfreeze_depth",
                self.unfreeze_depth,
                "an int >= 1 or 'all'",
            )


@dataclass
class FusionConfig:
    # late-fusion weight per branch, normalised to sum 1. None: metadata 0.7 and 0.3 shared
    # by the image branches (the design's 70/30); a given mapping must name every branch
    weights: dict[str, float] | None = None
    # fixed: the weights above; learned: fitted on the inner-validation split's probabilities
    mode: Literal["fixed", "learned"] = "fixed"


@dataclass
class EarlyStoppingConfig:
    # inner-validation score that early stopping and the stage 1 / stage 2 choice follow;
    # where kappa is undefined (one class in a split) the loss decides, with a warning
    monitor: Literal["val_kappa", "val_loss"] = "val_kappa"


@dataclass
class MetricsConfig:
    kappa_weights: Literal["none", "linear", "quadratic"] = "quadratic"  # Cohen's kappa weighting


@dataclass
class FoldResources:
    cpu: float = 1.0  # also the fold's torch thread count (rounded, at least 1)
    gpu: float = 0.0  # fractions pack several folds on one card

    def __post_init__(self):
        _require(self.cpu > 0, "resources.per_fold.cpu", self.cpu, "a number > 0")
        _require(self.gpu >= 0, "resources.per_fold.gpu", self.gpu, "a number >= 0")


@dataclass
class ResourcesConfig:
    per_fold: FoldResources = field(default_factory=FoldResources)
    bf16: bool = False  # bf16 autocast on CUDA folds
    max_failures: int = 2  # retries of a fold whose worker died, from its last checkpoint
    # folds that run at once on Ray, each in its own lane (a Ray Train worker that runs
    # its folds one after another). None: as many as the resources fit (a local Ray), or
    # every fold (a joined cluster, which may still add nodes). Never changes results.
    concurrent_folds: int | None = None

    def __post_init__(self):
        _require(
            self.concurrent_folds is None or self.concurrent_folds >= 1,
            "resources.concurrent_folds",
            self.concurrent_folds,
            "an int >= 1 or null",
        )


@dataclass
class TuneConfig:
    # dotted config key -> {loguniform: [lo, hi]} | {uniform: [lo, hi]} | {randint: [lo, hi]}
    # (hi included) | {choice: [v, ...]}. None: stage2.lr log-uniform 1e-8..1e-6 and
    # stage2.unfreeze_depth over 1..all blocks
    space: dict[str, dict] | None = None
    num_samples: int = 8  # trials, each a full cross-validation
    max_concurrent_trials: int = 2  # trials at once; each gets that share of the fold lanes
    search_alg: Literal["random", "optuna"] = "random"  # random is seeded by cv.seed
    # asha: trials report after each fold in fold order and weak ones stop at a rung
    scheduler: Literal["none", "asha"] = "none"
    # compute the phases no searched key changes (forest, pretraining, stage 1) once per
    # fold and share them across trials and searches
    reuse: bool = True
    cache_dir: str | None = None  # where shared phases live; None: <output parent>/.raycv-cache

    def __post_init__(self):
        _require(self.num_samples >= 1, "tune.num_samples", self.num_samples, "an int >= 1")
        _require(
            self.max_concurrent_trials >= 1,
            "tune.max_concurrent_trials",
            self.max_concurrent_trials,
            "an int >= 1",
        )


@dataclass
class TrackingConfig:
    mlflow: bool = False  # log the finished run (a search: every trial) to MLflow
    mlflow_uri: str | None = None  # any MLflow tracking URI; None: file store <run folder>/mlruns
    tensorboard: bool = False  # event files: <run folder>/tensorboard; a search: each trial's


@dataclass
class ReportConfig:
    # metadata columns whose values get their own kappa (numeric: quartiles, labelled by
    # their ranges; missing values: a group "missing"); `raycv report RUN --set
    # report.subgroups=[age,sex]` recomputes them without training
    subgroups: list[str] = field(default_factory=list)


@dataclass
class AblationConfig:
    # `raycv ablate`: which combinations of data.modalities to run on the same folds. `all`:
    # every non-empty subset; or a list of them: [[metadata], [metadata, thermal_map]]
    combinations: Literal["all"] | list[list[str]] = "all"
    require: list[str] = field(default_factory=list)  # modalities every combination holds
    # the combination every other is compared with, by name (modalities joined by '+' in
    # data.modalities order: metadata+thermal_map) or as a list; null: metadata when it is
    # one of data.modalities, else the first combination
    reference: str | list[str] | None = None


@dataclass
class Config:
    name: str = "experiment"  # names the run folder (runs/<name>); default: the file's stem
    data: DataConfig = field(default_factory=DataConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)

    # -- derived views ------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.data.classes or DEFAULT_CLASSES)

    @property
    def modalities(self) -> list[str]:
        return list(self.data.modalities or DEFAULT_MODALITIES)

    @property
    def image_modalities(self) -> list[str]:
        return [m for m in self.modalities if m != "metadata"]

    def fusion_weights(self) -> dict[str, float]:
        """Weights of the branches in use, normalised to sum 1."""
        w = self.fusion.weights or default_fusion_weights(self.modalities)
        w = {m: float(w[m]) for m in self.modalities}
        total = sum(w.values())
        return {m: v / total for m, v in w.items()}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_fusion_weights(modalities: list[str]) -> dict[str, float]:
    images = [m for m in modalities if m != "metadata"]
    if "metadata" not in modalities:
        return {m: 1.0 / len(images) for m in images}
    if not images:
        return {"metadata": 1.0}
    return {"metadata": 0.7, **{m: 0.3 / len(images) for m in images}}


DEFAULT_CLASSES = ("I", "P", "R")
DEFAULT_NA_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "#N/A", "<NA>")
DEFAULT_MODALITIES = ("metadata", "thermal_map")


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: expected {allowed}")


def _check_cross_section(config: Config) -> None:
    """Checks that span sections: a section's __post_init__ sees only its own fields."""
    weights = config.fusion.weights
    if weights is not None:
        if config.data.modalities is not None and (extra := set(weights) - set(config.modalities)):
            # weights for branches not in use would be ignored; a typo should not be
            raise ConfigError(
                f"fusion.weights names {sorted(extra)}, which are not in data.modalities "
                f"{config.modalities}"
            )
        if missing := [m for m in config.modalities if m not in weights]:
            raise ConfigError(
                f"fusion.weights={weights} gives no weight to {missing}; name every branch of "
                f"data.modalities {config.modalities}, or leave fusion.weights out for 0.7/0.3"
            )
        if any(v < 0 for v in weights.values()):
            raise ConfigError(f"fusion.weights={weights} must be >= 0")
        if sum(weights[m] for m in config.modalities) <= 0:
            raise ConfigError(
                f"fusion.weights={weights} gives the branches in use {config.modalities} "
                "a total weight of 0"
            )
    depth = config.stage2.unfreeze_depth
    n_blocks = len(config.image.channels) + 1
    # a timm backbone's blocks are known once timm builds it (models.branches checks those)
    cnn = any(config.image.model_of(m)[0] == "cnn" for m in config.image_modalities)
    if cnn and depth != "all" and depth > n_blocks:
        raise ConfigError(
            f"stage2.unfreeze_depth={depth} is more than the {n_blocks} blocks of an image "
            f"branch (image.channels has {len(config.image.channels)}, plus the head); "
            f"use 1..{n_blocks} or 'all'"
        )
    if "metadata" not in config.modalities and not config.image_modalities:
        raise ConfigError(f"data.modalities={config.modalities} has no branch")


# -- reading, overriding and writing a config --------------------------------

# Dict-valued keys whose mapping replaces the default instead of merging into it.
_REPLACED_WHOLE = {"fusion.weights", "tune.space"}


def apply_overrides(raw: dict, overrides: list[tuple[str, Any]]) -> dict:
    tree = copy.deepcopy(raw)
    for key, value in overrides:
        if key.startswith("fusion.weights.") and not (tree.get("fusion") or {}).get("weights"):
            # `--set fusion.weights.metadata=0.5` edits the default weights, not an empty map
            modalities = (tree.get("data") or {}).get("modalities") or list(DEFAULT_MODALITIES)
            tree.setdefault("fusion", {})["weights"] = default_fusion_weights(modalities)
        set_dotted(tree, key, value)
    return tree


def from_dict(raw: dict, overrides: list[tuple[str, Any]] = ()) -> Config:
    tree = apply_overrides(raw or {}, list(overrides))
    config = build(Config, tree)
    _check_cross_section(config)
    return config


def load(path: str | Path, overrides: list[str] | list[tuple[str, Any]] = ()) -> Config:
    """Read an experiment YAML, apply `--set` overrides in order, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    raw.setdefault("name", path.stem)
    parsed = [parse_override(o) if isinstance(o, str) else o for o in overrides]
    return from_dict(raw, parsed)


def dump(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted key: leaf value}; mappings in _REPLACED_WHOLE stay whole."""
    return flatten_tree(tree, _REPLACED_WHOLE, prefix)


def differing_keys(a: Config, b: Config, ignore: tuple[str, ...] = ()) -> list[str]:
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    keys = sorted(set(fa) | set(fb))
    return [
        k
        for k in keys
        if fa.get(k) != fb.get(k) and not any(k == p or k.startswith(p + ".") for p in ignore)
    ]


def config_type(dotted: str):
    """The declared type of a dotted key (for Tune search spaces); ConfigError if unknown."""
    return key_type(Config, dotted)


def takes_fraction(dotted: str) -> bool:
    """Whether a key accepts a non-integer number (so a continuous range may search it)."""
    return accepts(config_type(dotted), 0.5)


__all__ = [
    "Config",
    "ConfigError",
    "load",
    "from_dict",
    "dump",
    "parse_override",
    "flatten",
    "differing_keys",
    "config_type",
    "takes_fraction",
]
