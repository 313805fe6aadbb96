"""summary.json as a record: a run writes exactly the file it wrote before the record
(same keys, same order, NaN as null, numpy as Python), the record reads it back whole,
and a summary written by an earlier raycv still reads."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from raycv.data import load_table
from raycv.errors import RaycvError
from raycv.lifecycle import write_results
from raycv.results import FoldResult, model_names, predictions_table, summarize
from raycv.runfolder import RunFolder
from raycv.statistics.calibration import calibration
from raycv.statistics.corrected import comparisons
from raycv.statistics.subgroups import subgroup_scores
from raycv.summary import FoldSummary, ModelSummary, RunSummary, read_summary


def fold_results(prepared, seed: int = 0) -> list[FoldResult]:
    """Hand-made results of every fold: random probabilities, numpy scalars and an
    undefined (NaN) kappa where a fold's results hold them."""
    rng = np.random.default_rng(seed)
    models, n_classes = model_names(prepared.config), len(prepared.config.classes)
    out = []
    for i, plan in enumerate(prepared.plans):
        n = len(plan.test)
        out.append(
            FoldResult(
                fold=plan.fold,
                test_index=plan.test,
                probs={m: rng.dirichlet(np.ones(n_classes), n) for m in models},
                val_kappa={m: np.float64(np.nan if m == "fusion" else 0.1 * i) for m in models},
                stage1_val_score=np.float64(0.3 + i / 7),
                stage2_val_score=None if i == 1 else 0.4 + i / 9,
                stage2_kept=i != 1,
                fusion_weights={"metadata": 0.7, "thermal_map": np.float64(0.3)},
                seconds=12.3456 + i,
                repeat=plan.repeat,
            )
        )
    return out[::-1]  # executors return folds in any order


def old_text(summary: dict) -> str:
    """summary.json's text as the old write_results made it strict JSON: numpy scalars as
    Python values, NaN as null."""
    return json.dumps(summary, indent=2, default=lambda x: x.item()).replace("NaN", "null") + "\n"


def old_summary(prepared, results, wall: float) -> dict:
    """summary.json as write_results and with_statistics built it before RunSummary: a
    dict in the contract's order, the statistics spliced in after "models"."""
    config, models = prepared.config, model_names(prepared.config)
    results = sorted(results, key=lambda r: (r.repeat, r.fold))
    predictions = predictions_table(prepared.dataset, results, models, config.classes)
    weights = config.metrics.kappa_weights
    scores = summarize(predictions, models, config.classes, weights)
    calibrated = calibration(predictions, models, config.classes)
    columns = list(config.report.subgroups)
    groups = subgroup_scores(
        predictions, load_table(config), columns, models, config.classes, weights, 2000, 0
    )
    per_model = {}
    for m, s in scores.items():
        plain = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
        del plain["brier"], plain["ece"]
        f1 = plain.pop("f1_per_class")  # new with the ablation: after what was there
        per_model[m] = {**plain, **calibrated[m], "f1_per_class": f1}
    summary = {
        "kappa_weights": weights,
        "classes": config.classes,
        "models": per_model,
        "comparisons": comparisons(predictions, models, config.classes, weights),
        "subgroups": groups,
        "subgroups_bootstrap": {"resamples": 2000, "seed": 0},
        "stage2_kept": [r.stage2_kept for r in results],
        "wall_seconds": round(wall, 2),
        "repeats": config.cv.repeats,
        "folds": [
            {
                "repeat": r.repeat,
                "fold": r.fold,
                "n_test": len(r.test_index),
                "val_kappa": r.val_kappa,
                "stage1_val_score": r.stage1_val_score,
                "stage2_val_score": r.stage2_val_score,
                "stage2_kept": r.stage2_kept,
                "fusion_weights": r.fusion_weights,
                "seconds": round(r.seconds, 2),
            }
            for r in results
        ],
        "monitor": config.early_stopping.monitor,
    }
    return summary


@pytest.fixture(scope="module")
def prepared(tiny):
    """The tiny experiment, with a subgroup column so that every statistic is written."""
    _, prepared = tiny
    report = dataclasses.replace(prepared.config.report, subgroups=["sex"])
    return dataclasses.replace(prepared, config=dataclasses.replace(prepared.config, report=report))


