"""The reviewer's statistics, each against an independent computation: the corrected
resampled t-test against scipy.stats, Brier and ECE against hand-made probabilities (bin
edges included), subgroup kappas against scikit-learn; the subgroup refusals by name."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from raycv.config import ConfigError
from raycv.data import load_table
from raycv.statistics import with_statistics
from raycv.statistics.calibration import (
    brier,
    calibration,
    confidence_bins,
    ece,
    model_rows,
    reliability,
)
from raycv.statistics.corrected import (
    comparison_pairs,
    comparisons,
    corrected_t_test,
    unit_differences,
)
from raycv.statistics.subgroups import MISSING, group_labels, subgroup_scores
from raycv.subgroup_data import check_subgroups, subgroup_table
from raycv.summary import ModelSummary, RunSummary
from tests.conftest import tiny_config

CLASSES = ["I", "P", "R"]
MODELS = ["metadata", "thermal_map", "fusion_stage1", "fusion"]


def predictions_table(n=90, folds=3, repeats=1, seed=0, with_repeat_column=True):
    """A predictions.csv-shaped table: 2 visits per patient, patients dealt to folds per
    repeat, random probabilities per model (pred = argmax), labels loosely agreeing."""
    rng = np.random.default_rng(seed)
    label = rng.choice(CLASSES, n // 2).repeat(2)
    frames = []
    for r in range(repeats):
        fold_of_patient = rng.permutation(np.arange(n // 2) % folds)
        frame = {
            "sample_id": [f"s{i}" for i in range(n)],
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "repeat": r,
            "fold": fold_of_patient.repeat(2),
            "label": label,
        }
        truth = np.eye(3)[[CLASSES.index(c) for c in label]]
        for m in MODELS:
            probs = rng.dirichlet([1, 1, 1], n) + rng.uniform(0, 1.5) * truth
            probs /= probs.sum(1, keepdims=True)
            frame[f"pred_{m}"] = np.asarray(CLASSES, dtype=object)[probs.argmax(1)]
            for c, name in enumerate(CLASSES):
                frame[f"prob_{m}_{name}"] = probs[:, c]
        frames.append(pd.DataFrame(frame))
    table = pd.concat(frames, ignore_index=True)
    return table if with_repeat_column else table.drop(columns="repeat")


def mask(table, model, rows):
    """Leave `model` without a prediction on `rows` (data.missing_images: mask)."""
    table = table.copy()
    table.loc[rows, f"pred_{model}"] = None
    table.loc[rows, [f"prob_{model}_{c}" for c in CLASSES]] = np.nan
    return table


# -- the corrected resampled t-test ------------------------------------------------------


def test_corrected_t_test_is_scipys_student_t_with_the_inflated_variance():
    d = np.array([0.04, 0.11, -0.02, 0.07, 0.05, 0.09])
    ratio = 0.5
    test = corrected_t_test(d, ratio)
    j = len(d)
    se = math.sqrt((1 / j + ratio) * np.var(d, ddof=1))
    t = d.mean() / se
    dist = stats.t(df=j - 1)
    assert test.df == j - 1 and test.units == j
    assert test.t == pytest.approx(t, rel=1e-12)
    assert test.p_value == pytest.approx(2 * dist.sf(abs(t)), rel=1e-12)
    low, high = stats.t.interval(0.95, j - 1, loc=d.mean(), scale=se)
    assert test.ci95 == pytest.approx((low, high), rel=1e-12)
    assert test.mean_difference == pytest.approx(d.mean())


def test_without_the_correction_term_it_is_the_one_sample_t_test():
    d = np.array([0.04, 0.11, -0.02, 0.07, 0.05])
    test = corrected_t_test(d, 0.0)
    plain = stats.ttest_1samp(d, 0.0)
    assert test.t == pytest.approx(plain.statistic, rel=1e-12)
    assert test.p_value == pytest.approx(plain.pvalue, rel=1e-12)
    ci = plain.confidence_interval(0.95)
    assert test.ci95 == pytest.approx((ci.low, ci.high), rel=1e-12)
    # and the correction only ever widens it
    corrected = corrected_t_test(d, 0.5)
    assert corrected.p_value > test.p_value
    assert corrected.ci95[1] - corrected.ci95[0] > ci.high - ci.low


def test_no_spread_means_no_t_p_or_interval_not_an_infinite_one():
    test = corrected_t_test([0.1, 0.1, 0.1], 0.5)
    assert test.mean_difference == pytest.approx(0.1)
    assert (test.t, test.p_value, test.ci95, test.df) == (None, None, None, 2)
    single = corrected_t_test([0.3], 0.5)
    assert single.t is None and single.ci95 is None and single.df == 0


def test_unit_differences_are_sklearn_kappas_per_repeat_and_fold():
    table = predictions_table(repeats=2, folds=3)
    d, ratios = unit_differences(table, "fusion", "metadata", CLASSES, "quadratic")
    expected, expected_ratio = [], []
    for (_, _), part in table.groupby(["repeat", "fold"], sort=True):
        k = [
            cohen_kappa_score(part["label"], part[f"pred_{m}"], weights="quadratic", labels=CLASSES)
            for m in ("fusion", "metadata")
        ]
        expected.append(k[0] - k[1])
        expected_ratio.append(len(part) / (len(table) / 2 - len(part)))  # others of its repeat
    np.testing.assert_allclose(d, expected, atol=1e-12)
    np.testing.assert_allclose(ratios, expected_ratio)
    assert len(d) == 6  # J = repeats x folds


def test_a_table_without_a_repeat_column_is_repeat_zero():
    with_column = predictions_table()
    without = with_column.drop(columns="repeat")
    assert comparisons(without, MODELS, CLASSES, "quadratic") == comparisons(
        with_column, MODELS, CLASSES, "quadratic"
    )


def test_comparisons_are_fusion_against_each_single_model_then_stage_1():
    assert comparison_pairs(MODELS) == [
        ("fusion", "metadata"),
        ("fusion", "thermal_map"),
        ("fusion", "fusion_stage1"),
    ]
    assert comparison_pairs(["metadata"]) == []
    table = predictions_table(repeats=3)
    records = comparisons(table, MODELS, CLASSES, "linear")
    assert [r["baseline"] for r in records] == ["metadata", "thermal_map", "fusion_stage1"]
    for r in records:
        assert set(r) == {"model", "baseline", "mean_difference", "t", "df", "p_value", "ci95"}
        d, ratios = unit_differences(table, "fusion", r["baseline"], CLASSES, "linear")
        expected = corrected_t_test(d, ratios.mean())
        assert r["df"] == 8 and r["t"] == pytest.approx(expected.t)
        assert r["ci95"] == pytest.approx(list(expected.ci95))


def test_masked_visits_are_compared_on_the_visits_both_models_predict():
    table = mask(predictions_table(), "thermal_map", slice(0, 20))
    d, _ = unit_differences(table, "fusion", "thermal_map", CLASSES, "quadratic")
    both = table[table["pred_thermal_map"].notna()]
    expected = [
        cohen_kappa_score(p["label"], p["pred_fusion"], weights="quadratic", labels=CLASSES)
        - cohen_kappa_score(p["label"], p["pred_thermal_map"], weights="quadratic", labels=CLASSES)
        for _, p in both.groupby("fold", sort=True)
    ]
    np.testing.assert_allclose(d, expected, atol=1e-12)


# -- calibration -------------------------------------------------------------------------


def test_confidence_bins_close_on_the_right_and_bin_zero_holds_zero():
    confidence = np.array([0.0, 0.05, 0.1, 0.1000001, 0.2, 0.3, 0.30000001, 0.95, 1.0])
    assert confidence_bins(confidence).tolist() == [0, 0, 0, 1, 1, 2, 3, 9, 9]
    # every edge k/10 closes bin k-1, exactly as the literal the user would write
    edges = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert confidence_bins(edges).tolist() == list(range(10))


def test_brier_is_the_mean_squared_distance_to_the_true_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]])
    y = np.array([0, 1, 2])
    by_hand = (
        (0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.7**2 + 0.6**2) + (2 * (1 / 3) ** 2 + (2 / 3) ** 2)
    ) / 3
    assert brier(probs, y) == pytest.approx(by_hand, rel=1e-12)
    assert brier(np.eye(3), np.arange(3)) == 0.0


def test_ece_by_hand_with_confidences_on_the_bin_edges():
    ten = 10  # ten classes: a uniform row has confidence exactly 0.1, which is bin 0
    uniform = np.full(ten, 0.1)
    onehot = np.eye(ten)[3]  # confidence 1.0: bin 9
    sixty = np.array([0.6, 0.4] + [0.0] * 8)  # 0.6 closes bin 5
    probs = np.array([uniform, uniform, onehot, onehot, sixty, sixty, sixty])
    y = np.array([0, 5, 3, 4, 0, 0, 1])
    # bin 0: confidence 0.1, accuracy 1/2 (argmax of a uniform row is class 0)
    # bin 9: confidence 1.0, accuracy 1/2; bin 5: confidence 0.6, accuracy 2/3
    by_hand = 2 / 7 * abs(0.5 - 0.1) + 2 / 7 * abs(0.5 - 1.0) + 3 / 7 * abs(2 / 3 - 0.6)
    assert ece(probs, y) == pytest.approx(by_hand, rel=1e-12)
    bins = reliability(probs, y)
    assert bins.count.tolist() == [2, 0, 0, 0, 0, 3, 0, 0, 0, 2]
    assert bins.confidence[0] == pytest.approx(0.1) and bins.accuracy[9] == 0.5
    assert ece(np.eye(3), np.arange(3)) == 0.0  # confident and right


def test_calibration_leaves_out_rows_a_model_does_not_predict():
    table = mask(predictions_table(), "thermal_map", slice(0, 30))
    out = calibration(table, MODELS, CLASSES)
    kept = table[table["pred_thermal_map"].notna()]
    probs = kept[[f"prob_thermal_map_{c}" for c in CLASSES]].to_numpy()
    y = kept["label"].map(CLASSES.index).to_numpy()
    assert out["thermal_map"]["brier"] == pytest.approx(brier(probs, y))
    assert out["thermal_map"]["ece"] == pytest.approx(ece(probs, y))
    none = mask(table, "metadata", slice(None))
    assert calibration(none, ["metadata"], CLASSES)["metadata"] == {"brier": None, "ece": None}


# -- subgroups ---------------------------------------------------------------------------


def test_numeric_columns_are_cut_into_quartiles_labelled_by_their_ranges():
    values = pd.Series([float(v) for v in range(40, 80)] + [np.nan, np.nan])
    label, order = group_labels(values)
    assert order == ["[40, 49]", "[50, 59]", "[60, 69]", "[70, 79]", MISSING]
    assert label.iloc[0] == "[40, 49]" and label.iloc[39] == "[70, 79]"
    assert (label.iloc[-2:] == MISSING).all()
    few, order = group_labels(pd.Series([0.0, 1.0, 1.0, 0.5]))
    assert order == ["0", "0.5", "1"]  # four or fewer values: one group each
    text, order = group_labels(pd.Series(["male", np.nan, "female", "male"], dtype=object))
    assert order == ["female", "male", MISSING] and text.tolist()[1] == MISSING


def subgroup_metadata(table):
    ids = table["sample_id"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(1)
    age = rng.integers(30, 90, len(ids)).astype(float)
    age[:5] = np.nan
    sex = rng.choice(["female", "male"], len(ids)).astype(object)
    return pd.DataFrame({"age": age, "sex": sex}, index=pd.Index(ids, name="sample_id"))


def test_subgroup_kappas_are_sklearns_over_each_groups_rows():
    table = mask(predictions_table(repeats=2), "thermal_map", slice(0, 10))
    metadata = subgroup_metadata(table)
    out = subgroup_scores(table, metadata, ["age", "sex"], MODELS, CLASSES, "quadratic", 200, 0)
    assert list(out) == ["age", "sex"] and list(out["sex"]) == ["female", "male"]
    assert list(out["age"])[-1] == MISSING and len(out["age"]) == 5
    sex = metadata["sex"].reindex(table["sample_id"]).to_numpy()
    for value in ("female", "male"):
        for m in MODELS:
            rows = table[(sex == value) & table[f"pred_{m}"].notna()]
            score = out["sex"][value][m]
            assert score["n"] == len(rows)  # prediction rows: a visit once per repeat
            expected = cohen_kappa_score(
                rows["label"], rows[f"pred_{m}"], weights="quadratic", labels=CLASSES
            )
            assert score["kappa"] == pytest.approx(expected, abs=1e-12)
            low, high = score["ci95"]
            assert low <= high
    missing_rows = metadata["age"].reindex(table["sample_id"]).isna().to_numpy()
    assert out["age"][MISSING]["fusion"]["n"] == int(missing_rows.sum())
    assert sum(g["fusion"]["n"] for g in out["age"].values()) == len(table)


def test_with_statistics_adds_fields_and_keeps_the_summary():
    table = predictions_table()
    scores = ModelSummary(0.5, 0.1, 0.5, [0.5] * 3, 0.7, 0.6, len(table), None, None)
    summary = RunSummary(
        kappa_weights="quadratic",
        classes=CLASSES,
        models=dict.fromkeys(MODELS, scores),
        folds=[],
        wall_seconds=1.0,
        repeats=1,
        monitor="val_kappa",
    )
    out = with_statistics(summary, table)
    assert list(out.to_json()) == [
        "kappa_weights",
        "classes",
        "models",
        "comparisons",
        "subgroups",
        "subgroups_bootstrap",
        "stage2_kept",
        "wall_seconds",
        "repeats",
        "folds",
        "monitor",
    ]
    assert summary.models["fusion"] == scores and summary.comparisons is None  # as it was
    probs, y = model_rows(table, "fusion", CLASSES)
    assert out.models["fusion"].brier == pytest.approx(brier(probs, y))
    assert out.models["fusion"].ece == pytest.approx(ece(probs, y))
    assert out.models["fusion"].kappa_per_fold == scores.kappa_per_fold
    assert out.subgroups == {} and len(out.comparisons) == 3
    assert out.subgroups_bootstrap == {"resamples": 2000, "seed": 0}


def test_with_statistics_scores_the_subgroups_it_is_handed():
    """The caller reads the metadata table (raycv.subgroup_data): its columns, in order,
    are the subgroups; statistics never loads data."""
    config = tiny_config("report.subgroups=[sex,age]")
    metadata = subgroup_table(config)
    assert list(metadata.columns) == ["sex", "age"]
    table = predictions_table(n=len(metadata) // 2 * 2)  # two visits per patient
    table["sample_id"] = list(metadata.index[: len(table)])
    scores = ModelSummary(0.5, 0.1, 0.5, [0.5] * 3, 0.7, 0.6, len(table), None, None)
    summary = RunSummary(
        "quadratic", CLASSES, dict.fromkeys(MODELS, scores), [], 1.0, 1, "val_kappa"
    )
    out = with_statistics(summary, table, metadata, n_boot=50, seed=1)
    assert list(out.subgroups) == ["sex", "age"]
    expected = subgroup_scores(table, metadata, ["sex", "age"], MODELS, CLASSES, "quadratic", 50, 1)
    assert out.subgroups == expected
    assert out.subgroups_bootstrap == {"resamples": 50, "seed": 1}
    assert subgroup_table(tiny_config()) is None  # no report.subgroups: no data read


def test_an_unknown_subgroup_column_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"\['agee'\].*synthetic cohort.*'age'"):
        check_subgroups(tiny_config("report.subgroups=[age,agee]"))
    with pytest.raises(ConfigError, match="patient_id"):
        check_subgroups(tiny_config("report.subgroups=[patient_id]"))
    with pytest.raises(ConfigError, match="more than once"):
        check_subgroups(tiny_config("report.subgroups=[sex,sex]"))
    check_subgroups(tiny_config("report.subgroups=[age,sex]"))  # known: no error


def test_the_table_only_metadata_is_the_datasets(tiny):
    """load_table reads (or regenerates) the metadata without images: the same values the
    run's forest saw."""
    config, prepared = tiny
    table = load_table(prepared.config)
    features = prepared.dataset.features
    assert list(table.index) == list(prepared.dataset.sample_id)
    pd.testing.assert_frame_equal(
        table[list(features.columns)].reset_index(drop=True), features, check_dtype=True
    )


