"""Cluster use: cluster.yaml checked the way `ray up` checks it, `raycv submit` over the
Jobs API of a real Ray head, and a two-node cluster that spreads folds and refuses a run
folder one node cannot see.

The clusters are real `ray start` processes on this machine: each with free ports, its
own temp dir, token auth off for every process involved, and an environment tag by
which the test finds, and stops, its own processes and no one else's.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from raycv.cli import main
from raycv.errors import RaycvError
from raycv.orchestration import submit as submit_mod
from tests.contract import check_run_folder

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


# -- cluster.yaml: the checks `ray up` runs, offline ------------------------------------


def validate_cluster_config(config: dict) -> None:
    """Raise unless `config` passes Ray's own checks and raycv's expectations of it."""
    jsonschema.validate(config, json.loads(SCHEMA.read_text()))  # typos, missing keys
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` checks next
    types = config["available_node_types"]
    head = config["head_node_type"]
    assert types[head]["resources"].get("GPU", 0) == 0, "the head should be a CPU node"
    workers = [t for name, t in types.items() if name != head]
    assert workers and all(t["resources"].get("GPU", 0) >= 1 for t in workers), (
        "every worker node type should advertise its GPUs"
    )
    for remote, local in config.get("file_mounts", {}).items():
        assert (ROOT / local).exists(), f"file_mounts {remote}: {local} is not in the project"
    setup = " ".join(config["setup_commands"])
    assert "-c ~/raycv/constraints.txt" in setup, "setup must install the pinned versions"
    pinned = (ROOT / "constraints.txt").read_text()
    assert f"ray=={ray.__version__}" in pinned, "the cluster's Ray must match this Ray"


def cluster_yaml() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_own_validation():
    validate_cluster_config(cluster_yaml())


def _typo_in_a_key(c):
    c["max_worker"] = c.pop("max_workers")


def _head_type_not_defined(c):
    c["head_node_type"] = "ray.head.default"


def _fractional_gpu_resource(c):
    c["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5


def _no_cluster_name(c):
    del c["cluster_name"]


def _more_min_workers_than_allowed(c):
    c["available_node_types"]["gpu_worker"]["min_workers"] = c["max_workers"] + 1


def _typo_in_a_node_type_key(c):
    c["available_node_types"]["gpu_worker"]["node_cofig"] = c["available_node_types"][
        "gpu_worker"
    ].pop("node_config")


def _file_mount_of_a_missing_path(c):
    c["file_mounts"]["~/raycv/raycv"] = "./raycvv"


@pytest.mark.parametrize(
    "breakage",
    [
        _typo_in_a_key,
        _head_type_not_defined,
        _fractional_gpu_resource,
        _no_cluster_name,
        _more_min_workers_than_allowed,
        _typo_in_a_node_type_key,
        _file_mount_of_a_missing_path,
    ],
)
def test_a_broken_copy_of_cluster_yaml_fails_validation(breakage, tmp_path):
    broken = tmp_path / "cluster.yaml"
    config = cluster_yaml()
    breakage(config)
    broken.write_text(yaml.safe_dump(config))
    with pytest.raises((jsonschema.ValidationError, ValueError, AssertionError)):
        validate_cluster_config(yaml.safe_load(broken.read_text()))


def test_the_gpu_experiment_asks_one_gpu_per_fold():
    from raycv import config as config_mod

    gpu = config_mod.load(ROOT / "experiments/two_stage_fusion_gpu.yaml")
    cpu = config_mod.load(ROOT / "experiments/two_stage_fusion.yaml")
    assert gpu.resources.per_fold.gpu == 1
    differing = config_mod.differing_keys(cpu, gpu)
    assert set(differing) <= {"name", "resources.per_fold.gpu", "resources.per_fold.cpu"}


# -- raycv submit: what it refuses before uploading anything ------------------------------


def submit_args(**kw) -> submit_mod.SubmitRequest:
    base = dict(
        config=str(ROOT / "experiments/quickstart.yaml"),
        output="/shared/runs/q",
        address="http://127.0.0.1:1",
    )
    return submit_mod.SubmitRequest(**{**base, **kw})


@pytest.mark.parametrize("what", ["tune", "ablate"])
def test_submit_builds_the_job_entrypoint_from_the_cli_arguments(what):
    request = submit_args(overrides=("stage2.lr=1e-7", "name=a b"), resume=True, command=what)
    command = submit_mod.job_entrypoint(request, "experiments/quickstart.yaml", "s3://b/r")
    assert command == (
        f"python -m raycv {what} experiments/quickstart.yaml --set stage2.lr=1e-7 "
        "--set 'name=a b' --output s3://b/r --resume"
    )


def test_the_cli_asks_for_the_command_it_is_given(monkeypatch):
    asked = []
    monkeypatch.setattr(submit_mod, "submit", lambda request: asked.append(request) or 0)
    for flag, what in (([], "run"), (["--tune"], "tune"), (["--ablate"], "ablate")):
        assert main(["submit", "experiments/quickstart.yaml", "--output", "/x", *flag]) == 0
        assert asked.pop().command == what


@pytest.mark.parametrize(
    "change, message",
    [
        ({"output": None}, "--output is required"),
        ({"output": "runs/q"}, "is relative"),
        ({"overrides": ("stage2.lrr=1",)}, "stage2.lrr"),
        ({"address": None}, "no cluster to submit to"),
    ],
)
def test_submit_refuses_what_the_job_could_not_use(change, message, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RaycvError, match=re.escape(message)):
        submit_mod.submit(submit_args(**change))


def test_submit_refuses_a_config_outside_the_uploaded_project(tmp_path):
    outside = tmp_path / "exp.yaml"
    shutil.copy(ROOT / "experiments/quickstart.yaml", outside)
    with pytest.raises(RaycvError, match="outside the project"):
        submit_mod.submit(submit_args(config=str(outside)))


def test_submit_says_which_address_it_cannot_reach(monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:2")  # --address must win over it
    port = free_ports(1)[0]  # nothing listens there
    code = main(
        ["submit", str(ROOT / "experiments/quickstart.yaml"), "--output", "/x/y"]
        + ["--address", f"http://127.0.0.1:{port}"]
    )
    assert code == 2
    assert (
        f"cannot reach the Ray job server at 'http://127.0.0.1:{port}'" in capsys.readouterr().err
    )


# -- the per-fold guard for nodes that join after the driver's check ----------------------


def test_a_fold_on_a_node_without_the_run_folder_refuses_to_train(tmp_path):
    from raycv.orchestration.storage_check import check_visible_here

    check_visible_here(str(tmp_path))  # there: passes
    check_visible_here(tmp_path.as_uri())
    missing = str(tmp_path / "elsewhere")
    with pytest.raises(RaycvError, match=re.escape(f"{missing!r} is not shared: node")):
        check_visible_here(missing)


# -- real clusters on this machine ---------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_ports() -> list[str]:
    """Ports a node would otherwise take from fixed defaults, which two nodes (or another
    test's Ray) on one machine would fight over."""
    names = (
        "--node-manager-port",
        "--object-manager-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
    )
    return [f"{name}={port}" for name, port in zip(names, free_ports(len(names)), strict=True)]


class LocalCluster:
    """A Ray head (and optionally more nodes) started with `ray start` on this machine.

    Every process it starts carries RAYCV_TEST_TAG=<tag> in its environment (Ray's
    daemons, workers and job drivers inherit it), so `stop` ends exactly those.
    """

    def __init__(self, tag: str, num_cpus: int):
        # short: Ray's unix socket paths must stay under ~107 characters
        self.tmp = Path(tempfile.mkdtemp(prefix="rcv-", dir="/tmp"))
        self.tag = tag
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the job's python
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAYCV_TEST_TAG": tag,
        }
        self.env.pop("RAY_ADDRESS", None)
        self.gcs_port, self.dashboard_port, client_port = free_ports(3)
        self.gcs = f"127.0.0.1:{self.gcs_port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self._ray(
            "--head",
            f"--port={self.gcs_port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={client_port}",
            f"--temp-dir={self.tmp / 'head'}",
            num_cpus=num_cpus,
        )

    def _ray(
        self, *args: str, num_cpus: int, prefix: tuple[str, ...] = (), env: dict | None = None
    ) -> None:
        command = [*prefix, str(VENV_BIN / "ray"), "start", f"--num-cpus={num_cpus}"]
        command += ["--num-gpus=0", "--disable-usage-stats", *node_ports(), *args]
        done = subprocess.run(
            command, env=env or self.env, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"

    def add_node(self, num_cpus: int = 1, prefix: tuple[str, ...] = ()) -> str:
        """Start a node; returns its tag (RAYCV_TEST_NODE in the environment of each of
        its processes: its raylet, its workers), by which `node_pids` finds them."""
        name = f"node{len(list(self.tmp.glob('node*')))}"
        node_tag = f"{self.tag}-{name}"
        self._ray(
            f"--address={self.gcs}",
            f"--temp-dir={self.tmp / name}",
            num_cpus=num_cpus,
            prefix=prefix,
            env={**self.env, "RAYCV_TEST_NODE": node_tag},
        )
        return node_tag

    def nodes(self) -> dict[str, bool]:
        """{node id: is the head} of the alive nodes, asked from a separate driver (this
        test process stays Ray-free)."""
        code = (
            "import json, ray\n"
            f"ray.init(address={self.gcs!r}, log_to_driver=False, logging_level='ERROR')\n"
            "print(json.dumps({n['NodeID']: 'node:__internal_head__' in n['Resources']\n"
            "                  for n in ray.nodes() if n['Alive']}))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def pids(self, needle: bytes | None = None) -> list[int]:
        """This cluster's processes (or those whose environment holds `needle`)."""
        needle = needle or f"RAYCV_TEST_TAG={self.tag}".encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                try:
                    if needle in (proc / "environ").read_bytes():
                        pids.append(int(proc.name))
                except OSError:
                    continue
        return pids

    def node_pids(self, node_tag: str) -> list[int]:
        """The processes of one node that add_node started (tag: what it returned)."""
        return self.pids(f"RAYCV_TEST_NODE={node_tag}\0".encode())

    def stop(self) -> None:
        """End this cluster's processes only (head, nodes, client server, workers, jobs)."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + grace
            while self.pids() and time.time() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.tmp, ignore_errors=True)
        assert not self.pids(), f"processes of the test cluster survived: {self.pids()}"


def submit(cluster: LocalCluster, monkeypatch, *args: str) -> int:
    """`raycv submit --wait` from this process, as a user on their laptop would run it."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return main(["submit", *args, "--address", cluster.dashboard, "--wait"])


# Two folds that train in seconds (the quickstart, made smaller from the command line).
SMALL = [
    "--set", "cv.folds=2",
    "--set", "data.synthetic.patients=48",
    "--set", "metadata.n_estimators=20",
    "--set", "pretrain.epochs=3",
    "--set", "stage1.epochs=2",
    "--set", "stage2.epochs=2",
]  # fmt: skip


def can_hide_a_folder_from_a_node() -> bool:
    """A private mount namespace (unshare -m, needs CAP_SYS_ADMIN) lets one node's
    processes see an empty tmpfs where the others see the run folder."""
    if shutil.which("unshare") is None:
        return False
    probe = tempfile.mkdtemp(dir="/tmp")
    try:
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {probe}"],
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0
    finally:
        os.rmdir(probe)


@pytest.fixture(scope="module")
def two_nodes():
    """A 1-CPU head and a 1-CPU node (two folds cannot share a node). `shared/` is one
    folder for both; the node sees an empty `private/` of its own where it can. ids: {node
    id: is the head} of its nodes, asked once."""
    cluster = LocalCluster(f"cluster-two-{os.getpid()}", num_cpus=1)
    try:
        shared, private = cluster.tmp / "shared", cluster.tmp / "private"
        shared.mkdir()
        private.mkdir()
        cluster.hides_private = can_hide_a_folder_from_a_node()
        prefix = ()
        if cluster.hides_private:
            prefix = (
                "unshare",
                "-m",
                "sh",
                "-c",
                f'mount -t tmpfs tmpfs {private} && exec "$@"',
                "-",
            )
        cluster.add_node(num_cpus=1, prefix=prefix)
        cluster.ids = cluster.nodes()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def submitted(two_nodes):
    """`raycv submit --wait` of the quickstart (SMALL) into the folder both nodes see, as a
    user on their laptop would run it: (exit code, stdout, stderr, run folder). One job
    for the tests of what submit says and writes and of where the folds ran."""
    out = two_nodes.tmp / "shared" / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = submit(two_nodes, patch, "experiments/quickstart.yaml", *SMALL, "--output", str(out))  # fmt: skip
    return code, stdout.getvalue(), stderr.getvalue(), out


@pytest.mark.slow
def test_quickstart_submitted_as_a_job_writes_the_contract_run_folder(two_nodes, submitted):
    code, printed, errors, out = submitted
    assert code == 0, printed + errors
    job = re.search(r"submitted job (\S+):", printed).group(1)
    assert f"ray job logs --address {two_nodes.dashboard} --follow {job}" in printed
    assert "executor ray" in printed and f"results: {out}" in printed  # the job's log
    check_run_folder(out)


@pytest.mark.slow
def test_two_folds_spread_over_two_nodes_into_a_folder_both_see(two_nodes, submitted):
    nodes = two_nodes.ids
    assert len(nodes) == 2
    code, printed, errors, out = submitted
    assert code == 0, printed + errors
    check_run_folder(out)
    # each fold's worker says where it runs (run.log): one fold per node
    log = (out / "run.log").read_text()
    node_of = {
        int(fold): next(n for n in nodes if n.startswith(prefix))
        for fold, prefix in re.findall(r"fold (\d+) \S+ \(on node ([0-9a-f]+)", log)
    }
    print(f"fold -> node: {node_of}")
    assert sorted(node_of) == [0, 1] and set(node_of.values()) == set(nodes), node_of


@pytest.mark.slow
def test_a_run_folder_one_node_cannot_see_is_refused_before_training(
    two_nodes, monkeypatch, capsys
):
    if not two_nodes.hides_private:
        pytest.skip("no private mount namespace here (unshare -m needs CAP_SYS_ADMIN)")
    out = two_nodes.tmp / "private" / "run"  # the head's disk only, as on a real cluster
    code = submit(
        two_nodes, monkeypatch, "experiments/quickstart.yaml", *SMALL, "--output", str(out)
    )
    printed = capsys.readouterr()
    assert code == 2, printed.out + printed.err  # the job ends with raycv's refusal status
    refused = re.search(r"is not shared: node ([0-9a-f]+)", printed.out)
    assert refused, printed.out
    worker_node = next(n for n, head in two_nodes.ids.items() if not head)
    assert refused.group(1) == worker_node  # the node that cannot see the head's disk
    assert not (out / "ray").exists() and not (out / "summary.json").exists()  # nothing trained


@pytest.mark.slow
def test_on_a_joined_cluster_folds_asking_for_a_gpu_wait_and_say_for_what(two_nodes, tmp_path):
    """A joined cluster may still grow (an autoscaler), so raycv does not refuse a GPU it
    lacks now: the folds wait, and every 10 s the status line says what they ask for and
    what the cluster has (here two nodes of 1 CPU)."""
    out = tmp_path / "waits"
    command = [sys.executable, "-m", "raycv", "run", "experiments/quickstart.yaml", *SMALL]
    command += ["--set", "resources.per_fold.gpu=1", "--output", str(out)]
    command += ["--address", two_nodes.gcs]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**two_nodes.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    waiting, lines = [], []
    try:
        deadline = time.time() + 180
        while len(waiting) < 2 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "not started, each asking 1 CPU, 1 GPU; the cluster has 2 CPU, 0 GPU" in line:
                waiting.append(time.time())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver; its trainers end with it
        proc.wait(timeout=60)
    assert len(waiting) == 2, "".join(lines)
    assert 8 <= waiting[1] - waiting[0] <= 20  # the status line comes every 10 s
    assert not (out / "summary.json").exists()
