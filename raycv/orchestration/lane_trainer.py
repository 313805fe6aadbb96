"""The Ray Train trainer a lane runs in: Ray's DataParallelTrainer without the parts a lane
never uses, which each cost a Python process on the lane's start-up path (issue 21).

- No Ray Data: a lane reads the dataset from the object store itself (fold_worker.py), so
  Train's DatasetsCallback, which starts a DatasetManager actor per trainer and sends Ray
  Data's context to the worker (importing Ray Data there), is left out.
- No autoscaling requests on a Ray raycv started itself: one machine, nothing to scale.
  Train's default scaling policy starts an _AutoscalingCoordinatorActor and waits (up to
  5 s) for its answer before it asks for the lane's placement group. On a cluster raycv
  joined the requests stay: an autoscaler may add the nodes the lanes ask for.

Ray 2.60's internals (raycv pins Ray): `_create_default_callbacks` and
`_initialize_and_run_controller` are the trainer's own hooks for its callbacks and its
controller's arguments. Everything else (retries, checkpoints, resume, the placement
group cleaner) is Train's, unchanged.

Kept import-light: the controller unpickles the scaling policy defined here.
"""

from __future__ import annotations

from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
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
    """DataParallelTrainer without Ray Data's actor, and without autoscaling requests where
    `autoscaling=False` (a Ray raycv started)."""

    def __init__(self, *args, autoscaling: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._autoscaling = autoscaling

    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        if self.datasets:  # never in raycv; kept correct should a lane pass datasets
            return callbacks
        return [cb for cb in callbacks if not isinstance(cb, DatasetsCallback)]

    def _initialize_and_run_controller(self, **kwargs):
        if not self._autoscaling and type(kwargs.get("scaling_policy")) is FixedScalingPolicy:
            kwargs["scaling_policy"] = FixedScalingNoAutoscaler(self.scaling_config)
        return super()._initialize_and_run_controller(**kwargs)
