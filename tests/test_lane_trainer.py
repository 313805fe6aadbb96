"""A lane's trainer leaves out what a lane never uses (issue 21): Ray Data's dataset
manager always, the autoscaling coordinator on a Ray raycv started itself. The whole
trainer runs in every Ray test (tests/test_ray_run.py, test_lanes.py, the fault tests);
here, what it leaves out and when."""

from __future__ import annotations

from ray.train import RunConfig, ScalingConfig
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.execution.scaling_policy.fixed import FixedScalingPolicy

from raycv.orchestration.lane_trainer import FixedScalingNoAutoscaler, LaneTrainer
from raycv.orchestration.placement import PRIVATE_RAY_ENV, on_private_ray


def noop(config):
    pass


def trainer(tmp_path, autoscaling: bool) -> LaneTrainer:
    return LaneTrainer(
        noop,
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(name="lane", storage_path=str(tmp_path)),
        autoscaling=autoscaling,
    )


def test_a_lane_has_no_ray_data_callback(tmp_path):
    lane = trainer(tmp_path, autoscaling=True)
    callbacks = lane._create_default_callbacks()
    assert callbacks and not any(isinstance(cb, DatasetsCallback) for cb in callbacks)


def test_the_autoscaling_coordinator_is_skipped_only_on_a_private_ray(tmp_path, monkeypatch):
    seen = {}

    def record(self, **kwargs):
        seen["policy"] = kwargs["scaling_policy"]

    monkeypatch.setattr(LaneTrainer.__mro__[1], "_initialize_and_run_controller", record)
    policy = FixedScalingPolicy(ScalingConfig(num_workers=1))
    trainer(tmp_path, autoscaling=False)._initialize_and_run_controller(scaling_policy=policy)
    assert type(seen["policy"]) is FixedScalingNoAutoscaler
    trainer(tmp_path, autoscaling=True)._initialize_and_run_controller(scaling_policy=policy)
    assert seen["policy"] is policy

    monkeypatch.setenv(PRIVATE_RAY_ENV, "1")
    assert on_private_ray()
    monkeypatch.delenv(PRIVATE_RAY_ENV)
    assert not on_private_ray()
