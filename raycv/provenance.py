"""What made a run: versions, commit, data fingerprint, command line, machine, times."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import raycv

# timm and torchvision build the image backbones (image.backbone): their versions name the
# architectures and the pretrained weights a run used
PACKAGES = ("ray", "torch", "scikit-learn", "numpy", "pandas", "timm", "torchvision")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the raycv checkout in use, if it is one (with '-dirty' if modified)."""
    here = Path(raycv.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def gpus() -> list[str]:
    """The machine's NVIDIA GPUs, by name, as its driver lists them (none without one).

    Asked of nvidia-smi, not torch: a search's trial process writes provenance for every
    trial and imports torch for nothing else (~1.4 s of its start on 2 cores).
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listed = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):  # a broken driver must not stop a CPU run
        return []
    if listed.returncode != 0:
        return []
    return [name.strip() for name in listed.stdout.splitlines() if name.strip()]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def provenance(dataset_fingerprint: str, started: str, executor: str) -> dict:
    return {
        "raycv_version": raycv.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
        "dataset_fingerprint": dataset_fingerprint,
        "command_line": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "executor": executor,
        "started": started,
        "ended": now(),
        "machine": {
            "hostname": platform.node(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpus": gpus(),
        },
    }
