"""Shared fixtures: a tiny seeded cohort and a config that trains it in seconds."""

from __future__ import annotations

import contextlib
import io
import os

import pytest
import yaml

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


# The fault tests' cohort: folds of 1-3 s on 2 cores. A test that must kill a process
# mid-fold also slows one phase down (test_ray_run's SLOW_FAULT_2), so the kill lands in it.
FAULT = {
    **TINY,
    "name": "fault",
    "data": {"synthetic": {"patients": 60, "seed": 1, "image_size": 24}, "image_size": 24},
    "image": {"channels": [8, 16], "batch_size": 16},
    "pretrain": {"epochs": 40, "patience": 40},
}


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Folds and predictions computed in this process (run_fold, predict) use one torch
    thread, as raycv gives a fold of resources.per_fold.cpu=1 (the default) in every
    executor. Two threads on these tiny models gain nothing, and on a machine whose cores
    are busy their waits for each other made a fold take many times as long."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_config(tmp_path, raw: dict = TINY, name: str = "exp.yaml"):
    """An experiment YAML file of `raw` in tmp_path; returns its path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def run_quietly(tmp_path, raw: dict, name: str = "run"):
    """`raycv run` of `raw` with the sequential executor, its printout swallowed; -> the
    run folder (asserts that the command succeeded)."""
    from raycv.cli import main

    out = tmp_path / name
    config = write_config(tmp_path, raw, f"{name}.yaml")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(config), "--output", str(out), "--executor", "sequential"])
    assert code == 0
    return out


def tiny_config(*overrides: str, **sections):
    raw = {**TINY, **sections}
    return config_mod.from_dict(raw, [config_mod.parse_override(o) for o in overrides])


@pytest.fixture(scope="session")
def sequential_run(tmp_path_factory):
    """run(raw) -> the run folder of `raycv run` of `raw` with the sequential executor, made
    once per session for each config (a Ray = sequential comparison and the report tests
    read the same tiny run): for tests that only read a finished run, never write to it."""
    done = {}

    def run(raw: dict):
        key = yaml.safe_dump(raw, sort_keys=True)
        if key not in done:
            done[key] = run_quietly(tmp_path_factory.mktemp("sequential"), raw)
        return done[key]

    return run


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for a module's in-process runs, which join it instead of starting
    and stopping a private Ray each (seconds on 2 cores). Set up as raycv sets up the Ray
    it starts itself (LOCAL_RAY_ENV), with the 2 CPUs the tests count on."""
    import ray

    from raycv.orchestration.connect import LOCAL_RAY_ENV
    from raycv.orchestration.lane_wave import end_lanes

    added = [name for name in LOCAL_RAY_ENV if name not in os.environ]
    for name in added:  # inherited by the workers this Ray starts
        os.environ[name] = LOCAL_RAY_ENV[name]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        end_lanes(started_here=True, wind_down=True)  # as raycv ends a Ray it started
        for name in added:
            os.environ.pop(name, None)


@pytest.fixture(scope="session")
def tiny():
    """(config, prepared experiment) of the tiny cohort, shared by the session."""
    from raycv.experiment import prepare

    config = tiny_config()
    return config, prepare(config)


# A tiny search: 2 trials of 2 folds, one after the other, each on 2 lanes; stage 2 settings
# only (so every phase before it is shared).
SEARCH = {
    **TINY,
    "name": "search",
    "cv": {"folds": 2, "seed": 0},
    "tune": {
        "space": {
            "stage2.lr": {"loguniform": [1e-6, 1e-3]},
            "stage2.unfreeze_depth": {"choice": [1, "all"]},
        },
        "num_samples": 2,
        "max_concurrent_trials": 1,
    },
    "tracking": {"mlflow": True},  # one MLflow run per trial, in <tune folder>/mlruns
}


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory):
    """(config path, tune folder, what `raycv tune` printed) of one real tiny search,
    shared by the tune and report tests: each search costs a minute or more."""
    from raycv.cli import main

    root = tmp_path_factory.mktemp("search")
    config = root / "search.yaml"
    config.write_text(yaml.safe_dump(SEARCH))
    out = root / "tune"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["tune", str(config), "--output", str(out)]) == 0
    return config, out, printed.getvalue()
