"""`raycv ablate`: every combination of modalities on the same folds, shared phases once.

The checks: which combinations a config asks for and every refusal; a combination's
folder is an ordinary run folder that `raycv run` of its config.yaml reproduces; a
branch shared by several combinations has byte-identical probabilities in each; the
comparisons and Holm's adjustment recomputed with scipy and by hand; the nested estimate
by hand; Ray equals sequential; a killed ablation resumed with --resume gives the same
files without computing a finished phase or combination again.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from raycv.ablation import COMBOS, ablation_summary
from raycv.cli import main
from raycv.combinations import Combination, combination_config, combinations, reference
from raycv.config import ConfigError
from raycv.data import write_dataset
from raycv.orchestration.ablate import check_ablation
from raycv.prediction import predict
from raycv.runfolder import RunFolder
from raycv.statistics.holm import holm
from raycv.statistics.nested import nested_estimate
from tests.conftest import FAULT, TINY, tiny_config, write_config
from tests.contract import check_run_folder
from tests.processes import kill_all, log_text, start_cli, wait_for

THREE = ["metadata", "thermal_map", "depth_map"]
ABLATION = {**TINY, "name": "abl", "data": {**TINY["data"], "modalities": THREE}}
ALL = [
    "metadata",
    "thermal_map",
    "depth_map",
    "metadata+thermal_map",
    "metadata+depth_map",
    "thermal_map+depth_map",
    "metadata+thermal_map+depth_map",
]


def config_of(*overrides: str):
    return tiny_config(*overrides, data={**TINY["data"], "modalities": THREE})


def prepare_config():
    """The config as prepare() leaves it: the default fusion weights spelled out."""
    config = config_of()
    config.fusion.weights = config.fusion_weights()
    return config


# -- which combinations --------------------------------------------------------------------


def test_all_combinations_are_every_non_empty_subset_named_in_modality_order():
    combos = combinations(config_of())
    assert [c.name for c in combos] == ALL
    assert reference(config_of(), combos).name == "metadata"
    picked = combinations(config_of("ablation.combinations=[[thermal_map,metadata],[depth_map]]"))
    assert [c.name for c in picked] == ["metadata+thermal_map", "depth_map"]  # data order
    required = combinations(config_of("ablation.require=[metadata]"))
    assert [c.name for c in required] == [n for n in ALL if n.startswith("metadata")]
    no_metadata = tiny_config(data={**TINY["data"], "modalities": ["thermal_map", "depth_map"]})
    assert reference(no_metadata, combinations(no_metadata)).name == "thermal_map"
    by_list = config_of("ablation.reference=[thermal_map,metadata]")
    assert reference(by_list, combinations(by_list)).name == "metadata+thermal_map"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["ablation.combinations=[[metadata],[]]"], "lists an empty combination"),
        (
            ["ablation.combinations=[[metadata,thermal_map],[thermal_map,metadata]]"],
            "lists 'metadata+thermal_map' twice",
        ),
        (["ablation.combinations=[[metadata,photo]]"], "names ['photo'], not in data.modalities"),
        (["ablation.combinations=[[metadata,metadata]]"], "names a modality twice"),
        (["ablation.require=[photo]"], "ablation.require names ['photo']"),
        (
            ["ablation.combinations=[[depth_map]]", "ablation.require=[metadata]"],
            "leaves no combination",
        ),
        (["ablation.reference=depth_map+metadata"], "is not one of the combinations"),
        (
            ["ablation.combinations=[[metadata],[depth_map]]", "ablation.reference=thermal_map"],
            "ablation.reference='thermal_map' is not one of the combinations",
        ),
        (["data.missing_images=drop"], "data.missing_images=drop gives each combination"),
    ],
)
def test_an_unusable_ablation_is_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=_literal(message)):
        check_ablation(config_of(*overrides))


def test_the_cli_refuses_before_reading_any_data_or_writing(tmp_path, capsys):
    config = write_config(tmp_path, {**ABLATION, "ablation": {"reference": "photo"}})
    out = tmp_path / "never"
    assert main(["ablate", str(config), "--output", str(out)]) == 2
    assert "ablation.reference='photo' is not one of" in capsys.readouterr().err
    assert not out.exists()


def test_a_combination_restricts_and_renormalises_the_fusion_weights():
    base = config_of("fusion.weights={metadata: 0.6, thermal_map: 0.3, depth_map: 0.1}")
    given = base.fusion.weights
    pair = combination_config(base, Combination(("metadata", "depth_map")), given)
    assert pair.modalities == ["metadata", "depth_map"]
    assert pair.fusion.weights == pytest.approx({"metadata": 6 / 7, "depth_map": 1 / 7})
    # weights the user left unset: each combination gets the default rule for its own
    # set, as a run of that set would, not the three-way default restricted
    default = combination_config(prepare_config(), Combination(("metadata", "thermal_map")), None)
    assert default.fusion.weights == pytest.approx({"metadata": 0.7, "thermal_map": 0.3})
    alone = combination_config(config_of(), Combination(("thermal_map",)), None)
    assert alone.modalities == ["thermal_map"] and alone.fusion.weights == {"thermal_map": 1.0}


# -- the statistics, by hand ------------------------------------------------------------------


def test_holm_by_hand():
    # sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.5 (x1 = 0.5)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # monotone: a smaller multiplier may not undercut an earlier adjusted p; capped at 1
    assert holm([0.04, 0.045]) == pytest.approx([0.08, 0.08])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([None, 0.2]) == [None, 0.2]  # an undefined p is no test: m = 1


def test_the_nested_estimate_by_hand():
    table = pd.DataFrame(
        {
            "combination": ["metadata", "metadata+thermal_map"],
            "val_kappa_fold0": [0.50, 0.60],  # the fusion wins fold 0's inner validation
            "val_kappa_fold1": [0.70, 0.40],  # metadata wins fold 1's
            "outer_kappa_fold0": [0.55, 0.45],
            "outer_kappa_fold1": [0.35, 0.65],
        }
    )
    est = nested_estimate(table, ["fold0", "fold1"], "combination")
    assert [p["combination"] for p in est["per_fold"]] == ["metadata+thermal_map", "metadata"]
    assert est["kappa_mean"] == pytest.approx((0.45 + 0.35) / 2)  # not the best outer ones


# -- a real ablation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sequential_ablation(tmp_path_factory):
    """(config path, ablation folder, what it printed) of the tiny cohort's 7 combinations."""
    root = tmp_path_factory.mktemp("ablation")
    config = write_config(root, ABLATION, "abl.yaml")
    out = root / "seq"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["ablate", str(config), "--output", str(out), "--executor", "sequential"]) == 0
    return config, out, printed.getvalue()