def test_the_table_of_a_dataset_folder_has_every_column(tmp_path):
    from raycv.data import write_dataset

    write_dataset(tmp_path / "d", 12, 0, 16)
    metadata = tmp_path / "d" / "metadata.csv"
    frame = pd.read_csv(metadata)
    frame["site"] = np.where(np.arange(len(frame)) % 2, "A", "B")
    frame.to_csv(metadata, index=False)
    config = tiny_config(f"data.path={tmp_path / 'd'}", "data.features=[age,sex]")
    table = load_table(config)  # site is no feature of the run, but a subgroup may name it
    assert {"age", "sex", "site", "hba1c"} <= set(table.columns)
    assert table["age"].dtype == np.float64 and table["site"].tolist()[:2] == ["B", "A"]
    check_subgroups(tiny_config(f"data.path={tmp_path / 'd'}", "report.subgroups=[site]"))
    with pytest.raises(ConfigError, match=r"\['sites'\].*metadata.csv"):
        check_subgroups(tiny_config(f"data.path={tmp_path / 'd'}", "report.subgroups=[sites]"))


def test_report_settings_may_change_on_resume(tmp_path):
    from raycv.runfolder import RunFolder

    folder = RunFolder(tmp_path / "run")
    assert folder.claim(tiny_config(), resume=False, overwrite=False) is False
    changed = tiny_config("report.subgroups=[age]")
    assert folder.claim(changed, resume=True, overwrite=False) is True  # not refused
