"""A lane's trainer leaves out what a lane never uses (issue 21): Ray Data's dataset
manager always, the autoscaling coordinator on a Ray raycv started itself, and the
placement-group cleaner where the lane's driver is also the process that started that Ray.
The whole trainer runs in every Ray test (tests/test_ray_run.py, test_lanes.py, the fault tests);
here, what it leaves out and when."""

from __future__ import annotations

from ray.train import RunConfig, ScalingConfig
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import (
    PlacementGroupCleanerCallback,
)
from ray.train.v2._internal.execution.scaling_policy.fixed import FixedScalingPolicy

from raycv.orchestration.lane_trainer import FixedScalingNoAutoscaler, LaneTrainer
from raycv.orchestration.placement import PRIVATE_RAY_ENV, on_private_ray


def noop(config):
    pass


def trainer(tmp_path, private_ray: bool, owns_ray: bool = False) -> LaneTrainer:
    return LaneTrainer(
        noop,
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(name="lane", storage_path=str(tmp_path)),
        private_ray=private_ray,
        owns_ray=owns_ray,
    )


def has_cleaner(lane: LaneTrainer) -> bool:
    return any(
        isinstance(cb, PlacementGroupCleanerCallback) for cb in lane._create_default_callbacks()
    )


def test_a_lane_has_no_ray_data_callback(tmp_path):
    lane = trainer(tmp_path, private_ray=False)
    callbacks = lane._create_default_callbacks()
    assert callbacks and not any(isinstance(cb, DatasetsCallback) for cb in callbacks)


def test_the_placement_group_cleaner_is_left_out_only_where_ray_ends_with_the_driver(tmp_path):
    # on a cluster raycv joined, Train's cleaner frees a lane's CPUs if its controller's
    # node dies; in a Tune trial on a private Ray, if ASHA stops the trial (a placement
    # group outlives the controller that made it)
    assert has_cleaner(trainer(tmp_path, private_ray=False))
    assert has_cleaner(trainer(tmp_path, private_ray=False, owns_ray=True))  # never here
    assert has_cleaner(trainer(tmp_path, private_ray=True, owns_ray=False))
    # the driver that started its private Ray: the Ray ends with it, and every group too
    owner = trainer(tmp_path, private_ray=True, owns_ray=True)
    assert not has_cleaner(owner)
    assert (
        len(owner._create_default_callbacks())
        == len(trainer(tmp_path, private_ray=True)._create_default_callbacks()) - 1
    )


def test_the_autoscaling_coordinator_is_skipped_only_on_a_private_ray(tmp_path, monkeypatch):
    seen = {}

    def record(self, **kwargs):
        seen["policy"] = kwargs["scaling_policy"]

    monkeypatch.setattr(LaneTrainer.__mro__[1], "_initialize_and_run_controller", record)
    policy = FixedScalingPolicy(ScalingConfig(num_workers=1))
    trainer(tmp_path, private_ray=True)._initialize_and_run_controller(scaling_policy=policy)
    assert type(seen["policy"]) is FixedScalingNoAutoscaler
    trainer(tmp_path, private_ray=False)._initialize_and_run_controller(scaling_policy=policy)
    assert seen["policy"] is policy

    monkeypatch.setenv(PRIVATE_RAY_ENV, "1")
    assert on_private_ray()
    monkeypatch.delenv(PRIVATE_RAY_ENV)
    assert not on_private_ray()
