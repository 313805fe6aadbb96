"""A raycv command in a process of its own, and the processes of the private Ray it
starts: for tests that kill a worker, a driver or a trial mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def start_cli(command: str, config: Path, out: Path, tag: str, *extra: str) -> subprocess.Popen:
    """`raycv <command>` in its own process group (its own private Ray), tagged through the
    environment so the test can find that Ray's processes and only those."""
    env = {**os.environ, "RAYCV_TEST_TAG": tag, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "raycv", command, str(config), "--output", str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def tagged_processes(tag: str, title: str = "") -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if f"RAYCV_TEST_TAG={tag}".encode() in environ and title in cmdline:
            pids.append(int(proc.name))
    return pids


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"raycv exited ({proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def kill_all(tag: str, proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in tagged_processes(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def log_text(out: Path) -> str:
    path = out / "run.log"
    return path.read_text() if path.exists() else ""


def kill_mid_run(
    command: str, config: Path, out: Path, tag: str, ready, title: str, what: str
) -> tuple[int, str]:
    """Run `raycv <command>`, wait until ready() is true, SIGKILL the first of its Ray's
    processes whose command line holds `title` (as the OOM killer would), then let raycv
    finish; returns its exit code and output."""
    proc = start_cli(command, config, out, tag)
    try:
        wait_for(ready, 300, what, proc)
        victims = wait_for(lambda: tagged_processes(tag, title), 30, title)
        os.kill(victims[0], signal.SIGKILL)
        output, _ = proc.communicate(timeout=400)
    finally:
        kill_all(tag, proc)
    return proc.returncode, output