def predictions(folder, name: str) -> pd.DataFrame:
    path = folder / COMBOS / name / "predictions.csv"
    return pd.read_csv(path, dtype={"sample_id": str, "patient_id": str})


def test_the_ablation_folder_holds_every_combination_and_its_tables(sequential_ablation):
    _, out, printed = sequential_ablation
    for name in ALL:  # each an ordinary run folder
        check_run_folder(out / COMBOS / name)
    table = pd.read_csv(out / "combinations.csv")
    assert list(table["combination"]) == ALL
    assert list(table.columns) == [
        "combination", "n_modalities", "kappa_mean", "kappa_std", "kappa_pooled",
        "kappa_pooled_ci_low", "kappa_pooled_ci_high", "inner_val_kappa_mean",
        "accuracy_mean", "macro_f1_mean", "f1_I", "f1_P", "f1_R", "brier", "ece",
        "n_predicted",
    ]  # fmt: skip
    fusion = json.loads((out / COMBOS / "metadata+thermal_map" / "summary.json").read_text())
    row = table.set_index("combination").loc["metadata+thermal_map"]
    assert row["kappa_mean"] == pytest.approx(fusion["models"]["fusion"]["kappa_mean"])
    assert row["kappa_pooled_ci_low"] <= row["kappa_pooled"] <= row["kappa_pooled_ci_high"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"combinations", "best_by_inner_val", "nested_kappa", "wall_seconds"}
    assert (
        summary["best_by_inner_val"]
        == table.loc[table["inner_val_kappa_mean"].idxmax(), "combination"]
    )
    assert "kappa by combination" in printed and "metadata *" in printed
    provenance = json.loads((out / "provenance.json").read_text())
    assert set(provenance["data"]) == {"layout", "warnings", "dropped"}  # as a run's says
    assert (out / "report.html").is_file() and "Choosing a combination" in (
        out / "report.html"
    ).read_text()


