"""The modality combinations of `raycv ablate`: which ones, their names, and each one's
config, checked up front.

A combination is a non-empty set of data.modalities, named by its modalities joined by
'+' in data.modalities order (`metadata+thermal_map`). Its config is the base config with
data.modalities set to it and the fusion weights restricted to it and renormalised (the
default rule's weights when the base config leaves fusion.weights unset). A
one-modality combination is that model alone, with no fusion. Each combination's model
is its fusion (or its single model): that is what is compared.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from raycv import config as config_mod
from raycv.config import AblationConfig, Config, ConfigError

SEPARATOR = "+"


@dataclass(frozen=True)
class Combination:
    modalities: tuple[str, ...]  # in data.modalities order

    @property
    def name(self) -> str:
        return SEPARATOR.join(self.modalities)

    @property
    def model(self) -> str:
        """The model that stands for the combination in its run folder's files."""
        return "fusion" if len(self.modalities) > 1 else self.modalities[0]


def combinations(config: Config) -> list[Combination]:
    """The combinations `config.ablation` asks for, each checked against data.modalities;
    ConfigError naming the culprit for an empty one, one listed twice, an unknown
    modality, or a `require` that leaves none."""
    section, modalities = config.ablation, list(config.modalities)
    _check_known(section.require, modalities, "ablation.require")
    if section.combinations == "all":
        chosen = [
            subset
            for size in range(1, len(modalities) + 1)
            for subset in itertools.combinations(modalities, size)
        ]
    else:
        chosen = []
        for listed in section.combinations:
            if not listed:
                raise ConfigError(
                    "ablation.combinations lists an empty combination; each needs at least "
                    "one modality"
                )
            _check_known(listed, modalities, "ablation.combinations")
            if len(set(listed)) < len(listed):
                raise ConfigError(
                    f"ablation.combinations: {listed} names a modality twice; name each once"
                )
            subset = tuple(m for m in modalities if m in listed)  # data.modalities order
            if subset in chosen:
                raise ConfigError(
                    f"ablation.combinations lists {SEPARATOR.join(subset)!r} twice; list "
                    "each combination once"
                )
            chosen.append(subset)
    chosen = [c for c in chosen if set(section.require) <= set(c)]
    if not chosen:
        raise ConfigError(
            f"ablation.require={section.require} leaves no combination of "
            f"ablation.combinations to run"
        )
    return [Combination(c) for c in chosen]


def reference(config: Config, combos: list[Combination]) -> Combination:
    """The combination every other is compared with (ablation.reference, by name or as a
    list; default: metadata alone when it is one of the combinations, else the first)."""
    wanted = config.ablation.reference
    names = [c.name for c in combos]
    if wanted is None:
        return next((c for c in combos if c.modalities == ("metadata",)), combos[0])
    if isinstance(wanted, list):
        _check_known(wanted, list(config.modalities), "ablation.reference")
        wanted = SEPARATOR.join(m for m in config.modalities if m in wanted)
    if wanted not in names:
        raise ConfigError(
            f"ablation.reference={config.ablation.reference!r} is not one of the "
            f"combinations {names}"
        )
    return combos[names.index(wanted)]


def combination_config(base: Config, combo: Combination, weights: dict | None) -> Config:
    """The config of one combination's run: data.modalities = the combination, and the
    fusion weights the user gave (`weights`, the experiment's own fusion.weights, not the
    ones a prepared config spells out) restricted to it and renormalised; None: the
    default rule for that set, as a run of that set would use. Checked as any config; its
    config.yaml, given to `raycv run`, reproduces the combination's run."""
    if weights is not None:
        kept = {m: float(weights[m]) for m in combo.modalities}
        total = sum(kept.values())
        # a combination whose branches all had weight 0 in the base mixes them equally
        weights = {m: (w / total if total > 0 else 1 / len(kept)) for m, w in kept.items()}
    raw = base.to_dict()
    raw["data"]["modalities"] = list(combo.modalities)
    raw["fusion"]["weights"] = weights
    raw["ablation"] = dataclasses.asdict(AblationConfig())  # a run has no ablation to do
    config = config_mod.from_dict(raw)
    config.fusion.weights = config.fusion_weights()  # spelled out, as prepare() does
    return config


def _check_known(listed, modalities: list[str], key: str) -> None:
    if unknown := [m for m in listed if m not in modalities]:
        raise ConfigError(
            f"{key} names {unknown}, not in data.modalities {modalities}; choose among them"
        )
