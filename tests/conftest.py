"""Shared fixtures: a tiny seeded cohort and a config that trains it in seconds."""

from __future__ import annotations

import pytest

from raycv import config as config_mod

TINY = {
    "name": "tiny",
    "data": {"synthetic": {"patients": 36, "seed": 3, "image_size": 16}, "image_size": 16},
    "cv": {"folds": 3, "seed": 0},
    "metadata": {"n_estimators": 20, "inner_folds": 3},
    "image": {"channels": [4, 8], "batch_size": 32},
    "pretrain": {"epochs": 3, "patience": 2},
    "stage1": {"epochs": 2},
    "stage2": {"epochs": 3, "patience": 2, "lr": 1e-4},
}


def tiny_config(*overrides: str, **sections):
    raw = {**TINY, **sections}
    return config_mod.from_dict(raw, [config_mod.parse_override(o) for o in overrides])


@pytest.fixture(scope="session")
def tiny():
    """(config, prepared experiment) of the tiny cohort, shared by the session."""
    from raycv.experiment import prepare

    config = tiny_config()
    return config, prepare(config)
