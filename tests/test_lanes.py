"""Fold lanes: which fold runs in which lane, and how many lanes a run gets (no Ray needed)."""

from __future__ import annotations

import numpy as np
import pytest

from raycv.config import ConfigError
from raycv.folds import FoldSplit
from raycv.orchestration.lanes import lane_count, plan_lanes, wave_jobs
from tests.conftest import tiny_config


def plans(n: int) -> list[FoldSplit]:
    empty = np.array([], dtype=int)
    return [FoldSplit(k, empty, empty, empty, empty) for k in range(n)]


def jobs(n: int):
    return wave_jobs([plans(n)], [""])


def folds_by_lane(lanes) -> dict[str, list[int]]:
    return {lane.name: [job.plan.fold for job in lane.jobs] for lane in lanes}


def test_folds_are_dealt_round_robin_to_named_lanes():
    everything = {f"fold{k}" for k in range(5)}
    assert folds_by_lane(plan_lanes(jobs(5), everything, 2)) == {
        "lane0of2": [0, 2, 4],
        "lane1of2": [1, 3],
    }


def test_a_resumed_run_keeps_each_unfinished_fold_in_its_lane():
    """Lane assignment depends on all folds, so a fold resumes from its own lane's
    checkpoints; a lane with nothing left to do is not started."""
    assert folds_by_lane(plan_lanes(jobs(5), {"fold2", "fold4"}, 2)) == {"lane0of2": [2, 4]}


def test_a_wave_of_several_runs_deals_their_units_to_lanes_in_turn():
    """An ablation's combinations share one wave of lanes: each unit keyed by its run's
    tag, dealt round robin over every run's units, so no lane idles between runs."""
    wave = wave_jobs([plans(3), plans(3)], ["c3", "c4"])
    assert [j.key for j in wave] == [
        "c3-fold0", "c3-fold1", "c3-fold2", "c4-fold0", "c4-fold1", "c4-fold2"
    ]  # fmt: skip
    lanes = plan_lanes(wave, {j.key for j in wave}, 2)
    assert [[j.key for j in lane.jobs] for lane in lanes] == [
        ["c3-fold0", "c3-fold2", "c4-fold1"],
        ["c3-fold1", "c4-fold0", "c4-fold2"],
    ]


def test_lane_count_follows_the_config_and_never_exceeds_the_folds():
    config = tiny_config("resources.concurrent_folds=2")
    assert lane_count(config, n_folds=5) == 2
    assert lane_count(config, n_folds=1) == 1
    assert lane_count(config, n_folds=5, share=4) == 2  # an explicit setting wins


def test_a_joined_cluster_gives_every_fold_its_lane():
    """A cluster raycv joined may autoscale: every fold asks for its own resources."""
    assert lane_count(tiny_config(), n_folds=4, joined=True) == 4


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_concurrent_folds_must_be_a_positive_int(value):
    with pytest.raises(ConfigError, match="resources.concurrent_folds"):
        tiny_config(f"resources.concurrent_folds={value}")


@pytest.mark.parametrize(
    "per_fold, total, lanes",
    [
        (["cpu=0.1"], {"CPU": 1.0}, 10),  # 1 // 0.1 == 9.0 in floats
        (["cpu=0.25"], {"CPU": 1.0}, 4),
        ([f"cpu={1 / 3!r}"], {"CPU": 1.0}, 3),
        (["cpu=0.1"], {"CPU": 0.3}, 3),  # 0.3 / 0.1 == 2.9999999999999996
        (["cpu=0.1", "gpu=0.1"], {"CPU": 2.0, "GPU": 1.0}, 10),
        (["cpu=0.1", "gpu=0.25"], {"CPU": 2.0, "GPU": 1.0}, 4),
        (["cpu=0.1", f"gpu={1 / 3!r}"], {"CPU": 2.0, "GPU": 1.0}, 3),
        (["cpu=1", "gpu=0.1"], {"CPU": 2.0, "GPU": 1.0}, 2),  # the CPUs bind first
    ],
)
def test_fractional_resources_fit_as_many_lanes_as_they_divide(per_fold, total, lanes):
    config = tiny_config(*(f"resources.per_fold.{kv}" for kv in per_fold))
    assert lane_count(config, n_folds=20, total=total) == lanes
