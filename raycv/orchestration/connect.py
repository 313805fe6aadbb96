"""Connecting to Ray: a private local Ray sized to this machine, or the cluster the user
named (--address, RAY_ADDRESS), said out loud since a local Ray takes seconds to start on
few cores; and the refusal of a GPU the local Ray does not have."""

from __future__ import annotations

import logging
import os
import time

import ray
from ray._private.ray_constants import PROCESS_TYPE_MONITOR as MONITOR

from raycv.config import ConfigError
from raycv.orchestration.placement import PRIVATE_RAY_ENV, cluster_address
from raycv.progress import ProgressBoard

# Settings of a Ray that raycv starts itself (one machine, nothing to autoscale or preempt).
LOCAL_RAY_ENV = {
    # the train controllers poll their worker every 2 s by default: a finished lane would
    # idle up to 2 s before the run (or a lane of another trial) can go on
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    # each lane's trainer would start one more actor (a process, ~2 CPU-s on 2 cores) to
    # watch for preempted nodes, and export metrics nobody collects here
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    # marks every process of this Ray (driver, trial processes) as on a Ray of fixed size:
    # lanes ask no autoscaler for resources (lane_trainer.py)
    PRIVATE_RAY_ENV: "1",
}


def start_ray(address: str | None, verbose: bool) -> bool:
    """Connect to Ray; returns True if this call started it (and so should stop it).

    Without --address (or RAY_ADDRESS) raycv starts a private local Ray sized to this
    machine, even when another Ray runs here: joining someone else's cluster by accident
    would share, or be starved of, its resources.
    """
    if not verbose:  # Tune and Train announce themselves at INFO; raycv reports progress
        for name in ("ray.tune", "ray.train", "ray.air"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if ray.is_initialized():
        return False
    quiet = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
    address = cluster_address(address)
    if address:
        os.environ.pop(PRIVATE_RAY_ENV, None)  # left by a private Ray this process ran before
        ray.init(address=address, **quiet)
        return True
    for name, value in LOCAL_RAY_ENV.items():  # inherited by the workers this Ray starts
        os.environ.setdefault(name, value)
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        **quiet,
    )
    return True


def owns_ray() -> bool:
    """True in the process that started the Ray it is connected to (the driver of a
    private Ray): that Ray, and every placement group in it, ends with this process.
    Not in Tune's trial processes, nor in a driver that joined a cluster."""
    node = ray._private.worker._global_node  # a head node only where ray.init started one
    return node is not None and node.is_head()


def stop_ray() -> None:
    """ray.shutdown, a second sooner on a local Ray this process started: Ray stops its
    processes with a SIGTERM and up to 1 s of grace each, and its autoscaler monitor takes
    all of that second to go (measured on Ray 2.60: 1.01 of shutdown's 1.12 s). The
    monitor of a one-node Ray holds nothing to save, so it is killed outright first."""
    if owns_ray():
        ray._private.worker._global_node._kill_process_type(
            MONITOR, allow_graceful=False, check_alive=False
        )
    ray.shutdown()


def connect(address: str | None, verbose: bool, board: ProgressBoard) -> bool:
    """start_ray, saying what happens (a local Ray takes seconds to start on few cores);
    returns True if this call started Ray."""
    where = cluster_address(address)
    if ray.is_initialized():
        where_now = "the Ray this process already runs"
    elif where:
        where_now = f"the Ray cluster at {where}"
    else:
        where_now = f"a private local Ray ({os.cpu_count()} CPUs)"
    board.say(f"raycv: connecting to {where_now} ...")
    t0 = time.time()
    started = start_ray(address, verbose)
    board.say(
        f"raycv: Ray is up ({time.time() - t0:.0f} s): the cluster has "
        f"{resources_in_words(ray.cluster_resources())}"
    )
    return started


def resources_in_words(resources: dict) -> str:
    """{'CPU': 2.0, 'GPU': 0, 'memory': ...} -> '2 CPU, 0 GPU' (the kinds folds ask for)."""
    return ", ".join(f"{resources.get(kind, 0):g} {kind}" for kind in ("CPU", "GPU"))


def check_ray_gpus(config) -> None:
    """On a Ray raycv started: refuse folds asking for more GPUs than Ray found (they
    would wait forever; check_gpu_request asked torch, this asks Ray)."""
    gpu = config.resources.per_fold.gpu
    found = ray.cluster_resources().get("GPU", 0)
    if gpu > 0 and found < gpu:
        raise ConfigError(
            f"resources.per_fold.gpu={gpu:g} asks for a GPU per fold, but the local Ray "
            f"found {found:g} GPU; set resources.per_fold.gpu=0, or join a cluster with "
            "GPUs (--address)"
        )