def test_a_run_writes_summary_json_byte_for_byte_as_before(prepared, tmp_path):
    results = fold_results(prepared)
    (tmp_path / "run").mkdir()
    summary = write_results(prepared, RunFolder(tmp_path / "run"), results, wall=73.4567)
    written = (tmp_path / "run" / "summary.json").read_text()
    expected = old_text(old_summary(prepared, results, 73.4567))
    assert written == expected
    assert json.loads(written)["folds"][0]["val_kappa"]["fusion"] is None  # NaN became null
    assert summary.to_json() == json.loads(expected)  # the record the run hands back is the file


def test_the_record_reads_summary_json_back_whole(prepared, tmp_path):
    (tmp_path / "run").mkdir()
    write_results(prepared, RunFolder(tmp_path / "run"), fold_results(prepared, 1), wall=5.0)
    path = tmp_path / "run" / "summary.json"
    summary = read_summary(path)
    assert json.dumps(summary.to_json(), indent=2) + "\n" == path.read_text()
    assert RunSummary.from_json(summary.to_json()) == summary
    assert list(summary.models) == model_names(prepared.config)
    assert summary.stage2_kept == [True, False, True]  # (repeat, fold) order, from the folds
    assert summary.models["fusion"].kappa_pooled is not None
    assert list(summary.subgroups) == ["sex"] and summary.split_by is None


def test_leave_one_site_out_keys_come_last_and_only_when_set():
    model = ModelSummary(0.5, 0.1, 0.4, [0.5, None], 0.6, 0.5, 10, 0.3, np.float64(0.05))
    fold = FoldSummary(0, 1, 5, {"fusion": np.nan}, 0.5, None, False, {"fusion": 1.0}, 2.5)
    summary = RunSummary("linear", ["a", "b"], {"fusion": model}, [fold], 3.0, 1, "val_loss")
    plain = summary.to_json()
    assert "split_by" not in plain and "sites" not in plain and "comparisons" not in plain
    assert type(plain["models"]["fusion"]["ece"]) is float  # numpy scalars -> Python
    assert plain["folds"][0]["val_kappa"] == {"fusion": None}
    sited = dataclasses.replace(summary, split_by="site", sites=["north", "south"])
    assert list(sited.to_json())[-3:] == ["monitor", "split_by", "sites"]
    assert RunSummary.from_json(sited.to_json()).sites == ["north", "south"]


def test_a_summary_written_before_repeats_and_statistics_still_reads():
    earlier = {
        "kappa_weights": "quadratic",
        "classes": ["I", "P", "R"],
        "models": {
            "metadata": {
                "kappa_mean": 0.4,
                "kappa_std": 0.1,
                "kappa_pooled": 0.41,
                "kappa_per_fold": [0.3, 0.5],
                "accuracy_mean": 0.6,
                "macro_f1_mean": 0.55,
            }
        },
        "stage2_kept": [None, None],
        "wall_seconds": 9.5,
        "folds": [
            {
                "fold": k,
                "n_test": 10,
                "val_kappa": {"metadata": 0.2},
                "stage1_val_score": None,
                "stage2_val_score": None,
                "stage2_kept": None,
                "fusion_weights": {},
                "seconds": 1.0,
            }
            for k in (0, 1)
        ],
        "monitor": "val_kappa",
    }
    summary = RunSummary.from_json(earlier)
    assert summary.repeats == 1 and [f.repeat for f in summary.folds] == [0, 0]
    assert summary.models["metadata"].n_predicted is None
    assert summary.models["metadata"].brier is None and summary.subgroups is None
    assert summary.stage2_kept == [None, None]


def test_a_summary_with_unknown_or_missing_keys_is_refused_by_name():
    model = ModelSummary(0.5, 0.1, 0.4, [0.5], 0.6, 0.5, 10, None, None)
    plain = RunSummary("none", ["a", "b"], {"m": model}, [], 1.0, 1, "val_kappa").to_json()
    with pytest.raises(
        RaycvError, match=r"x/summary.json: a RunSummary with unknown keys \['f1'\]"
    ):
        RunSummary.from_json({**plain, "f1": 1}, "x/summary.json")
    del plain["models"]["m"]["kappa_std"]
    with pytest.raises(RaycvError, match=r"ModelSummary with no \['kappa_std'\]"):
        RunSummary.from_json(plain)
    with pytest.raises(RaycvError, match="has no 'models'"):
        RunSummary.from_json({"best": {}, "nested": {}})
