"""`raycv run` on a real local Ray: the run folder, agreement with the sequential reference,
a killed fold worker, and a killed driver resumed with --resume."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from raycv.cli import main
from raycv.orchestration.lane_wave import first_line
from tests.conftest import FAULT, TINY, write_config
from tests.contract import check_run_folder
from tests.processes import kill_all, kill_mid_run, log_text, start_cli, tagged_processes, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

# The quickstart made smaller from the command line: its 3 folds on 2 lanes, in seconds.
QUICK = [
    "--set", "data.synthetic.patients=48",
    "--set", "metadata.n_estimators=20",
    "--set", "pretrain.epochs=3",
    "--set", "stage1.epochs=2",
    "--set", "stage2.epochs=2",
]  # fmt: skip

# The fault tests' folds: two, trained one after the other in one lane (so a fold has
# finished while the other trains), with the sequential reference every FAULT test of
# two folds shares (the lanes and retries a run is given do not change its numbers).
FAULT_2 = {**FAULT, "cv": {"folds": 2, "seed": 0}}
ONE_LANE = {"concurrent_folds": 1}
# stage 2 made slow (~3-5 s a fold) for a kill to land in a fold: the whole of a FAULT
# fold takes 1-3 s, about what the driver's relay and a test's polls took to notice it
SLOW_FAULT_2 = {**FAULT_2, "stage2": {"epochs": 200, "patience": 200, "lr": 1e-4}}


def run_quickstart(out: Path, *extra: str) -> int:
    return main(["run", str(ROOT / "experiments/quickstart.yaml"), *QUICK, "--output", str(out), *extra])  # fmt: skip


def probabilities(run: Path) -> pd.DataFrame:
    pred = pd.read_csv(run / "predictions.csv", dtype={"sample_id": str})
    return pred.set_index("sample_id")[[c for c in pred.columns if c.startswith("prob_")]]


def assert_same_predictions(a: Path, b: Path) -> None:
    pa, pb = probabilities(a), probabilities(b)
    assert list(pa.index) == list(pb.index)
    np.testing.assert_allclose(pa.to_numpy(), pb.to_numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def quickstart_on_ray(local_ray, tmp_path_factory):
    """(exit code, run folder, stdout, stderr) of the quickstart on Ray: read by the test of
    what it writes and says, and by the single-cohort Ray = sequential test."""
    out = tmp_path_factory.mktemp("quickstart") / "quickstart"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run_quickstart(out)
    return code, out, stdout.getvalue(), stderr.getvalue()


def test_quickstart_on_ray_writes_the_contract_run_folder(quickstart_on_ray):
    code, out, printed, said = quickstart_on_ray
    assert code == 0, said
    summary = check_run_folder(out)
    assert summary["models"]["fusion"]["kappa_mean"] is not None
    log = (out / "run.log").read_text()
    assert "executor ray" in log and "done in" in log
    # start-up is not silent: Ray, then the lanes, then a status line while folds wait
    assert said.index("raycv: running") < said.index("Ray is up") < said.index("launched 2 lane")
    assert "0/3 folds done | f0 waiting" in said and "not started, each asking 1 CPU" in said
    assert printed.strip().splitlines()[-1] == f"report: {out}/report.html"


# A cohort shaped like a real export: several images per visit, two image modalities,
# visits without an image kept (data.missing_images: mask).
RICH = {
    **TINY,
    "data": {
        **TINY["data"],
        "synthetic": {**TINY["data"]["synthetic"], "images_per_visit": 3, "missing_images": 0.2},
        "modalities": ["metadata", "thermal_map", "depth_map"],
        "missing_images": "mask",
    },
}


REPEATED = {**TINY, "cv": {"folds": 2, "repeats": 2, "seed": 0}}


@pytest.mark.parametrize("cohort", ["single", "rich", "repeated"])
def test_ray_and_sequential_executors_give_the_same_predictions(
    cohort, request, sequential_run, tmp_path
):
    if cohort == "single":  # the quickstart's run on Ray: one map per visit, 3 folds
        code, ray_out, _, said = request.getfixturevalue("quickstart_on_ray")
        assert code == 0, said
        seq_out = tmp_path / "seq"
        with contextlib.redirect_stdout(io.StringIO()):
            assert run_quickstart(seq_out, "--executor", "sequential") == 0
    else:
        request.getfixturevalue("local_ray")
        raw = {"rich": RICH, "repeated": REPEATED}[cohort]
        ray_out = tmp_path / "ray"
        assert main(["run", str(write_config(tmp_path, raw)), "--output", str(ray_out)]) == 0
        seq_out = sequential_run(raw)  # the sequential run of the same config
    assert_same_predictions(ray_out, seq_out)


def test_an_existing_run_folder_is_refused_without_resume_or_overwrite(local_ray, tmp_path, capsys):
    config = write_config(tmp_path, TINY)
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["run", str(config), "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# -- faults: real processes, real signals ------------------------------------------------


def test_placement_groups_outlive_their_maker_and_only_the_driver_owns_its_ray(local_ray):
    """Why a lane's trainer drops Train's placement-group cleaner only in the process that
    started Ray (lane_trainer.py): a group made by an actor (a lane's controller) stays,
    holding its CPUs, after that actor dies; only the Ray's end frees it for sure."""
    from ray.util.placement_group import placement_group_table, remove_placement_group

    from raycv.orchestration.connect import owns_ray

    @ray.remote(num_cpus=0)
    class Controller:
        def owns_ray(self):
            return owns_ray()

        def make_group(self):
            from ray.util.placement_group import placement_group

            group = placement_group([{"CPU": 1}])
            ray.get(group.ready())
            return group

    assert owns_ray()  # the tests' process started this Ray (conftest's local_ray)
    controller = Controller.remote()
    assert ray.get(controller.owns_ray.remote()) is False  # as in a Tune trial's process
    group = ray.get(controller.make_group.remote())
    ray.kill(controller)
    # ray.kill only asks: on a busy machine a call sent right after it was still answered
    deadline = time.monotonic() + 30
    while True:
        try:
            ray.get(controller.owns_ray.remote())
        except ray.exceptions.RayActorError:
            break  # dead
        assert time.monotonic() < deadline, "the killed controller still answers after 30 s"
        time.sleep(0.1)
    assert placement_group_table(group)["state"] == "CREATED"  # still holding its CPU
    remove_placement_group(group)


def test_a_killed_fold_worker_is_retried_and_the_run_agrees(sequential_run, tmp_path):
    """Both folds share one lane; the worker is killed while training the second: the lane
    restarts from that fold's latest phase checkpoint and does not train the first fold
    again."""
    config = write_config(tmp_path, {**SLOW_FAULT_2, "resources": ONE_LANE})
    out = tmp_path / "faulty"
    returncode, output = kill_mid_run(
        "run",
        config,
        out,
        f"worker-kill-{os.getpid()}",
        # the lane's stage-1 checkpoint in Ray's storage: seen at once, unlike an epoch's
        # line, which the driver relays
        lambda: any((out / "ray").glob("lane*/fold1-stage1")),
        "RayTrainWorker",
        "fold 1's stage 2",
    )
    assert returncode == 0, output
    log = log_text(out)
    assert "launched lane0of1 (folds 0, 1)" in log
    assert "fold 1 restart" in log and "resumed from its finished phases forest" in log
    assert log.count("fold 0 start") == 1 and log.count("fold 0 done") == 1  # not retrained
    check_run_folder(out)
    assert_same_predictions(out, sequential_run(SLOW_FAULT_2))


def test_a_killed_driver_resumes_recomputing_only_unfinished_folds(sequential_run, tmp_path):
    """The driver and its whole private Ray are killed once the lane's first fold has
    finished, while it trains the second; --resume reuses the first and trains the second."""
    config = write_config(tmp_path, {**SLOW_FAULT_2, "resources": ONE_LANE})
    out = tmp_path / "resumed"
    tag = f"driver-kill-{os.getpid()}"
    proc = start_cli("run", config, out, tag)

    def finished_folds():
        return sorted(p.parent.name for p in (out / "checkpoints").glob("fold*/result.pt"))

    try:
        done = wait_for(finished_folds, 300, "a finished fold", proc)
    finally:
        kill_all(tag, proc)  # the driver and its whole private Ray, mid-run
    assert len(done) < 2, "every fold finished before the kill; the test needs a slower fold"
    stamps = {f: (out / "checkpoints" / f / "result.pt").stat().st_mtime_ns for f in done}

    again = start_cli("run", config, out, tag, "--resume")
    try:
        output, _ = again.communicate(timeout=400)
    finally:
        kill_all(tag, again)
    assert again.returncode == 0, output
    for f, stamp in stamps.items():  # finished folds were reused, not trained again
        assert (out / "checkpoints" / f / "result.pt").stat().st_mtime_ns == stamp
        assert f"fold {f[4:]} done earlier (reused)" in log_text(out)
    check_run_folder(out)
    assert_same_predictions(out, sequential_run(SLOW_FAULT_2))


def test_a_lane_state_ray_cannot_load_is_started_over_on_resume(local_ray, tmp_path, capsys):
    """A driver killed while Ray Train rewrote a lane's snapshot leaves it cut off (the
    killed-driver test above hits this by chance): Ray Train then refuses to start that
    lane, on every --resume. raycv removes the state, and the fold starts over."""
    config = write_config(tmp_path, {**FAULT_2, "resources": ONE_LANE})
    out = tmp_path / "cut"
    assert main(["run", str(config), "--output", str(out)]) == 0
    before = probabilities(out)
    (out / "checkpoints" / "fold1" / "result.pt").unlink()  # fold 1 unfinished, as if killed
    snapshot = out / "ray" / "lane0of1" / "checkpoint_manager_snapshot.json"
    text = snapshot.read_text()
    snapshot.write_text(text[: len(text) // 2])  # cut off mid-write
    capsys.readouterr()

    assert main(["run", str(config), "--output", str(out), "--resume"]) == 0
    said = capsys.readouterr().err
    assert f"lane0of1: Ray Train cannot load the state an earlier run left ({snapshot}: " in said
    assert "fold 0 done earlier (reused)" in said and "fold 1 start" in log_text(out)
    check_run_folder(out)
    pd.testing.assert_frame_equal(probabilities(out), before)  # the same numbers again


def test_a_lane_that_cannot_start_is_reported_by_its_cause(local_ray):
    """Ray's first line for an actor whose constructor raised (a lane's train controller)
    names only the actor; the one-line error raycv prints must say what was raised."""

    @ray.remote(num_cpus=0)
    class Controller:
        def __init__(self):
            raise ValueError("the lane's snapshot is cut off\nmore detail")

        def ready(self):
            return True

    with pytest.raises(ray.exceptions.ActorDiedError) as died:
        ray.get(Controller.remote().ready.remote())
    assert first_line(died.value) == "ValueError: the lane's snapshot is cut off"
    assert first_line(ValueError("plain\nerror")) == "plain"


def test_ctrl_c_stops_the_run_cleanly_and_says_how_to_resume(tmp_path):
    config = write_config(tmp_path, FAULT_2)
    out = tmp_path / "interrupted"
    tag = f"ctrl-c-{os.getpid()}"
    proc = start_cli("run", config, out, tag)
    try:
        wait_for(lambda: "pretrain(thermal_map) ep 2" in log_text(out), 240, "pretraining", proc)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output
        assert "--resume" in output
        # the private Ray and its fold workers are gone: nothing keeps computing
        wait_for(lambda: not tagged_processes(tag, "RayTrainWorker"), 60, "workers to stop")
        assert (out / "config.yaml").exists() and not (out / "summary.json").exists()
    finally:
        kill_all(tag, proc)
