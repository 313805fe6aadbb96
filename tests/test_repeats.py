"""Repeated CV (cv.repeats) and leave-one-site-out folds (cv.split_by).

Each (repeat, fold) is an independent unit of work: its own seeds (repeat 0 keeps the
unrepeated run's folds and seeds), checkpoints, resume; every repeat is patient-grouped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from raycv.cli import main
from raycv.config import ConfigError
from raycv.data import write_dataset
from raycv.errors import DataError
from raycv.experiment import prepare
from raycv.fold import run_fold
from tests.conftest import FAULT, TINY, run_quietly, tiny_config, write_config
from tests.contract import check_run_folder
from tests.processes import kill_all, log_text, start_cli, wait_for
from tests.test_science import assert_patient_grouped, assert_same_result


@pytest.fixture(scope="module")
def repeated():
    return prepare(tiny_config("cv.repeats=3"))


def test_repeats_are_different_patient_grouped_splits_and_repeat_0_is_the_unrepeated_one(
    tiny, repeated
):
    _, single = tiny
    assert repeated.fold_of.shape == (3, len(repeated.dataset))
    assert_patient_grouped(repeated.plans, repeated.fold_of, repeated.dataset.patient_id)
    np.testing.assert_array_equal(repeated.fold_of[0], single.fold_of[0])
    assert not np.array_equal(repeated.fold_of[1], repeated.fold_of[0])
    assert not np.array_equal(repeated.fold_of[2], repeated.fold_of[1])
    assert [(p.repeat, p.fold) for p in repeated.plans] == [
        (r, k) for r in range(3) for k in range(3)
    ]
    assert [p.unit for p in repeated.plans[:4]] == ["fold0", "fold1", "fold2", "r1-fold0"]
    # repeat 0's units are the unrepeated run's, seeds included: the same fold results
    for mine, theirs in zip(repeated.plans[:3], single.plans, strict=True):
        np.testing.assert_array_equal(mine.inner_val, theirs.inner_val)
    assert_same_result(
        run_fold(repeated.dataset, repeated.plans[0], repeated.config),
        run_fold(single.dataset, single.plans[0], single.config),
    )
    # another repeat seeds its inner split (and every phase) from (cv.seed, repeat)
    assert not np.array_equal(repeated.plans[3].inner_val, repeated.plans[0].inner_val)


def test_a_repeated_run_writes_every_unit_as_the_contract_says(sequential_run):
    # the session's sequential run of this config: test_ray_run compares Ray's with it
    out = sequential_run({**TINY, "cv": {"folds": 2, "repeats": 2, "seed": 0}})
    summary = check_run_folder(out)  # (repeat, fold) kappas, pooled = mean over repeats
    assert summary["repeats"] == 2 and len(summary["models"]["fusion"]["kappa_per_fold"]) == 4
    assert {p.name for p in (out / "checkpoints").iterdir()} == {
        "fold0", "fold1", "r1-fold0", "r1-fold1"
    }  # fmt: skip
    predictions = pd.read_csv(out / "predictions.csv", dtype={"sample_id": str})
    assert (predictions.groupby("sample_id")["repeat"].nunique() == 2).all()
    # folds.csv, repeat column included, is a cv.folds_file that reproduces the folds
    again = prepare(tiny_config("cv.folds=2", f"cv.folds_file={out / 'folds.csv'}"))
    assert again.config.cv.repeats == 2
    written = pd.read_csv(out / "folds.csv", dtype={"sample_id": str})
    for r in range(2):
        part = written[written["repeat"] == r].set_index("sample_id").loc[again.dataset.sample_id]
        np.testing.assert_array_equal(again.fold_of[r], part["fold"])


@pytest.mark.slow
def test_an_interrupted_repeated_run_resumes_to_the_uninterrupted_predictions(tmp_path):
    raw = {**FAULT, "cv": {"folds": 2, "repeats": 2, "seed": 0}}
    config = write_config(tmp_path, raw)
    reference, out = tmp_path / "reference", tmp_path / "resumed"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(["run", str(config), "--output", str(reference), "--executor", "sequential"]) == 0
        )
    tag = f"repeat-kill-{os.getpid()}"
    proc = start_cli("run", config, out, tag, "--executor", "sequential")

    def finished():
        return sorted(p.parent.name for p in (out / "checkpoints").glob("*/result.pt"))

    try:
        done = wait_for(
            lambda: len(finished()) >= 2 and finished(), 400, "two finished units", proc
        )
    finally:
        kill_all(tag, proc)  # mid-run: the third unit is training
    assert len(done) < 4, "every unit finished before the kill; the test needs slower folds"
    stamps = {u: (out / "checkpoints" / u / "result.pt").stat().st_mtime_ns for u in done}
    again = start_cli("run", config, out, tag, "--executor", "sequential", "--resume")
    try:
        output, _ = again.communicate(timeout=400)
    finally:
        kill_all(tag, again)
    assert again.returncode == 0, output
    for unit, stamp in stamps.items():  # finished units were reused, not trained again
        assert (out / "checkpoints" / unit / "result.pt").stat().st_mtime_ns == stamp
    assert "done earlier (reused)" in log_text(out)
    check_run_folder(out)
    mine = pd.read_csv(out / "predictions.csv", dtype={"sample_id": str})
    theirs = pd.read_csv(reference / "predictions.csv", dtype={"sample_id": str})
    pd.testing.assert_frame_equal(mine, theirs)


# -- leave one site out ----------------------------------------------------------------------


def with_sites(root, sites_of_patient) -> str:
    """The tiny cohort on disk with a `site` column given per patient."""
    folder = root / "cohort"
    write_dataset(folder, 36, 3, 16)
    meta = pd.read_csv(folder / "metadata.csv", dtype=str)
    meta["site"] = [sites_of_patient(p) for p in meta["patient_id"]]
    meta.to_csv(folder / "metadata.csv", index=False)
    return str(folder)


def site_config(path, *overrides):
    return tiny_config(f"data.path={path}", "cv.split_by=site", *overrides)


def test_leave_one_site_out_makes_one_outer_fold_per_site(tmp_path):
    path = with_sites(tmp_path, lambda p: ["north", "south", "west"][int(p[1:]) % 3])
    prepared = prepare(site_config(path))
    site = prepared.dataset.features["site"].to_numpy()
    assert prepared.config.cv.folds == 3 and prepared.fold_of.shape[0] == 1
    for plan in prepared.plans:  # fold k holds exactly the k-th site (sorted)
        assert set(site[plan.test]) == {["north", "south", "west"][plan.fold]}
        assert not set(site[plan.train]) & set(site[plan.test])
    assert_patient_grouped(prepared.plans, prepared.fold_of, prepared.dataset.patient_id)
    assert prepare(site_config(path, "cv.folds=3")).config.cv.folds == 3


def test_every_split_by_refusal_names_the_column(tmp_path):
    varying = with_sites(tmp_path / "a", lambda p: "x")
    meta = pd.read_csv(f"{varying}/metadata.csv", dtype=str)
    first = meta["patient_id"].iloc[0]
    meta.loc[meta.index[meta["patient_id"] == first][0], "site"] = "y"
    meta.to_csv(f"{varying}/metadata.csv", index=False)
    with pytest.raises(DataError, match=rf"cv.split_by='site' varies within patient '{first}'"):
        prepare(site_config(varying))
    one = with_sites(tmp_path / "b", lambda p: "only")
    with pytest.raises(DataError, match=r"cv.split_by='site' has one value"):
        prepare(site_config(one))
    two = with_sites(tmp_path / "c", lambda p: "ab"[int(p[1:]) % 2])
    with pytest.raises(DataError, match=r"cv.folds=3 with cv.split_by='site', which has 2 values"):
        prepare(site_config(two, "cv.folds=3"))
    with pytest.raises(DataError, match=r"cv.split_by='ward' is not a column of the metadata"):
        prepare(tiny_config(f"data.path={two}", "cv.split_by=ward"))
    with pytest.raises(
        ConfigError, match=r"cv.repeats=2 is not allowed: expected 1 with cv.split_by"
    ):
        tiny_config("cv.split_by=site", "cv.repeats=2")


def test_the_split_column_need_not_be_a_feature(tmp_path):
    """Leave one site out with the site left out of the features (its held-out value is
    never seen in training): the folds are the sites' all the same."""
    path = with_sites(tmp_path, lambda p: ["north", "south", "west"][int(p[1:]) % 3])
    with_feature = prepare(site_config(path))
    without = prepare(site_config(path, "data.features=[age,sex]"))
    assert list(without.dataset.features.columns) == ["age", "sex"]
    np.testing.assert_array_equal(without.fold_of, with_feature.fold_of)
    assert without.sites == with_feature.sites == ["north", "south", "west"]


