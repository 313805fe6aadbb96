"""The search space of `raycv tune`: config keys and their samplers, checked up front."""

from __future__ import annotations

from ray import tune

from raycv import config as config_mod
from raycv.config import Config, ConfigError

SAMPLERS = ("loguniform", "uniform", "randint", "choice")


def search_space(config: Config) -> dict:
    """Config's `tune.space` as Tune samplers, each key checked against the config."""
    space = config.tune.space or default_space(config)
    out = {}
    for key, spec in space.items():
        config_mod.config_type(key)  # unknown keys are refused by name
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
            raise ConfigError(
                f"tune.space.{key}={spec!r} is not allowed: expected one of "
                f"{{loguniform: [lo, hi]}}, {{uniform: [lo, hi]}}, {{randint: [lo, hi]}}, "
                f"{{choice: [v, ...]}}"
            )
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            if not isinstance(args, list) or not args:
                raise ConfigError(f"tune.space.{key}.choice must be a non-empty list")
            for value in args:  # every option must make a valid config
                config_mod.from_dict(config.to_dict(), [(key, value)])
            out[key] = tune.choice(args)
            continue
        if not (isinstance(args, list) and len(args) == 2):
            raise ConfigError(f"tune.space.{key}.{kind} needs [low, high], got {args!r}")
        lo, hi = (float(a) for a in args)
        if not lo < hi or (kind == "loguniform" and lo <= 0):
            raise ConfigError(f"tune.space.{key}.{kind}={args!r} needs 0 < low < high")
        for value in (lo, hi):
            config_mod.from_dict(
                config.to_dict(), [(key, int(value) if kind == "randint" else value)]
            )
        sampler = {"loguniform": tune.loguniform, "uniform": tune.uniform}.get(kind)
        out[key] = sampler(lo, hi) if sampler else tune.randint(int(lo), int(hi) + 1)
    return out


def default_space(config: Config) -> dict:
    """stage2.lr log-uniform 1e-8..1e-6, and unfreeze_depth over 1..all blocks."""
    blocks = len(config.image.channels) + 1
    return {
        "stage2.lr": {"loguniform": [1e-8, 1e-6]},
        "stage2.unfreeze_depth": {"choice": [*range(1, blocks), "all"]},
    }


def trial_config(base: dict, params: dict) -> Config:
    """The base config with one trial's values (fusion weights renormalise themselves)."""
    return config_mod.from_dict(base, list(params.items()))
