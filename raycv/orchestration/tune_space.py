"""What `raycv tune` searches: config keys and their samplers, and what the search needs.

Checked without Ray (`check_search`), so that the CLI refuses a bad search at once;
only `samplers` turns the checked space into Ray Tune's objects.
"""

from __future__ import annotations

import importlib.util

from raycv import config as config_mod
from raycv.config import Config, ConfigError
from raycv.errors import RaycvError
from raycv.models.choice import n_blocks

SAMPLERS = ("loguniform", "uniform", "randint", "choice")

# tune.* keys a resumed search may change: Tuner.restore keeps the search it saved (its
# space, samples, algorithm, scheduler and concurrency) and would ignore new ones
RESUMABLE_TUNE_KEYS = ("tune.reuse", "tune.cache_dir")


def check_search(config: Config) -> dict[str, tuple[str, list]]:
    """Everything `raycv tune` can refuse from the config alone; returns the checked space."""
    if len(config.modalities) < 2:
        raise ConfigError(f"raycv tune searches the fusion; data.modalities={config.modalities}")
    # Ray's optuna module imports without optuna and only fails, with an assert, when the
    # searcher is built: after the shared phases were computed
    if config.tune.search_alg == "optuna" and importlib.util.find_spec("optuna") is None:
        raise RaycvError("tune.search_alg=optuna needs optuna: pip install 'raycv[optuna]'")
    return check_space(config)


def check_space(config: Config) -> dict[str, tuple[str, list]]:
    """Config's `tune.space` (or the default) as {key: (sampler, arguments)}, every key
    and every value it can take checked against the config."""
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
            out[key] = (kind, list(args))
            continue
        if not (isinstance(args, list) and len(args) == 2):
            raise ConfigError(f"tune.space.{key}.{kind} needs [low, high], got {args!r}")
        if kind != "randint" and not config_mod.takes_fraction(key):
            # a continuous draw such as 2.37 would only be refused inside a trial
            raise ConfigError(
                f"tune.space.{key}.{kind}={args!r} is not allowed: {key} takes whole "
                f"numbers; use {{randint: {args!r}}} or {{choice: [...]}}"
            )
        try:
            lo, hi = (float(a) for a in args)
        except (TypeError, ValueError):
            raise ConfigError(f"tune.space.{key}.{kind}={args!r} needs two numbers") from None
        if not lo < hi or (kind == "loguniform" and lo <= 0):
            raise ConfigError(f"tune.space.{key}.{kind}={args!r} needs 0 < low < high")
        if kind == "randint" and not (lo.is_integer() and hi.is_integer()):
            raise ConfigError(f"tune.space.{key}.randint={args!r} needs two ints")
        for value in (lo, hi):
            config_mod.from_dict(
                config.to_dict(), [(key, int(value) if kind == "randint" else value)]
            )
        out[key] = (kind, [int(lo), int(hi)] if kind == "randint" else [lo, hi])
    return out


def samplers(space: dict[str, tuple[str, list]]) -> dict:
    """A checked space as Ray Tune samplers (randint's high is included, as in tune.space)."""
    from ray import tune

    out = {}
    for key, (kind, args) in space.items():
        if kind == "choice":
            out[key] = tune.choice(args)
        elif kind == "randint":
            out[key] = tune.randint(args[0], args[1] + 1)
        else:
            out[key] = {"loguniform": tune.loguniform, "uniform": tune.uniform}[kind](*args)
    return out


def default_space(config: Config) -> dict:
    """stage2.lr log-uniform 1e-8..1e-6, and unfreeze_depth over 1..all blocks (of the
    image branch with the fewest: a CNN's conv blocks or a backbone's stages, and the head)."""
    blocks = min(n_blocks(config, m) for m in config.image_modalities)
    return {
        "stage2.lr": {"loguniform": [1e-8, 1e-6]},
        "stage2.unfreeze_depth": {"choice": [*range(1, blocks), "all"]},
    }


def trial_config(base: dict, params: dict) -> Config:
    """The base config with one trial's values (fusion weights renormalise themselves)."""
    return config_mod.from_dict(base, list(params.items()))
