"""`raycv tune` through real Ray Tune: trials, reuse of shared phases, the nested estimate,
the best config, and resume."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raycv.cli import main
from raycv.config import ConfigError
from raycv.orchestration.fold_tasks import unit_options
from raycv.orchestration.reuse import reusable_phases
from raycv.orchestration.tune import HEAD_NODE, TRIAL_MEMORY, TRIAL_RESOURCES, in_flight
from raycv.orchestration.tune_space import check_search
from raycv.statistics.nested import nested_estimate
from tests.conftest import FAULT, SEARCH, tiny_config, write_config
from tests.contract import check_run_folder
from tests.processes import kill_all, kill_mid_run, log_text, start_cli, wait_for


def pretrain_starts(tune_dir: Path) -> int:
    """How many times any fold began pretraining (first epoch), over every log of the search."""
    logs = [p for p in tune_dir.rglob("run.log") if "best" not in p.relative_to(tune_dir).parts]
    return sum(log.read_text().count("pretrain(thermal_map) ep 0 ") for log in logs)


def fold_worker_pids(log: Path) -> set[str]:
    """The processes that ran a search's fold tasks, from a run.log's "fold k start (a task
    on node N, pid P)" lines."""
    return set(re.findall(r"start \(a task on node \w+, pid (\d+)\)", log.read_text()))


def test_reuse_is_switched_off_for_phases_a_searched_key_changes():
    assert reusable_phases(["stage2.lr", "stage2.unfreeze_depth"]) == [
        "forest",
        "pretrain",
        "stage1",
    ]
    assert reusable_phases(["fusion.weights.metadata"]) == ["forest", "pretrain"]
    assert reusable_phases(["pretrain.lr", "stage2.lr"]) == ["forest"]
    assert reusable_phases(["cv.inner_val_fraction"]) == []
    assert reusable_phases(["stage2.lr"], enabled=False) == []


def test_a_trial_reserves_no_cpu_and_its_fold_tasks_ask_for_a_folds_resources():
    # a trial only waits on its folds, from the head node: holding a CPU would starve the
    # folds, and a worker node that dies must not take the trial down
    assert TRIAL_RESOURCES == {"memory": TRIAL_MEMORY, HEAD_NODE: 0.001}
    gpu = tiny_config("resources.per_fold.cpu=1", "resources.per_fold.gpu=0.5")
    options = unit_options(gpu)
    assert (options["num_cpus"], options["num_gpus"]) == (1, 0.5)
    # a fold whose worker died is retried; outside the trial's placement group
    assert options["max_retries"] == gpu.resources.max_failures
    assert options["scheduling_strategy"] == "DEFAULT"


def test_a_trial_asks_for_every_fold_at_once_unless_capped_or_scheduled():
    assert in_flight(tiny_config(), n_folds=3, joined=False) == 3
    assert in_flight(tiny_config("resources.concurrent_folds=1"), n_folds=3, joined=False) == 1
    # ASHA judges trials on their first folds: a trial runs its share of the cluster
    asha = tiny_config("tune.scheduler=asha", "tune.max_concurrent_trials=2")
    assert in_flight(asha, n_folds=3, joined=False, total={"CPU": 4}) == 2
    assert in_flight(asha, n_folds=3, joined=False, total={"CPU": 2}) == 1
    assert in_flight(asha, n_folds=3, joined=True) == 3  # a joined cluster grows per fold


@pytest.mark.skipif(importlib.util.find_spec("optuna") is not None, reason="optuna installed")
def test_optuna_without_optuna_is_refused_before_anything_starts(tmp_path, capsys):
    out = tmp_path / "never"
    config = write_config(tmp_path, SEARCH)
    args = ["tune", str(config), "--output", str(out), "--set", "tune.search_alg=optuna"]
    assert main(args) == 2
    errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("raycv: error:")]
    assert len(errors) == 1 and "pip install 'raycv[optuna]'" in errors[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "space, words",
    [
        ({"image.batch_size": {"uniform": [8, 32]}}, "image.batch_size takes whole numbers"),
        ({"stage2.epochs": {"loguniform": [5, 50]}}, "stage2.epochs takes whole numbers"),
        ({"stage2.unfreeze_depth": {"uniform": [1, 3]}}, "randint"),
        ({"stage2.epochs": {"randint": [0, 5]}}, "stage2.epochs=0"),
    ],
)
def test_a_space_no_trial_could_use_is_refused_up_front(space, words):
    """A continuous range on an int key passed the old check (its ends are whole) and
    failed inside every trial; now it is refused before anything starts, without Ray."""
    config = tiny_config(**{"tune": {"space": space}})
    with pytest.raises(ConfigError) as err:
        check_search(config)
    assert words in str(err.value) and next(iter(space)) in str(err.value)
    assert check_search(tiny_config(**{"tune": {"space": {"stage2.epochs": {"randint": [2, 5]}}}}))