def test_a_leave_one_site_out_run_names_its_sites(tmp_path):
    path = with_sites(tmp_path, lambda p: ["north", "south"][int(p[1:]) % 2])
    raw = {**TINY, "data": {**TINY["data"], "path": path}, "cv": {"split_by": "site"}}
    out = run_quietly(tmp_path, raw)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split_by"] == "site" and summary["sites"] == ["north", "south"]
    assert yaml.safe_load((out / "config.yaml").read_text())["cv"]["folds"] == 2
    check_run_folder(out)


def test_a_run_writes_the_reviewer_statistics(tmp_path):
    """summary.json gets calibration, corrected comparisons over the (repeat, fold) units
    and report.subgroups; an unknown subgroup column is refused before anything runs."""
    raw = {**TINY, "cv": {"folds": 2, "repeats": 2, "seed": 0}, "report": {"subgroups": ["sex"]}}
    out = run_quietly(tmp_path, raw)
    summary = json.loads((out / "summary.json").read_text())
    assert {"brier", "ece"} <= set(summary["models"]["fusion"])
    assert {c["baseline"] for c in summary["comparisons"]} == {
        "metadata", "thermal_map", "fusion_stage1"
    }  # fmt: skip
    assert all(c["df"] == 3 for c in summary["comparisons"])  # J = 2 repeats x 2 folds
    assert set(summary["subgroups"]["sex"]) == {"female", "male"}
    bad = write_config(tmp_path, {**TINY, "report": {"subgroups": ["agee"]}}, "bad.yaml")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["run", str(bad), "--output", str(tmp_path / "b")]) == 2
    assert "agee" in err.getvalue() and not (tmp_path / "b").exists()
