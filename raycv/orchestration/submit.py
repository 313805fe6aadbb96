"""`raycv submit`: a run (or a search) as a Ray job on a cluster, through Ray's Jobs API.

The job's working directory is this project (uploaded without run folders, the venv,
git history and caches), and its entrypoint is the same `python -m raycv run|tune|ablate ...`
command a user would type on the head node. Inside the job Ray sets RAY_ADDRESS, so
`raycv run` joins the cluster instead of starting a private Ray. Everything that can be
refused here (the config, its overrides, an --output the job could not use) is refused
before anything is uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from raycv import config as config_mod
from raycv.errors import RaycvError
from raycv.storage import is_uri

# The project: the folder holding the raycv package and pyproject.toml.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Left out of the upload (on top of what .gitignore already leaves out): run folders,
# environments, caches and checkpoints. Ray caps a working_dir upload at a few hundred MB.
UPLOAD_EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "runs",
    ".raycv-cache",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    "*.pt",
    "*.ckpt",
]


class SubmitError(RaycvError):
    """The job cannot be submitted as asked (config, output, or cluster address)."""


@dataclass(frozen=True)
class SubmitRequest:
    """What `raycv submit` is asked to do: the job's command line and how to submit it."""

    config: str  # experiment YAML; it must lie in the project the job uploads
    output: str | None  # the job's run folder: a URI or an absolute path (None is refused)
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, passed on to the job in order
    command: Literal["run", "tune", "ablate"] = "run"  # what the job runs: raycv <command>
    resume: bool = False  # passed on to the job
    overwrite: bool = False  # passed on to the job
    verbose: bool = False  # passed on to the job; here it also keeps Ray's upload logs
    address: str | None = None  # the cluster's dashboard; None: RAY_ADDRESS
    wait: bool = False  # stream the job's logs and return its status


def submit(request: SubmitRequest) -> int:
    """Submit `raycv run|tune|ablate` as a Ray job; with request.wait, follow it and return
    its status."""
    _check_project_checkout()
    config_path = _config_in_project(Path(request.config))
    config_mod.load(config_path, request.overrides)  # refuse bad keys before uploading anything
    output = _job_output(request.output)
    relpath = config_path.relative_to(PROJECT_ROOT).as_posix()
    entrypoint = job_entrypoint(request, relpath, output)
    address = request.address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise SubmitError(
            "no cluster to submit to: pass --address http://HEAD:8265 (the head's dashboard; "
            "`ray dashboard cluster.yaml` forwards it to http://127.0.0.1:8265) or set RAY_ADDRESS"
        )
    if not request.verbose:  # Ray's packaging chatter ("Uploading package ...", default excludes)
        for name in ("ray._private.runtime_env", "ray.dashboard.modules"):
            logging.getLogger(name).setLevel(logging.ERROR)
    client = _client(address)
    job_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env={
            "working_dir": str(PROJECT_ROOT),
            "excludes": UPLOAD_EXCLUDES,
            "env_vars": {"PYTHONUNBUFFERED": "1"},  # logs reach `ray job logs` as written
        },
        metadata={"raycv": request.command, "config": str(config_path.name)},
    )
    print(f"submitted job {job_id}: {entrypoint}")
    print(f"  follow its logs: ray job logs --address {address} --follow {job_id}")
    print(f"  its status:      ray job status --address {address} {job_id}")
    print(f"  stop it:         ray job stop --address {address} {job_id}")
    print(f"  results:         {output}")
    if not request.wait:
        return 0
    try:
        return follow(client, job_id, address)
    except KeyboardInterrupt:
        print(
            f"\nraycv: stopped following job {job_id}; it goes on. Stop it with "
            f"`ray job stop --address {address} {job_id}`.",
            file=sys.stderr,
        )
        return 130


def job_entrypoint(request: SubmitRequest, config_relpath: str, output: str) -> str:
    """The command the job runs in its working directory (the uploaded project)."""
    command = ["python", "-m", "raycv", request.command, config_relpath]
    for override in request.overrides:
        command += ["--set", override]
    command += ["--output", output]
    if request.resume:
        command.append("--resume")
    if request.overwrite:
        command.append("--overwrite")
    if request.verbose:
        command.append("-v")
    return shlex.join(command)


def follow(client, job_id: str, address: str) -> int:
    """Stream the job's logs until it ends; 0 if it succeeded, else the driver's exit code
    (2 for a refusal, as `raycv run` itself) or 1."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            print(chunk, end="", flush=True)

    try:
        asyncio.run(tail())
        info = client.get_job_info(job_id)
    except (RuntimeError, ConnectionError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SubmitError(
            f"lost the job server at {address} while following job {job_id} ({first}); the "
            f"job may still be running: ray job status --address {address} {job_id}"
        ) from None
    while not info.status.is_terminal():  # the log stream can close just before the end
        time.sleep(0.5)
        info = client.get_job_info(job_id)
    print(f"raycv: job {job_id} {info.status.value}", file=sys.stderr)
    if info.status.value == "SUCCEEDED":
        return 0
    code = getattr(info, "driver_exit_code", None)
    return code if code else 1


def _check_project_checkout() -> None:
    if not (PROJECT_ROOT / "pyproject.toml").is_file():
        raise SubmitError(
            f"raycv is installed at {str(PROJECT_ROOT)!r}, not run from a project checkout; "
            "`raycv submit` uploads the project as the job's working directory, so install "
            "it from one (pip install -e .) and submit from there"
        )


def _config_in_project(path: Path) -> Path:
    """The config's absolute path, which must lie in the project the job uploads."""
    if not path.is_file():
        raise SubmitError(f"config file {str(path)!r} does not exist")
    resolved = path.resolve()
    if not resolved.is_relative_to(PROJECT_ROOT):
        raise SubmitError(
            f"config {str(path)!r} is outside the project {str(PROJECT_ROOT)!r}, which is "
            "what the job uploads as its working directory; copy it into the project "
            "(e.g. experiments/) and submit that copy"
        )
    return resolved


def _job_output(output: str | None) -> str:
    """--output as the job must see it: a URI or an absolute path, never relative."""
    if not output:
        raise SubmitError(
            "--output is required for a job: a URI (s3://bucket/path) or an absolute path "
            "on a filesystem every node mounts; the job's own working directory is a "
            "temporary copy of the project that is deleted with it"
        )
    if is_uri(output) or Path(output).is_absolute():
        return output
    raise SubmitError(
        f"--output {output!r} is relative, so the run folder would land in the job's "
        "temporary working directory (a copy of the project on the head node, deleted "
        "later); give a URI (s3://bucket/path) or an absolute path every node mounts"
    )


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    # Ray lets RAY_ADDRESS (and RAY_API_SERVER_ADDRESS) override the address passed in;
    # --address must win, so it is handed over as the highest-priority variable.
    with _env("RAY_API_SERVER_ADDRESS", address):
        try:
            return JobSubmissionClient(address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()
            raise SubmitError(
                f"cannot reach the Ray job server at {address!r} "
                f"({first[0] if first else type(exc).__name__}); is the cluster up, and is "
                "this its dashboard address (http://HEAD:8265)?"
            ) from None


@contextlib.contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