@pytest.mark.parametrize(
    "change, key",
    [
        ("tune.space={stage2.lr: {loguniform: [1.0e-7, 1.0e-5]}}", "tune.space"),
        ("tune.num_samples=5", "tune.num_samples"),
        ("tune.scheduler=asha", "tune.scheduler"),
    ],
)
def test_a_resumed_search_refuses_a_changed_search_that_restore_would_ignore(
    tmp_path, capsys, change, key
):
    from raycv import config as config_mod
    from raycv.experiment import prepare

    config = write_config(tmp_path, SEARCH)
    out = tmp_path / "tune"
    out.mkdir()  # the folder an interrupted search left (its config is what it searched)
    (out / "config.yaml").write_text(config_mod.dump(prepare(config_mod.load(config)).config))
    assert main(["tune", str(config), "--output", str(out), "--resume", "--set", change]) == 2
    errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("raycv: error:")]
    assert len(errors) == 1 and f"differs in {key}" in errors[0], errors
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]  # nothing else written


def test_nested_estimate_takes_each_folds_own_best_trial():
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c"],
            "val_kappa_fold0": [0.5, 0.7, 0.6],
            "val_kappa_fold1": [0.9, 0.1, np.nan],  # c never finished fold 1
            "outer_kappa_fold0": [0.40, 0.30, 0.20],
            "outer_kappa_fold1": [0.50, 0.60, np.nan],
        }
    )
    est = nested_estimate(trials, ["fold0", "fold1"], "trial_id")
    assert [p["trial_id"] for p in est["per_fold"]] == ["b", "a"]
    assert est["kappa_mean"] == pytest.approx((0.30 + 0.50) / 2)