def test_each_combination_without_given_weights_has_the_default_rule_of_its_set(
    sequential_ablation,
):
    _, out, _ = sequential_ablation
    pair = yaml.safe_load((out / COMBOS / "metadata+thermal_map" / "config.yaml").read_text())
    assert pair["fusion"]["weights"] == pytest.approx({"metadata": 0.7, "thermal_map": 0.3})
    images = yaml.safe_load((out / COMBOS / "thermal_map+depth_map" / "config.yaml").read_text())
    assert images["fusion"]["weights"] == pytest.approx({"thermal_map": 0.5, "depth_map": 0.5})


def test_a_branch_shared_by_combinations_is_identical_in_each(sequential_ablation):
    _, out, _ = sequential_ablation
    for branch in ("metadata", "thermal_map", "depth_map"):
        holding = [n for n in ALL if branch in n.split("+")]
        columns = [f"prob_{branch}_{c}" for c in "IPR"]
        first = predictions(out, holding[0])[columns]
        for name in holding[1:]:
            pd.testing.assert_frame_equal(predictions(out, name)[columns], first, check_exact=True)
    log = log_text(out)
    assert log.count("forest ep 0 (fitting)") == 3  # once per fold, not once per combination


def test_a_combination_folder_is_reproduced_by_raycv_run_of_its_config(
    sequential_ablation, tmp_path
):
    _, out, _ = sequential_ablation
    combo = out / COMBOS / "metadata+depth_map"
    again = tmp_path / "again"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(combo / "config.yaml"), "--output", str(again), "--executor", "sequential"])  # fmt: skip
    assert code == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(again / "predictions.csv"), pd.read_csv(combo / "predictions.csv")
    )


def test_the_comparisons_recomputed_with_scipy(sequential_ablation):
    _, out, _ = sequential_ablation
    comparisons = pd.read_csv(out / "comparisons.csv").set_index("combination")
    assert list(comparisons["reference"].unique()) == ["metadata"]
    ref = predictions(out, "metadata")
    for name in ("metadata+thermal_map", "thermal_map"):
        model = "fusion" if "+" in name else name
        other = predictions(out, name)
        d, ratios = [], []
        for _, rows in ref.groupby("fold"):
            mine = other.loc[rows.index]
            k = [
                cohen_kappa_score(rows["label"], p, weights="quadratic", labels=list("IPR"))
                for p in (mine[f"pred_{model}"], rows["pred_metadata"])
            ]
            d.append(k[0] - k[1])
            ratios.append(len(rows) / (len(ref) - len(rows)))
        d = np.array(d)
        variance = (1 / len(d) + np.mean(ratios)) * d.var(ddof=1)
        t = d.mean() / math.sqrt(variance)
        row = comparisons.loc[name]
        assert row["mean_difference"] == pytest.approx(d.mean())
        assert row["t"] == pytest.approx(t)
        assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))
    assert list(comparisons["p_holm"]) == pytest.approx(holm(list(comparisons["p_value"])))


def test_raycv_predict_takes_a_combination_folder(sequential_ablation, tmp_path):
    """A combination's fold 0 models on the cohort written to disk reproduce fold 0's rows
    of its predictions.csv (the tiny cohort: 36 patients, seed 3, 16 px, depth maps)."""
    _, out, _ = sequential_ablation
    combo = out / COMBOS / "metadata+thermal_map"
    data = write_dataset(tmp_path / "cohort", 36, 3, 16, depth_map=True)
    table = predict(combo, data, fold=0).set_index("sample_id")
    written = predictions(out, "metadata+thermal_map").set_index("sample_id")
    test = written[written["fold"] == 0]
    columns = [c for c in test.columns if c.startswith("prob_")]
    np.testing.assert_allclose(
        table.loc[test.index, columns].to_numpy(float), test[columns].to_numpy(float), atol=1e-6
    )


