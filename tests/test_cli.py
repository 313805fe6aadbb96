"""The command line: help, data commands, refusals that write nothing, resume rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from raycv.cli import main
from tests.conftest import TINY, write_config
from tests.contract import check_run_folder


def torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_seq(config, out, *extra):
    return main(["run", str(config), "--output", str(out), "--executor", "sequential", *extra])


def test_help_says_what_each_command_does(capsys):
    for argv in (
        ["--help"],
        ["run", "--help"],
        ["data", "synth", "--help"],
        ["data", "check", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "cross-validation" in text and "--resume" in text and "--executor" in text


def test_data_synth_then_check_then_run_from_disk(tmp_path, capsys):
    data = tmp_path / "cohort"
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(data),
                "--patients",
                "36",
                "--seed",
                "3",
                "--image-size",
                "16",
            ]
        )
        == 0
    )
    assert (data / "metadata.csv").is_file() and any((data / "thermal_map").iterdir())
    assert main(["data", "check", str(data)]) == 0
    report = capsys.readouterr().out
    assert "36" in report and "I" in report and "thermal_map" in report
    # the on-disk cohort gives exactly what the in-memory one gives
    on_disk = write_config(
        tmp_path, {**TINY, "data": {"path": str(data), "image_size": 16}}, "disk.yaml"
    )
    assert run_seq(on_disk, tmp_path / "disk") == 0
    assert run_seq(write_config(tmp_path), tmp_path / "memory") == 0
    a = json.loads((tmp_path / "disk" / "summary.json").read_text())["models"]
    b = json.loads((tmp_path / "memory" / "summary.json").read_text())["models"]
    assert a == b


def test_sequential_run_writes_the_contract_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_seq(write_config(tmp_path), out) == 0
    check_run_folder(out)
    printed = capsys.readouterr().out
    assert "mean +- std" in printed and "pooled" in printed and "kept" in printed


@pytest.mark.parametrize(
    "override, words",
    [
        ("stage2.lr=fast", "stage2.lr='fast'"),
        ("data.path=/nonexistent/cohort", "/nonexistent/cohort"),
        ("cv.folds=40", "cv.folds=40 needs at least 40 patients"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys, override, words):
    out = tmp_path / "never"
    assert (
        main(
            [
                "run",
                str(write_config(tmp_path)),
                "--output",
                str(out),
                "--set",
                override,
                "--executor",
                "sequential",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("raycv: error:")
    assert not out.exists()


def test_resume_refuses_a_changed_config_and_overwrite_replaces(tmp_path, capsys):
    config, out = write_config(tmp_path), tmp_path / "run"
    assert run_seq(config, out) == 0
    before = (out / "predictions.csv").read_text()
    assert run_seq(config, out, "--resume", "--set", "stage2.lr=1e-7") == 2
    assert "differs in stage2.lr" in capsys.readouterr().err
    assert (out / "predictions.csv").read_text() == before  # nothing lost on refusal
    assert run_seq(config, out, "--resume") == 0  # every fold reused
    assert "done earlier (reused)" in (out / "run.log").read_text()
    assert (out / "predictions.csv").read_text() == before
    assert run_seq(config, out, "--overwrite", "--set", "cv.seed=1") == 0
    assert (out / "predictions.csv").read_text() != before


def test_folds_file_fixes_the_folds(tmp_path):
    first = tmp_path / "first"
    assert run_seq(write_config(tmp_path), first) == 0
    again = tmp_path / "again"
    assert (
        run_seq(
            write_config(tmp_path),
            again,
            "--set",
            f"cv.folds_file={first / 'folds.csv'}",
            "--set",
            "cv.seed=0",
        )
        == 0
    )
    a = np.loadtxt(first / "folds.csv", delimiter=",", skiprows=1, usecols=2)
    b = np.loadtxt(again / "folds.csv", delimiter=",", skiprows=1, usecols=2)
    assert (a == b).all()


def test_a_uri_output_gets_the_whole_run_folder_and_resumes(tmp_path):
    """--output may be any URI pyarrow (and so Ray's storage) accepts; file:// stands in
    for s3:// here. raycv stages locally and uploads after each fold and at the end."""
    target = tmp_path / "bucket" / "run"
    uri = target.as_uri()
    config = write_config(tmp_path)
    assert run_seq(config, uri) == 0
    check_run_folder(target)
    before = (target / "predictions.csv").read_text()
    assert run_seq(config, uri) == 2  # exists: refused without --resume
    assert run_seq(config, uri, "--resume") == 0
    assert "done earlier (reused)" in (target / "run.log").read_text()
    assert (target / "predictions.csv").read_text() == before


def test_a_bad_dataset_is_refused_before_any_output_exists(tmp_path, capsys):
    data = tmp_path / "cohort"
    assert (
        main(["data", "synth", "--out", str(data), "--patients", "36", "--image-size", "16"]) == 0
    )
    victim = sorted((data / "thermal_map").iterdir())[5]
    pixels = np.load(victim)
    pixels[3, 3] = np.nan
    np.save(victim, pixels)
    out = tmp_path / "never"
    config = write_config(tmp_path, {**TINY, "data": {"path": str(data), "image_size": 16}})
    assert run_seq(config, out) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "finite" in err
    assert not out.exists()


# -- answers at once: refusals and help need neither torch, scikit-learn nor ray ---------

HEAVY = ("torch", "ray", "sklearn")


def cli_in_a_fresh_process(*argv: str) -> tuple[int, list[str], str]:
    """(exit code, heavy modules imported, stderr) of `raycv ARGV` in a new interpreter."""
    code = (
        "import sys\n"
        "from raycv.cli import main\n"
        "try:\n"
        f"    rc = main({list(argv)!r})\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(rc, ','.join(heavy), file=sys.__stdout__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    rc, _, heavy = done.stdout.strip().splitlines()[-1].partition(" ")
    return int(rc), [m for m in heavy.split(",") if m], done.stderr


@pytest.mark.parametrize(
    "command, extra, words",
    [
        ("run", ["--set", "stage2.foo=1"], "unknown config key 'stage2.foo'"),
        ("run", ["--set", "stage2.lr=fast"], "stage2.lr='fast'"),
        ("run", ["--set", "pretrain.epochs=0"], "pretrain.epochs=0"),
        ("tune", ["--set", "tune.num_samples=0"], "tune.num_samples=0"),
        ("tune", ["--set", "cv.folds=1"], "cv.folds=1"),
    ],
)
def test_a_refused_config_answers_before_torch_ray_or_sklearn_load(tmp_path, command, extra, words):
    config = write_config(tmp_path)
    rc, heavy, err = cli_in_a_fresh_process(command, str(config), *extra)
    assert rc == 2 and words in err and heavy == [], (rc, heavy, err)


def test_a_missing_config_file_and_every_help_answer_at_once(tmp_path):
    rc, heavy, err = cli_in_a_fresh_process("run", str(tmp_path / "nope.yaml"))
    assert rc == 2 and "nope.yaml" in err and "does not exist" in err and heavy == []
    for argv in (
        ["--help"],
        ["run", "--help"],
        ["tune", "--help"],
        ["submit", "--help"],
        ["report", "--help"],
        ["config", "--help"],
        ["data", "synth", "--help"],
        ["data", "check", "--help"],
    ):
        rc, heavy, err = cli_in_a_fresh_process(*argv)
        assert rc == 0 and heavy == [], (argv, heavy, err)


def test_the_driver_of_a_ray_run_or_a_search_starts_without_torch():
    """Its folds train elsewhere: torch (~1 s on 2 cores) is imported by the processes
    that train, read or write a phase file, or load a pretrained backbone; a search's
    driver, whose folds come back as objects, never does (Tune's default TensorBoard
    logger, which would import it, is off unless tracking.tensorboard asks)."""
    code = (
        "import sys\n"
        "import raycv.experiment, raycv.orchestration.ray_runner, raycv.orchestration.tune\n"
        "from raycv.orchestration.tune_callbacks import tune_callbacks\n"
        "from types import SimpleNamespace as N\n"
        "tune_callbacks('.', N(mlflow=False, tensorboard=False), 'x')\n"
        "print('torch' in sys.modules, 'timm' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr


# -- messages that tell the truth ----------------------------------------------------------


def test_a_run_names_its_report_page_last_and_counts_finished_folds_once(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_seq(write_config(tmp_path), out) == 0
    printed = capsys.readouterr()
    assert printed.out.strip().splitlines()[-1] == f"report: {out}/report.html"
    assert (out / "report.html").is_file()
    # each fold's end is said once; afterwards the status line only counts it
    for k in range(3):
        assert printed.err.count(f"fold {k} done in") == 1, printed.err
    assert "3/3 folds done" in printed.err
    # stage 1 with fixed weights and a frozen branch is one evaluation, and says so
    assert "stage 1 has nothing to train" in printed.err


def test_report_on_a_folder_that_is_not_a_run_folder_says_so(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert main(["report", str(tmp_path / "notes")]) == 2
    err = capsys.readouterr().err
    assert "is not a raycv run folder" in err and "is the run finished" not in err


def test_resume_onto_a_missing_folder_is_refused_naming_it(tmp_path, capsys):
    out = tmp_path / "never-ran"
    assert run_seq(write_config(tmp_path), out, "--resume") == 2
    errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("raycv: error:")]
    assert len(errors) == 1 and str(out) in errors[0] and "does not exist" in errors[0]
    assert not out.exists()


def test_help_texts_match_behaviour(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["submit", str(write_config(tmp_path))])
    assert exit_.value.code == 2 and "--output" in capsys.readouterr().err  # required
    for argv in (["tune", "--help"], ["data", "synth", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    text = capsys.readouterr().out
    tune_help, synth_help = text.split("usage: raycv data synth")
    assert "not a URI" in tune_help and "s3://" not in tune_help
    assert "(default 268)" in synth_help and "(default 64)" in synth_help


# -- raycv config: every key, its value, its meaning ---------------------------------------


def test_config_lists_every_key_with_its_value_and_meaning(tmp_path, capsys):
    from raycv import config as config_mod

    assert main(["config", str(write_config(tmp_path)), "--set", "stage2.lr=1e-7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split(" = ")[0]: line for line in lines}
    every_key = config_mod.flatten(config_mod.Config().to_dict())
    assert set(listed) >= {k for k in every_key if not k.startswith(("fusion.weights.",))}
    assert all("  # " in line for line in lines), [x for x in lines if "  # " not in x]
    assert (
        listed["stage2.lr"].startswith("stage2.lr = 1.0e-07")
        and "learning rate" in (listed["stage2.lr"])
    )
    assert listed["cv.folds"].startswith("cv.folds = 3")  # the file's value
    assert main(["config", "--set", "stage2.nope=1"]) == 2  # refused as `run` refuses it


# -- a GPU asked for where there is none -----------------------------------------------------


@pytest.mark.skipif(torch_sees_cuda(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("executor", ["sequential", "ray"])
def test_a_gpu_request_without_cuda_is_refused_before_any_work(tmp_path, executor):
    out = tmp_path / "never"
    argv = ["run", str(write_config(tmp_path)), "--output", str(out), "--executor", executor]
    rc, heavy, err = cli_in_a_fresh_process(*argv, "--set", "resources.per_fold.gpu=1")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert "resources.per_fold.gpu=1" in lines[0] and "no usable CUDA device" in lines[0]
    assert "ray" not in heavy and not out.exists()  # no Ray was started, nothing written
