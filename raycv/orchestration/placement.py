"""Where a fold runs and with what, decided the same way by every executor: the cluster
raycv joins (if any), a fold's torch threads, its device, and the refusal of a GPU
request that no device here can meet.

Imports neither ray nor (until CUDA is asked about) torch, so the CLI can use it before
either is loaded, and the lane worker without importing the sequential executor.
"""

from __future__ import annotations

import os

from raycv.config import ConfigError


def cluster_address(address: str | None) -> str | None:
    """The cluster raycv joins: --address, else RAY_ADDRESS; None when it starts a private
    local Ray instead."""
    return address or os.environ.get("RAY_ADDRESS") or None


# Set (to "1") in the environment of a local Ray raycv starts itself (connect.start_ray),
# so its every process (the driver, Tune's trial processes) knows no autoscaler is there.
PRIVATE_RAY_ENV = "RAYCV_PRIVATE_RAY"


def on_private_ray() -> bool:
    """True in the processes of a local Ray that raycv started itself."""
    return os.environ.get(PRIVATE_RAY_ENV) == "1"


def fold_threads(config) -> int:
    """A fold's torch threads = its CPUs, in every executor, so they compute the same numbers."""
    return max(1, round(config.resources.per_fold.cpu))


def cuda_devices() -> tuple[int, str]:
    """(usable CUDA devices, what was found, in words) on this machine."""
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        return 0, f"no usable CUDA device (torch {torch.__version__}, {build})"
    n = torch.cuda.device_count()
    return n, f"{n} CUDA device(s) ({torch.cuda.get_device_name(0)})"


def check_gpu_request(config, joined: bool) -> None:
    """Refuse, before any work, `resources.per_fold.gpu` that this machine cannot give:
    a fold would otherwise wait forever on a Ray raycv starts itself, or silently train on
    the CPU in the sequential executor. A joined cluster may still add GPU nodes (an
    autoscaler), so there the folds wait, and the status line says for what."""
    gpu = config.resources.per_fold.gpu
    if gpu <= 0 or joined:
        return
    found, words = cuda_devices()
    if found < gpu:
        raise ConfigError(
            f"resources.per_fold.gpu={gpu:g} asks for a GPU per fold, but this machine has "
            f"{words}; set resources.per_fold.gpu=0, or join a cluster with GPUs (--address)"
        )


def fold_device(config) -> str:
    """'cuda' for a fold that asks for a GPU (check_gpu_request has made sure one is
    there), else 'cpu'."""
    return "cuda" if config.resources.per_fold.gpu > 0 else "cpu"
