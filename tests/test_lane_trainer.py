"""A lane's trainer leaves out what a lane never uses (issue 21): Ray Data's dataset
manager always, the autoscaling coordinator and the placement-group cleaner on a Ray raycv
started itself. The whole
trainer runs in every Ray test (tests/test_ray_run.py, test_lanes.py, the fault tests);
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


def trainer(tmp_path, private_ray: bool) -> LaneTrainer:
    return LaneTrainer(
        noop,
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(name="lane", storage_path=str(tmp_path)),
        private_ray=private_ray,
    )


def test_a_lane_has_no_ray_data_callback(tmp_path):
    lane = trainer(tmp_path, private_ray=False)
    callbacks = lane._create_default_callbacks()
    assert callbacks and not any(isinstance(cb, DatasetsCallback) for cb in callbacks)
    # on a cluster raycv joined, Train's cleaner frees a lane's CPUs if its controller's
    # node dies; a private Ray ends with its driver, and so does every placement group
    assert any(isinstance(cb, PlacementGroupCleanerCallback) for cb in callbacks)
    private = trainer(tmp_path, private_ray=True)._create_default_callbacks()
    assert not any(isinstance(cb, PlacementGroupCleanerCallback) for cb in private)
    assert len(private) == len(callbacks) - 1


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
