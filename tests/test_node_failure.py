"""A worker node that dies mid-run, on a real two-node cluster: its folds are retried on
the node left, nothing the driver waits on dies with it, and the run ends with the
sequential run's predictions.

The cluster is two `ray start` processes on 127.0.0.1 (a 1-CPU head and a 1-CPU worker
node, so each of the two 1-CPU folds trains on its own node); the worker node's
processes are found by the tag in their environment and ended with SIGKILL, as a
machine that loses power would end them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from ray.util.state import list_actors

from tests.conftest import write_config
from tests.contract import check_run_folder
from tests.processes import log_text, wait_for
from tests.test_cluster import LocalCluster
from tests.test_ray_run import SLOW_FAULT_2, assert_same_predictions

pytestmark = pytest.mark.slow


def relay_node(cluster: LocalCluster) -> str | None:
    """The node of the run's progress relay, asked from the head's state API (this test
    process stays Ray-free)."""
    actors = list_actors(
        address=cluster.dashboard,
        filters=[("class_name", "=", "ProgressRelay"), ("state", "=", "ALIVE")],
        raise_on_missing_output=False,
    )
    return actors[0].node_id if actors else None


def test_a_dead_worker_node_costs_only_its_fold_and_the_run_agrees(sequential_run, tmp_path):
    # folds with a slow stage 2 (test_ray_run), so the node dies while both still train
    config = write_config(tmp_path, {**SLOW_FAULT_2, "resources": {"max_failures": 3}})
    reference = sequential_run(SLOW_FAULT_2)  # the sequential run, shared with test_ray_run's

    cluster = LocalCluster(f"node-death-{os.getpid()}", num_cpus=1)
    try:
        worker = cluster.add_node(num_cpus=1)
        nodes = cluster.nodes()
        head = next(n for n, is_head in nodes.items() if is_head)
        out = tmp_path / "run"
        command = [sys.executable, "-m", "raycv", "run", str(config), "--output", str(out)]
        proc = subprocess.Popen(
            [*command, "--address", cluster.gcs],
            env={**cluster.env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            # both folds train, one on each node
            wait_for(
                lambda: len(re.findall(r"pretrain\(thermal_map\) ep 2", log_text(out))) >= 2,
                300,
                "both folds pretraining",
                proc,
            )
            # the driver depends on the relay: it must be on the driver's node (the head),
            # never on the node about to die
            assert relay_node(cluster) == head
            victims = cluster.node_pids(worker)
            assert victims, "the worker node has no processes to end"
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            died = time.time()
            output, _ = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:  # the test failed before raycv ended
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
        assert proc.returncode == 0, output
        log = log_text(out)
        started = re.findall(r"fold (\d+) \S+ \(on node ([0-9a-f]+)", log)
        lost = next(fold for fold, node in started if not head.startswith(node))
        # the lost fold started again on the head, from its last finished phase
        assert re.search(rf"fold {lost} restart \(on node {head[:12]}", log), log
        print(f"fold {lost} lost with its node; the run ended {time.time() - died:.0f} s later")
    finally:
        cluster.stop()
    check_run_folder(out)
    assert_same_predictions(out, reference)
