"""The command line: help, data commands, refusals that write nothing, resume rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raycv.cli import main
from tests.conftest import TINY, write_config
from tests.contract import check_run_folder


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