def test_the_tables_are_recomputed_from_the_files_alone(sequential_ablation, tmp_path):
    _, out, _ = sequential_ablation
    before = (out / "combinations.csv").read_text(), (out / "comparisons.csv").read_text()
    combos = combinations(config_of())
    ablation_summary(RunFolder(out), combos, combos[0], ["forest", "pretrain"], wall=0.0)
    assert ((out / "combinations.csv").read_text(), (out / "comparisons.csv").read_text()) == before


# -- Ray, and a killed ablation ------------------------------------------------------------


@pytest.mark.slow
def test_ray_gives_the_sequential_results(sequential_ablation, tmp_path):
    config, seq, _ = sequential_ablation
    ray_out = tmp_path / "ray"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ablate", str(config), "--output", str(ray_out)]) == 0
    for name in ALL:
        np.testing.assert_allclose(
            predictions(ray_out, name).filter(like="prob_").to_numpy(),
            predictions(seq, name).filter(like="prob_").to_numpy(),
            atol=1e-6,
        )


@pytest.mark.slow
def test_a_killed_ablation_resumes_to_the_same_files(tmp_path):
    """Killed while the fusions train (together, after the shared phases): --resume
    reuses the cached shared phases and the fusion folds already finished, and writes the
    files an uninterrupted ablation writes."""
    raw = {**FAULT, "name": "killed", "data": {**FAULT["data"], "modalities": THREE}}
    # fusion folds long enough (~0.7 s each) that the kill lands between the first
    # finished one and the last: with the tiny default stages all six took 0.25 s
    raw["stage1"] = {"epochs": 20, "patience": 20}
    raw["stage2"] = {"epochs": 20, "patience": 20, "lr": 1e-4}
    raw["ablation"] = {"combinations": [["metadata"], ["thermal_map"], ["metadata", "thermal_map"], ["metadata", "depth_map"]]}  # fmt: skip
    config = write_config(tmp_path, raw)
    # apart, so that each has its own cache of shared phases (beside its folder)
    reference_out, out = tmp_path / "a" / "reference", tmp_path / "b" / "killed"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ablate", str(config), "--output", str(reference_out), "--executor", "sequential"]) == 0  # fmt: skip
    tag = f"ablation-kill-{os.getpid()}"
    proc = start_cli("ablate", config, out, tag, "--executor", "sequential")
    fused = out / COMBOS / "metadata+thermal_map" / "checkpoints" / "fold0" / "result.pt"
    try:
        wait_for(fused.exists, 300, "a finished fusion fold", proc)
    finally:
        kill_all(tag, proc)  # mid-ablation: the other fusion folds are training or waiting
    assert not (out / COMBOS / "metadata+depth_map" / "provenance.json").exists(), "killed too late"
    assert not (out / "summary.json").exists()
    stamp = fused.stat().st_mtime_ns
    again = start_cli("ablate", config, out, tag, "--executor", "sequential", "--resume")
    try:
        output, _ = again.communicate(timeout=600)
    finally:
        kill_all(tag, again)
    assert again.returncode == 0, output
    assert fused.stat().st_mtime_ns == stamp  # the finished fusion fold was kept as it was
    log = log_text(out)
    assert "reusing cached forest, pretrain of every fold" in log  # no shared phase again
    for name in ("metadata", "thermal_map", "metadata+thermal_map", "metadata+depth_map"):
        pd.testing.assert_frame_equal(predictions(out, name), predictions(reference_out, name))
    assert (out / "combinations.csv").read_text() == (
        reference_out / "combinations.csv"
    ).read_text()

    # as a kill between two combinations' last writes leaves it: one combination finished
    # (provenance.json, written last), the next not, no summary; --resume keeps the first
    kept = out / COMBOS / "metadata+thermal_map" / "provenance.json"
    stamp = kept.stat().st_mtime_ns
    (out / COMBOS / "metadata+depth_map" / "provenance.json").unlink()
    (out / "summary.json").unlink()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ablate", str(config), "--output", str(out), "--executor", "sequential", "--resume"]) == 0  # fmt: skip
    assert kept.stat().st_mtime_ns == stamp
    assert "combination metadata+thermal_map finished earlier (kept)" in log_text(out)
    pd.testing.assert_frame_equal(
        predictions(out, "metadata+depth_map"), predictions(reference_out, "metadata+depth_map")
    )


def _literal(text: str) -> str:
    import re

    return re.escape(text)
