"""`raycv predict`: a run's fold models applied to new visits, as one ensemble.

The proof that predict and run compute the same function: with `--fold K` alone, fold
K's own test visits get the probabilities predictions.csv holds (within 1e-6), on a
single-image cohort and on one with several images per visit, two image modalities and
masked visits.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import raycv
from raycv.cli import main
from raycv.data import write_dataset
from raycv.errors import RaycvError
from raycv.prediction import predict
from tests.conftest import TINY

COHORTS = {
    "single": ({}, {}),
    "rich": (
        {"images_per_visit": 3, "missing_images": 0.2, "depth_map": True},
        {"modalities": ["metadata", "thermal_map", "depth_map"], "missing_images": "mask"},
    ),
}


def run_on(root, name: str, written: dict, data: dict, patients: int = 36, **sections):
    """Write the tiny cohort to disk (other options: `written`), run the tiny experiment
    on it sequentially; -> (run folder, dataset folder)."""
    folder = root / f"{name}-data"
    write_dataset(folder, patients, 3, 16, **written)
    raw = {**TINY, "name": name, **sections}
    raw["data"] = {"path": str(folder), "image_size": 16, **data}
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = root / name
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(config), "--output", str(out), "--executor", "sequential"]) == 0
    return out, folder


@pytest.fixture(scope="module", params=list(COHORTS))
def finished(request, tmp_path_factory):
    written, data = COHORTS[request.param]
    # a stage 2 LR high enough that some folds keep stage 2 (its branch then differs)
    stage2 = {**TINY["stage2"], "lr": 3e-2, "unfreeze_depth": "all"}
    return run_on(
        tmp_path_factory.mktemp(request.param), request.param, written, data, stage2=stage2
    )


def prob_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("prob_")]


def test_one_folds_models_reproduce_its_test_predictions(finished):
    run, data = finished
    written = pd.read_csv(run / "predictions.csv", dtype={"sample_id": str}).set_index("sample_id")
    for k in sorted(written["fold"].unique()):
        table = predict(run, data, fold=k).set_index("sample_id")
        test = written[written["fold"] == k]
        mine = table.loc[test.index]
        np.testing.assert_allclose(
            mine[prob_columns(test)].to_numpy(dtype=float),
            test[prob_columns(test)].to_numpy(dtype=float),
            atol=1e-6,
            err_msg=f"fold {k}",
        )  # NaN (no image of a modality) in the same places
        for m in [c.removeprefix("pred_") for c in test.columns if c.startswith("pred_")]:
            pd.testing.assert_series_equal(mine[f"pred_{m}"], test[f"pred_{m}"], check_names=False)
        assert (mine["n_folds"] == 1).all()
        assert (mine.filter(like="fold_sd_").fillna(0) == 0).all().all()


def test_the_ensemble_is_the_mean_of_the_fold_models(finished):
    run, data = finished
    folds = [predict(run, data, fold=k) for k in range(3)]
    table = predict(run, data)
    assert list(table["sample_id"]) == list(folds[0]["sample_id"])
    assert (table["n_folds"] == 3).all() and table["label"].notna().all()
    cols = prob_columns(table)
    stacked = np.stack([f[cols].to_numpy(dtype=float) for f in folds])
    np.testing.assert_allclose(table[cols].to_numpy(dtype=float), stacked.mean(0), atol=1e-12)
    spread = table["fold_sd_fusion"]
    assert (spread >= 0).all() and (spread > 0).any()
    summary = yaml.safe_load((run / "summary.json").read_text())
    if any(summary["stage2_kept"]):
        # a fold that kept stage 2 fuses through its retrained branch, not the pretrained one
        assert not np.allclose(table["prob_fusion_P"], table["prob_fusion_stage1_P"])


def test_new_patients_without_labels_get_predictions_and_class_counts(finished, tmp_path):
    run, data = finished
    unlabelled = tmp_path / "clinic"
    shutil.copytree(data, unlabelled)
    meta = pd.read_csv(unlabelled / "metadata.csv", dtype=str)
    meta.drop(columns=["label"]).assign(ward=["A"] * len(meta)).to_csv(
        unlabelled / "metadata.csv", index=False
    )
    table = predict(run, unlabelled)
    assert "label" not in table.columns and len(table) == len(meta)
    labelled = predict(run, data)
    cols = prob_columns(labelled)
    np.testing.assert_allclose(
        table[cols].to_numpy(dtype=float), labelled[cols].to_numpy(dtype=float)
    )
    out = tmp_path / "out.csv"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["predict", str(run), str(unlabelled), "--output", str(out)]) == 0
    assert "predicted classes" in printed.getvalue() and "fusion" in printed.getvalue()
    pd.testing.assert_frame_equal(
        pd.read_csv(out, dtype={"sample_id": str}), table, check_dtype=False
    )


def test_a_run_folder_on_a_file_uri_predicts_the_same(finished):
    run, data = finished
    np.testing.assert_allclose(
        predict(run.as_uri(), data)[prob_columns(predict(run, data))].to_numpy(dtype=float),
        predict(run, data)[prob_columns(predict(run, data))].to_numpy(dtype=float),
    )


def test_a_missing_feature_column_is_refused_by_name_before_any_model_loads(finished, tmp_path):
    run, data = finished
    lacking = tmp_path / "lacking"
    shutil.copytree(data, lacking)
    meta = pd.read_csv(lacking / "metadata.csv", dtype=str)
    meta.drop(columns=["hba1c"]).to_csv(lacking / "metadata.csv", index=False)
    broken = tmp_path / "run"
    shutil.copytree(run, broken)
    (broken / "checkpoints" / "fold0" / "stage2.pt").write_bytes(b"junk")  # never read
    with pytest.raises(RaycvError, match="hba1c") as info:
        predict(broken, lacking)
    assert "\n" not in str(info.value)


def test_a_checkpoint_that_would_run_code_runs_none_and_is_refused(finished, tmp_path):
    run, data = finished
    tampered = tmp_path / "run"
    shutil.copytree(run, tampered)
    marker = tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save(
        {"format": "raycv-phase/1", "state": RunsCode()}, tampered / "checkpoints/fold1/stage2.pt"
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["predict", str(tampered), str(data), "--output", str(tmp_path / "p.csv")]) == 2
    assert not marker.exists()
    assert err.getvalue().count("\n") == 1 and "fold1/stage2.pt" in err.getvalue()


def test_the_command_names_its_output_after_the_data_and_never_overwrites_silently(
    finished, tmp_path, monkeypatch
):
    run, data = finished
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["predict", str(run), str(data)]) == 0
    out = tmp_path / f"{data.name}-predictions.csv"
    assert out.is_file() and "kappa" in printed.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["predict", str(run), str(data)]) == 2
    assert "--overwrite" in err.getvalue()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["predict", str(run), str(data), "--overwrite", "--fold", "2"]) == 0
    assert (pd.read_csv(out)["n_folds"] == 1).all()


def test_an_unfinished_or_old_run_folder_is_refused_saying_how_to_recompute(finished, tmp_path):
    run, data = finished
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "checkpoints" / "fold2" / "forest.pt").unlink()
    with pytest.raises(RaycvError, match="--resume|--overwrite") as info:
        predict(old, data)
    assert "fold2/forest.pt" in str(info.value)


@pytest.mark.slow
def test_the_ensemble_scores_new_patients_about_as_cv_estimated(tmp_path):
    """The CV estimate is what the ensemble should score on new patients from the same
    population: a fresh cohort (another seed) lands close to it."""
    run, _ = run_on(
        tmp_path,
        "cv",
        {},
        {},
        patients=140,
        metadata={"n_estimators": 100, "inner_folds": 3},
        pretrain={"epochs": 15, "patience": 5},
    )
    fresh = tmp_path / "fresh"
    write_dataset(fresh, 140, 11, 16)  # new patients: another seed
    table = predict(run, fresh)
    summary = yaml.safe_load((run / "summary.json").read_text())
    from sklearn.metrics import cohen_kappa_score

    new = cohen_kappa_score(table["label"], table["pred_fusion"], weights="quadratic")
    assert abs(new - summary["models"]["fusion"]["kappa_pooled"]) < 0.15, new


@pytest.mark.slow
def test_a_searchs_best_trial_predicts_as_its_folds_did(tiny_search, tmp_path):
    """best/ of `raycv tune` is a complete run folder: the phases its trial loaded from the
    shared cache are there too, and each fold reproduces best/predictions.csv."""
    _, tune_dir, _ = tiny_search
    best = tune_dir / "best"
    data = tmp_path / "data"
    write_dataset(data, 36, 3, 16)  # the search's synthetic cohort, on disk
    written = pd.read_csv(best / "predictions.csv", dtype={"sample_id": str}).set_index("sample_id")
    for k in sorted(written["fold"].unique()):
        mine = raycv.predict(best, data, fold=k).set_index("sample_id")
        test = written[written["fold"] == k]
        np.testing.assert_allclose(
            mine.loc[test.index, prob_columns(test)].to_numpy(dtype=float),
            test[prob_columns(test)].to_numpy(dtype=float),
            atol=1e-6,
        )