@pytest.mark.slow
def test_a_tiny_search_runs_end_to_end_and_reuses_pretraining(tiny_search, local_ray, tmp_path):
    config, out, printed = tiny_search
    assert "nested estimate" in printed and "optimistic" in printed
    assert "Configuration for experiment" not in printed  # Tune's banner, not raycv's

    trials = pd.read_csv(out / "trials.csv")
    n_trials = SEARCH["tune"]["num_samples"]
    assert len(trials) == n_trials and (trials["status"] == "complete").all()
    for column in (
        "stage2.lr",
        "stage2.unfreeze_depth",
        "val_kappa_fold0",
        "val_kappa_fold1",
        "outer_kappa_fold0",
        "outer_kappa_fold1",
        "val_kappa_mean",
        "val_kappa_std",
        "outer_kappa_mean",
        "outer_kappa_std",
        "outer_kappa_pooled",
        "status",
    ):
        assert column in trials.columns
    assert trials["stage2.lr"].between(1e-6, 1e-3).all()

    # pretraining ran once per fold, not once per trial
    assert pretrain_starts(out) == 2

    # Tune's own per-trial logs, without TensorBoard files tracking.tensorboard did not ask for
    tune_trials = list((out / "search").glob("run_trial_*"))
    assert len(tune_trials) == n_trials
    for trial in tune_trials:
        assert (trial / "progress.csv").is_file() and (trial / "result.json").is_file()
        assert not list(trial.glob("events.out.tfevents*"))

    # every trial's folds ran in the workers the shared phases had started (one pool of
    # fold workers: the trials' tasks did not wait for new processes)
    shared_pids = fold_worker_pids(out / "run.log")
    trial_pids = set().union(*map(fold_worker_pids, (out / "trials").glob("*/run.log")))
    assert shared_pids and trial_pids <= shared_pids

    # tune.max_concurrent_trials=1: each trial began (wrote its config) after the one
    # before it ended (wrote its provenance)
    spans = sorted(
        ((t / "config.yaml").stat().st_mtime, (t / "provenance.json").stat().st_mtime)
        for t in (out / "trials").iterdir()
    )
    for (_, ended), (began, _) in zip(spans, spans[1:], strict=False):
        assert began >= ended

    # the summary's nested estimate is what trials.csv gives by hand
    summary = json.loads((out / "summary.json").read_text())
    by_hand = np.mean(
        [
            trials.loc[trials[f"val_kappa_fold{k}"].idxmax(), f"outer_kappa_fold{k}"]
            for k in range(2)
        ]
    )
    assert summary["nested"]["kappa_mean"] == pytest.approx(by_hand)
    best = trials.loc[trials["val_kappa_mean"].idxmax()]
    assert summary["best"]["trial_id"] == best["trial_id"]
    assert summary["best"]["outer_kappa_mean"] == pytest.approx(best["outer_kappa_mean"])

    # best/ is a contract run folder, and best.yaml runs as it is
    check_run_folder(out / "best")
    rerun = tmp_path / "best_rerun"
    assert (
        main(["run", str(out / "best.yaml"), "--output", str(rerun), "--executor", "sequential"])
        == 0
    )
    a = pd.read_csv(out / "best" / "predictions.csv")
    b = pd.read_csv(rerun / "predictions.csv")
    np.testing.assert_allclose(
        a.filter(like="prob_").to_numpy(), b.filter(like="prob_").to_numpy(), atol=1e-6
    )

    # tracking.mlflow: Tune's MLflow callback logged one run per trial, with its searched
    # values and its objective
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(out.resolve() / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("search")
    assert experiment is not None, "the search logged nothing to MLflow"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == n_trials
    by_trial = {
        next(t for t in trials["trial_id"] if r.data.tags.get("trial_name", "").endswith(t)): r
        for r in runs
    }
    assert sorted(by_trial) == sorted(trials["trial_id"])
    for trial_id, run in by_trial.items():
        row = trials.set_index("trial_id").loc[trial_id]
        assert float(run.data.params["stage2.lr"]) == pytest.approx(row["stage2.lr"])
        assert run.data.metrics["objective"] == pytest.approx(row["val_kappa_mean"])

    # a second search on the same data and settings reuses the cached phases, whatever
    # its folds' concurrency (one fold at a time here)
    again = tmp_path / "tune2"
    cache = out.parent / ".raycv-cache"  # where the first search kept its shared phases
    assert (
        main(
            [
                "tune",
                str(config),
                "--output",
                str(again),
                "--set",
                "tune.num_samples=1",
                "--set",
                "resources.concurrent_folds=1",
                "--set",
                f"tune.cache_dir={cache}",
            ]
        )
        == 0
    )
    assert pretrain_starts(again) == 0
    assert "reusing cached" in (again / "run.log").read_text()


@pytest.mark.slow
def test_searching_a_pretraining_key_recomputes_pretraining_per_trial(local_ray, tmp_path):
    # two trials at a time, every fold of both asked for at once (the tiny search above
    # runs one trial at a time)
    raw = {
        **SEARCH,
        "tune": {
            **SEARCH["tune"],
            "num_samples": 2,
            "max_concurrent_trials": 2,
            "space": {"pretrain.lr": {"uniform": [1e-3, 3e-3]}},
        },
    }
    out = tmp_path / "tune"
    assert main(["tune", str(write_config(tmp_path, raw)), "--output", str(out)]) == 0
    assert pretrain_starts(out) == 2 * 2  # every trial pretrains every fold itself
    log = (out / "run.log").read_text()
    assert "computing forest once per fold" in log  # the forest does not depend on it


@pytest.mark.slow
def test_asha_stops_weak_trials_after_a_fold_and_the_best_finished_every_fold(local_ray, tmp_path):
    # the fusion weight moves the fold-0 kappa a lot, so ASHA (rung at 1 fold) has weak
    # trials to stop; two trials at a time, whose processes Tune reuses, each running one
    # fold at a time (its share of 2 CPUs)
    raw = {
        **SEARCH,
        "cv": {"folds": 3, "seed": 0},
        "tune": {
            "space": {"fusion.weights.metadata": {"uniform": [0.05, 0.95]}},
            "num_samples": 6,
            "max_concurrent_trials": 2,
            "scheduler": "asha",
        },
    }
    out = tmp_path / "tune"
    assert main(["tune", str(write_config(tmp_path, raw)), "--output", str(out)]) == 0
    trials = pd.read_csv(out / "trials.csv")
    stopped, complete = (
        trials[trials["status"] == "stopped"],
        trials[trials["status"] == "complete"],
    )
    assert len(stopped) >= 1 and len(complete) >= 1 and len(stopped) + len(complete) == 6
    # a stopped trial reported its folds in fold order and stopped at a rung
    assert (stopped["folds_done"] < 3).all() and stopped["val_kappa_fold0"].notna().all()
    assert stopped["val_kappa_fold2"].isna().all()
    # a complete trial's folder is a whole run folder, even though ASHA ends every trial
    # at max_t inside its last report
    for trial_id in complete["trial_id"]:
        check_run_folder(out / "trials" / trial_id)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["trial_id"] in set(complete["trial_id"])
    check_run_folder(out / "best")
    assert (out / "report.html").exists()


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_repeating_finished_trials(local_ray, tmp_path):
    # two trials at a time on 2 CPUs, their folds on the same two fold workers. Tune lets
    # the running trials end (up to ~10 s) after Ctrl-C, and these take ~2 s: six trials,
    # so that some are still to start when the search stops
    raw = {**SEARCH, "tune": {**SEARCH["tune"], "num_samples": 6, "max_concurrent_trials": 2}}
    config, out = write_config(tmp_path, raw), tmp_path / "tune"
    tag = f"tune-interrupt-{os.getpid()}"
    proc = start_cli("tune", config, out, tag)
    try:
        wait_for(lambda: " finished (1/" in log_text(out), 300, "a finished trial", proc)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        kill_all(tag, proc)
    first_done = log_text(out).count("finished (")
    assert first_done < 6
    # said as an interrupted run says it, and no results of a search cut short
    assert proc.returncode == 130, output
    assert "Continue with the same command plus --resume" in output
    assert not (out / "trials.csv").exists() and not (out / "best").exists()

    assert main(["tune", str(config), "--output", str(out), "--resume"]) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 6 and (trials["status"] == "complete").all()
    text = log_text(out)
    assert "each trial's folds are Ray tasks" in text
    finished_ids = [
        line.split()[1]
        for line in text.splitlines()
        if line.startswith("trial ") and "finished" in line
    ]
    assert len(finished_ids) == len(set(finished_ids)) == 6  # no trial finished twice


@pytest.mark.slow
@pytest.mark.parametrize(
    "victim, restarted",
    [("ImplicitFunc", True), ("ray::run_unit", False)],
    ids=["trial-process", "fold-worker"],
)
def test_a_killed_trial_or_fold_worker_is_recovered_and_keeps_finished_folds(
    victim, restarted, tmp_path
):
    """Killed in fold 1 (its folds in turn here: resources.concurrent_folds=1). The trial's
    process: Tune restarts the trial (resources.max_failures), Ray ends the fold task the
    dead trial had asked for, and the restarted trial reuses fold 0. The fold's worker: Ray
    retries that fold's task, and the trial goes on. Stage 2 is made slow enough (~5-10 s
    a fold) for the kill to land in fold 1."""
    raw = {
        **FAULT,
        "name": "trial_kill",
        "cv": {"folds": 2, "seed": 0},
        "pretrain": {"epochs": 3, "patience": 2},
        "stage2": {"epochs": 80, "patience": 80, "lr": 1e-4},
        "resources": {"concurrent_folds": 1},
        "tune": {
            "space": {"stage2.unfreeze_depth": {"choice": ["all"]}},
            "num_samples": 1,
        },
    }
    config, out = write_config(tmp_path, raw), tmp_path / "tune"

    def in_fold_1() -> bool:
        return any("fold 1 stage2 ep 3 " in p.read_text() for p in out.glob("trials/*/run.log"))

    tag = f"trial-kill-{os.getpid()}"
    returncode, output = kill_mid_run("tune", config, out, tag, in_fold_1, victim, "fold 1")
    assert returncode == 0, output
    text = next(out.glob("trials/*/run.log")).read_text()
    assert text.count("fold 0 done in") == 1  # trained once, before the kill
    assert ("fold 0 done earlier (reused)" in text) is restarted  # by the restarted trial
    assert text.count("fold 1 start") == 2  # begun again after the kill ...
    assert text.count("fold 1 done in") == 1  # ... and finished once
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 1 and trials["status"].tolist() == ["complete"]
    check_run_folder(out / "best")
