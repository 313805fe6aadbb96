"""The Ray Train trainer a lane runs in: Ray's DataParallelTrainer without the parts a lane
never uses, which each cost a Python process on the lane's start-up path (issue 21).

- No Ray Data: a lane reads the dataset from the object store itself (fold_worker.py), so
  Train's DatasetsCallback, which starts a DatasetManager actor per trainer and sends Ray
  Data's context to the worker (importing Ray Data there), is left out.
- On a private Ray (one raycv started itself: one machine, gone with the driver):
  - no autoscaling requests. Train's default scaling policy starts an
    _AutoscalingCoordinatorActor and waits (up to 5 s) for its answer before it asks for
    the lane's placement group; nothing can scale here;
  - and where the lane's driver is the process that started that Ray (`owns_ray`: a
    `raycv run` or `ablate`), no placement-group cleaner. Train starts a detached
    PlacementGroupCleaner actor per trainer (a process, ~1.5 CPU-s, and a stop the
    controller waits on at its end) to free the lane's placement group should the
    controller die ungracefully: a placement group outlives the actor that created it
    (it belongs to the job; checked on Ray 2.60). There a lane whose controller died
    fails the fold, which ends the Ray session and every placement group with it.
  On a cluster raycv joined everything stays: an autoscaler may add the nodes the lanes
  ask for, and a worker node may die under a live driver.

Ray 2.60's internals (raycv pins Ray): `_create_default_callbacks` and
`_initialize_and_run_controller` are the trainer's own hooks for its callbacks and its
controller's arguments. Everything else (retries, checkpoints, resume) is Train's,
unchanged.

Kept import-light: the controller unpickles the scaling policy defined here.
"""

from __future__ import annotations

from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import (
    PlacementGroupCleanerCallback,
)
from ray.train.v2._internal.execution.scaling_policy.fixed import FixedScalingPolicy
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer


class FixedScalingNoAutoscaler(FixedScalingPolicy):
    """Train's fixed scaling policy without requests to an autoscaling coordinator (and so
    without starting one): for a Ray of fixed size."""

    def after_controller_start(self, train_run_context) -> None:
        pass

    def _maybe_send_resource_request(self) -> None:
        pass

    def _send_resource_request(self) -> None:
        pass


class LaneTrainer(DataParallelTrainer):
    """DataParallelTrainer without Ray Data's actor; where `private_ray` (a Ray raycv
    started itself) without autoscaling requests, and where also `owns_ray` (this
    process started that Ray, see connect.owns_ray) without the placement-group cleaner."""

    def __init__(self, *args, private_ray: bool = False, owns_ray: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._private_ray = private_ray
        self._owns_ray = private_ray and owns_ray

    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        unused = () if self.datasets else (DatasetsCallback,)  # raycv never passes datasets
        if self._owns_ray:
            unused += (PlacementGroupCleanerCallback,)
        return [cb for cb in callbacks if not isinstance(cb, unused)]

    def _initialize_and_run_controller(self, **kwargs):
        if self._private_ray and type(kwargs.get("scaling_policy")) is FixedScalingPolicy:
            kwargs["scaling_policy"] = FixedScalingNoAutoscaler(self.scaling_config)
        return super()._initialize_and_run_controller(**kwargs)
