"""`raycv report` from a real run folder: the table's numbers against scikit-learn on
predictions.csv, the paired patient bootstrap, the overfitting check, the pages (HTML in
a real headless browser), experiment tracking, and a search's report."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from raycv.cli import main
from raycv.errors import RaycvError
from raycv.report import build_report, try_build_report
from raycv.report.decisive import fusion_verdict, stage2_verdict
from raycv.report.load import load_run
from raycv.report.overfitting import GAP_LIMIT, overfitting_check
from raycv.report.scores import confusions_by_model, model_scores
from raycv.statistics.bootstrap import (
    Interval,
    bootstrap_kappa,
    kappa_from_confusion,
    kappa_weight_matrix,
    paired_difference,
    patient_confusions,
    patient_draws,
)
from tests.conftest import SEARCH, TINY

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["I", "P", "R"]
N_BOOT = 400  # enough to exercise the bootstrap; the CLI's default is 2000


def sk_weights(summary: dict):
    return None if summary["kappa_weights"] == "none" else summary["kappa_weights"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real finished run folder: the tiny cohort, every fold, sequential executor."""
    base = tmp_path_factory.mktemp("report")
    config = base / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = base / "run"
    assert main(["run", str(config), "--output", str(out), "--executor", "sequential"]) == 0
    return out


@pytest.fixture(scope="module")
def report(run_dir) -> list[Path]:
    return build_report(run_dir, n_boot=N_BOOT, seed=0)


def markdown_table(text: str, first_header: str) -> list[list[str]]:
    """Rows (cells) of the Markdown table whose header starts with `first_header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("*") for c in line.strip("|").split(" | ")])
    return rows


def hand_ece(probs: np.ndarray, y: np.ndarray, classes: list[str]) -> float:
    """ECE written out bin by bin: (b/10, (b+1)/10], bin 0 also holding 0."""
    confidence = probs.max(1)
    correct = np.asarray(classes)[probs.argmax(1)] == y
    total = 0.0
    for b in range(10):
        low, high = b / 10, (b + 1) / 10
        rows = (confidence > low) & (confidence <= high) | ((b == 0) & (confidence == 0))
        if rows.any():
            total += rows.mean() * abs(correct[rows].mean() - confidence[rows].mean())
    return total


# -- the comparison table ------------------------------------------------------------


def test_the_table_is_what_scikit_learn_computes_from_predictions_csv(run_dir, report):
    pred = pd.read_csv(run_dir / "predictions.csv", dtype=str)
    summary = json.loads((run_dir / "summary.json").read_text())
    classes, weights = summary["classes"], sk_weights(summary)
    rows = {r[0]: r for r in markdown_table((run_dir / "report.md").read_text(), "model")}
    assert list(rows) == ["metadata", "thermal_map", "fusion_stage1", "fusion"]
    folds = sorted(pred["fold"].unique())
    for model, cells in rows.items():
        y, p = pred["label"], pred[f"pred_{model}"]
        per_fold = [
            cohen_kappa_score(
                y[pred["fold"] == k], p[pred["fold"] == k], weights=weights, labels=classes
            )
            for k in folds
        ]
        pooled = cohen_kappa_score(y, p, weights=weights, labels=classes)
        expected = [f"{k:.3f}" for k in per_fold]
        expected.append(f"{np.mean(per_fold):.3f} ± {np.std(per_fold):.3f}")
        expected.append(f"{pooled:.3f}")
        assert cells[1 : len(folds) + 3] == expected, model
        low, high = (float(v) for v in cells[len(folds) + 3].strip("[]").split(", "))
        assert low <= pooled + 5e-4 and pooled - 5e-4 <= high and low < high
        n = len(classes)
        assert cells[-4 - n] == f"{accuracy_score(y, p):.3f}"
        assert cells[-3 - n] == f"{f1_score(y, p, labels=classes, average='macro'):.3f}"
        per_class = f1_score(y, p, labels=classes, average=None)
        assert cells[-2 - n : -2] == [f"{v:.3f}" for v in per_class]  # F1 of each class
        probs = pred[[f"prob_{model}_{c}" for c in classes]].to_numpy(dtype=float)
        onehot = (y.to_numpy()[:, None] == np.asarray(classes)[None, :]).astype(float)
        assert cells[-2] == f"{np.mean(((probs - onehot) ** 2).sum(1)):.3f}"  # Brier
        assert cells[-1] == f"{hand_ece(probs, y.to_numpy(), classes):.3f}"
        # and the summary.json the run wrote agrees
        np.testing.assert_allclose(summary["models"][model]["kappa_per_fold"], per_fold)


def test_unrounded_scores_match_scikit_learn_and_the_bootstrap_formula(run_dir):
    run = load_run(run_dir)
    draws = patient_draws(len(np.unique(run.patient_id)), 50, seed=1)
    confusions = confusions_by_model(run)
    weights = None if run.kappa_weights == "none" else run.kappa_weights
    for s in model_scores(run, confusions, draws):
        pooled = cohen_kappa_score(run.y, run.preds[s.model], weights=weights, labels=[0, 1, 2])
        # the vectorised formula on the full sample is scikit-learn's kappa
        assert s.kappa_pooled.estimate == pytest.approx(pooled, abs=1e-12)
        assert s.kappa_mean == pytest.approx(run.summary.models[s.model].kappa_mean)


def test_class_order_comes_from_the_run_not_the_alphabet(run_dir, tmp_path):
    """Re-declare the classes as P < I < R: every kappa must follow the declared order."""
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("checkpoints", "report*"))
    summary = json.loads((moved / "summary.json").read_text())
    summary["classes"] = ["P", "I", "R"]
    (moved / "summary.json").write_text(json.dumps(summary))
    build_report(moved, n_boot=50, seed=0)
    pred = pd.read_csv(moved / "predictions.csv", dtype=str)
    rows = {r[0]: r for r in markdown_table((moved / "report.md").read_text(), "model")}
    for model in ("metadata", "fusion"):
        declared = cohen_kappa_score(
            pred["label"], pred[f"pred_{model}"], weights="quadratic", labels=["P", "I", "R"]
        )
        natural = cohen_kappa_score(
            pred["label"], pred[f"pred_{model}"], weights="quadratic", labels=["I", "P", "R"]
        )
        assert abs(declared - natural) > 1e-3  # the order matters for this run's numbers
        assert rows[model][5] == f"{declared:.3f}"


# -- the patient-level bootstrap -----------------------------------------------------


def test_a_model_paired_with_itself_differs_by_exactly_zero(run_dir):
    run = load_run(run_dir)
    draws = patient_draws(len(np.unique(run.patient_id)), 2000, seed=7)
    for conf in confusions_by_model(run).values():
        diff = paired_difference(conf, conf, draws, run.kappa_weights)
        assert diff == Interval(0.0, 0.0, 0.0, diff.n_defined)
        assert diff.n_defined > 1900


@pytest.mark.parametrize("weights", ["none", "linear", "quadratic"])
def test_kappa_from_confusion_is_scikit_learns_kappa(weights):
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 3, 40)
        pred = np.where(rng.random(40) < 0.6, y, rng.integers(0, 3, 40))
        conf = np.zeros((3, 3), int)
        np.add.at(conf, (y, pred), 1)
        ours = kappa_from_confusion(conf, kappa_weight_matrix(3, weights))
        sk = cohen_kappa_score(
            y, pred, labels=[0, 1, 2], weights=None if weights == "none" else weights
        )
        assert ours == pytest.approx(sk, abs=1e-12)
    # one class on both sides: undefined, as in scikit-learn
    assert np.isnan(kappa_from_confusion(np.diag([5, 0, 0]), kappa_weight_matrix(3, weights)))


def test_resamples_draw_whole_patients_with_replacement():
    patient = np.array(["a", "a", "a", "b", "c", "c"])
    y = np.array([0, 1, 2, 0, 1, 1])
    conf = patient_confusions(patient, y, y, 3)
    assert conf.shape == (3, 3, 3) and conf.sum(axis=(1, 2)).tolist() == [3, 1, 2]
    draws = patient_draws(3, 500, seed=0)
    assert (draws.sum(1) == 3).all()  # each resample is as many patients as the cohort
    # a resample's size is the drawn patients' sample counts: patients are never split
    sizes = (draws @ conf.reshape(3, -1)).sum(1)
    assert set(sizes) <= {int(d @ [3, 1, 2]) for d in draws}
    assert len(set(sizes)) > 3
    np.testing.assert_array_equal(draws, patient_draws(3, 500, seed=0))  # seeded


def test_the_interval_resamples_patients_not_samples():
    """Patients whose visits agree with each other: resampling visits as if independent
    would give a narrower interval than resampling patients."""
    rng = np.random.default_rng(3)
    n_patients, visits = 60, 5
    truth = rng.integers(0, 3, n_patients)
    good = rng.random(n_patients) < 0.6  # a patient is predicted well or badly on every visit
    pred = np.where(good, truth, (truth + 1) % 3)
    patient = np.repeat(np.arange(n_patients), visits)
    y, p = np.repeat(truth, visits), np.repeat(pred, visits)
    by_patient = bootstrap_kappa(
        patient_confusions(patient, y, p, 3), patient_draws(n_patients, 2000, 0), "quadratic"
    )
    by_sample = bootstrap_kappa(
        patient_confusions(np.arange(len(y)), y, p, 3), patient_draws(len(y), 2000, 0), "quadratic"
    )
    assert by_patient.estimate == pytest.approx(by_sample.estimate)
    assert (by_patient.high - by_patient.low) > 1.5 * (by_sample.high - by_sample.low)


def test_two_thousand_resamples_of_every_model_take_well_under_a_second():
    rng = np.random.default_rng(0)
    patient = np.repeat(np.arange(268), 3)  # the default cohort's size
    y = rng.integers(0, 3, len(patient))
    confs = [patient_confusions(patient, y, rng.integers(0, 3, len(y)), 3) for _ in range(4)]
    t0 = time.perf_counter()
    draws = patient_draws(268, 2000, seed=0)
    for c in confs:
        bootstrap_kappa(c, draws, "quadratic")
    for c in confs[:-1]:
        paired_difference(confs[-1], c, draws, "quadratic")
    assert time.perf_counter() - t0 < 1.0


def test_verdicts_say_beats_only_when_the_whole_interval_is_above_zero():
    assert fusion_verdict(Interval(0.06, 0.01, 0.11, 2000), "metadata") == (
        "fusion beats metadata-only by 0.06 [0.01, 0.11]"
    )
    assert fusion_verdict(Interval(0.02, -0.01, 0.05, 2000), "metadata").startswith(
        "no evidence that the fusion beats metadata-only"
    )
    assert fusion_verdict(Interval(-0.06, -0.1, -0.02, 2000), "thermal_map") == (
        "thermal_map-only beats the fusion by 0.06 [0.02, 0.10]"
    )
    assert stage2_verdict(Interval(0.0, 0.0, 0.0, 2000), identical=False).startswith(
        "no evidence that stage 2 helped"
    )
    assert stage2_verdict(Interval(0.03, 0.01, 0.05, 2000), identical=False).startswith(
        "stage 2 helped"
    )


def test_the_decisive_lines_are_the_paired_bootstrap_of_the_run(run_dir, report):
    text = (run_dir / "report.md").read_text()
    run = load_run(run_dir)
    draws = patient_draws(len(np.unique(run.patient_id)), N_BOOT, seed=0)
    confusions = confusions_by_model(run)
    scores = {s.model: s.kappa_pooled.estimate for s in model_scores(run, confusions, draws)}
    best = max(["metadata", "thermal_map"], key=scores.get)
    diff = paired_difference(confusions["fusion"], confusions[best], draws, run.kappa_weights)
    assert f"- **{fusion_verdict(diff, best)}**" in text.splitlines()
    kept = sum(run.summary.stage2_kept)
    assert f"stage 2 was kept in {kept} of 3 folds" in text
    assert "stage 2" in markdown_table(text, "difference")[-1][-1]


def test_the_corrected_t_test_beside_the_bootstrap_is_scipys_on_the_fold_kappas(run_dir, report):
    text = (run_dir / "report.md").read_text()
    pred = pd.read_csv(run_dir / "predictions.csv", dtype=str)
    folds = pred["fold"].astype(int)
    rows = {r[0].split(" (")[0]: r for r in markdown_table(text, "difference")}
    for baseline in ("metadata", "thermal_map"):
        d = np.array(
            [
                cohen_kappa_score(p["label"], p["pred_fusion"], weights="quadratic", labels=CLASSES)
                - cohen_kappa_score(
                    p["label"], p[f"pred_{baseline}"], weights="quadratic", labels=CLASSES
                )
                for _, p in pred.groupby(folds, sort=True)
            ]
        )
        ratio = np.mean([(folds == k).sum() / (folds != k).sum() for k in range(3)])
        se = np.sqrt((1 / 3 + ratio) * d.var(ddof=1))
        low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=se)
        p = 2 * stats.t.sf(abs(d.mean() / se), 2)
        cells = rows[f"fusion − {baseline}"]
        assert cells[3] == f"{d.mean():+.3f}"
        assert cells[4] == f"[{low:.3f}, {high:.3f}]"
        assert cells[5] == (f"{p:.3f}" if p >= 0.001 else "< 0.001")
    assert "split" in text and "patients of the same population" in text  # what each answers


def test_the_head_says_what_was_run_and_the_appendix_where_to_find_it(run_dir, report):
    text = (run_dir / "report.md").read_text()
    provenance = json.loads((run_dir / "provenance.json").read_text())
    head = {r[0]: r[1] for r in markdown_table(text, "setting")}
    assert head["outer cross-validation"].startswith("3 folds × 1 repeat, grouped by patient")
    assert head["stage 2"] == "lr 0.0001, unfreeze_depth all, BatchNorm frozen"
    assert head["fusion"] == "fixed weights: metadata 0.70, thermal_map 0.30"
    assert head["epochs (most)"].startswith("pretrain 3 (patience 2); stage1 2")
    assert provenance["dataset_fingerprint"] in head["data"]
    assert f"raycv {provenance['raycv_version']}" in head["software"]
    assert text.index("## What was run") < text.index("## Models compared")
    appendix = {r[0]: r[1] for r in markdown_table(text, "item")}
    for item in ("Partitioning of the data by patient", "How settings were chosen"):
        assert item in appendix
    assert appendix["Calibration"].startswith("Models compared (Brier, ECE)")
    assert appendix["Subgroups (fairness)"] == "Subgroups"


# -- report --set: new report settings, recomputed from the folder -------------------


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_report_set_subgroups_recomputes_them_without_training(run_dir, tmp_path, capsys):
    from raycv.data.synthetic import synthesize

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    checkpoints = _files(copy / "checkpoints")
    predictions = (copy / "predictions.csv").read_bytes()
    argv = ["report", str(copy), "--bootstrap", "100", "--set", "report.subgroups=[age,sex]"]
    assert main(argv) == 0
    assert _files(copy / "checkpoints") == checkpoints  # not a file touched: no training
    assert (copy / "predictions.csv").read_bytes() == predictions
    config = yaml.safe_load((copy / "config.yaml").read_text())
    assert config["report"]["subgroups"] == ["age", "sex"]  # the folder describes itself
    summary = json.loads((copy / "summary.json").read_text())
    assert list(summary["subgroups"]) == ["age", "sex"]
    assert summary["subgroups_bootstrap"] == {"resamples": 100, "seed": 0}
    # kappa per sex, recomputed from the cohort itself and predictions.csv with scikit-learn
    synthetic = TINY["data"]["synthetic"]
    cohort, _ = synthesize(synthetic["patients"], synthetic["seed"], synthetic["image_size"])
    pred = pd.read_csv(copy / "predictions.csv", dtype=str)
    sex = pred["sample_id"].map(cohort.set_index("sample_id")["sex"])
    for value in ("female", "male"):
        part = pred[sex == value]
        for model in ("metadata", "fusion"):
            score = summary["subgroups"]["sex"][value][model]
            expected = cohen_kappa_score(
                part["label"], part[f"pred_{model}"], weights="quadratic", labels=["I", "P", "R"]
            )
            assert score["n"] == len(part)
            assert score["kappa"] == pytest.approx(expected, abs=1e-12)
    assert sum(g["fusion"]["n"] for g in summary["subgroups"]["age"].values()) == len(pred)
    text = (copy / "report.md").read_text()
    assert "## Subgroups" in text and "| sex | rows |" in text
    printed = capsys.readouterr().out.split()
    assert str(copy / "subgroups_age.png") in printed and (copy / "subgroups_sex.png").is_file()
    # the other statistics were not disturbed by the recompute
    before = json.loads((run_dir / "summary.json").read_text())
    assert (
        summary["models"]["fusion"]["kappa_per_fold"]
        == before["models"]["fusion"]["kappa_per_fold"]
    )


def test_report_set_refuses_keys_that_need_training_and_unknown_columns(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "report*"))
    summary = (copy / "summary.json").read_bytes()
    assert main(["report", str(copy), "--set", "stage2.lr=1e-7"]) == 2
    assert "stage2.lr would change what was trained" in capsys.readouterr().err
    assert main(["report", str(copy), "--set", "report.subgroups=[age,agee]"]) == 2
    err = capsys.readouterr().err
    assert "['agee']" in err and "report.subgroups" in err
    assert (copy / "summary.json").read_bytes() == summary  # a refusal changes nothing
    assert not (copy / "report.html").exists()


# -- the overfitting check -----------------------------------------------------------


def test_overfitting_check_takes_the_kept_epoch_and_flags_large_gaps():
    history = pd.DataFrame(
        {
            "fold": [0, 0, 0, 0, 1, 1],
            "phase": ["pretrain", "pretrain", "pretrain", "stage1", "pretrain", "pretrain"],
            "epoch": [0, 1, 2, 0, 0, 1],
            "train_kappa": [0.30, 0.90, 0.95, 0.50, 0.40, 0.45],
            "val_kappa": [0.20, 0.60, 0.55, 0.45, 0.35, 0.30],
            "train_loss": [1.0] * 6,
            "val_loss": [1.0] * 6,
        }
    )
    check = overfitting_check(history, "val_kappa")
    assert check[["fold", "phase", "kept_epoch"]].values.tolist() == [
        [0, "pretrain", 1],
        [0, "stage1", 0],
        [1, "pretrain", 0],
    ]
    assert check["gap"].tolist() == pytest.approx([0.30, 0.05, 0.05])
    assert check["flagged"].tolist() == [True, False, False]


def test_overfitting_rows_of_the_run_match_history_csv(run_dir, report):
    history = pd.read_csv(run_dir / "history.csv")
    rows = markdown_table((run_dir / "report.md").read_text(), "fold")
    assert len(rows) == history.groupby(["fold", "phase"]).ngroups
    for fold, phase, _, kept, train, val, gap, flag in rows:
        phase = phase.split(" ")[0]  # "pretrain (thermal_map)" where history names branches
        curve = history[(history["fold"] == int(fold)) & (history["phase"] == phase)]
        best = curve.loc[curve["val_kappa"].idxmax()]
        assert int(kept) == best["epoch"]
        assert train == f"{best['train_kappa']:.3f}" and val == f"{best['val_kappa']:.3f}"
        assert gap == f"{best['train_kappa'] - best['val_kappa']:+.3f}"
        assert (flag != "") == (best["train_kappa"] - best["val_kappa"] > GAP_LIMIT)


# -- the pages ------------------------------------------------------------------------


def test_report_files_are_written_and_the_html_stands_alone(run_dir, report):
    html, md, *pngs = report
    assert html == run_dir / "report.html" and md == run_dir / "report.md"
    assert [p.name for p in pngs] == [
        "fold_kappas.png",
        "confusion.png",
        "reliability.png",
        "training_curves.png",
        "preview.png",
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    # nothing fetched from anywhere: every image is inline, no script, stylesheet or link
    assert page.count('<img src="data:image/png;base64,') == len(pngs)
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page
    text = md.read_text()
    for png in pngs:
        assert f"]({png.name})" in text
    assert "fusion" in page and "95% CI" in page and "kept in" in page


def test_report_cli_prints_the_files_it_wrote(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "report*"))
    assert main(["report", str(copy), "--bootstrap", "100", "--seed", "3"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [
        str(copy / n)
        for n in (
            "report.html",
            "report.md",
            "fold_kappas.png",
            "confusion.png",
            "reliability.png",
            "training_curves.png",
            "preview.png",
        )
    ]


def test_a_folder_that_is_not_a_finished_run_is_refused_by_name(tmp_path, caplog, monkeypatch):
    with pytest.raises(RaycvError, match="is not a raycv run folder"):
        build_report(tmp_path)
    (tmp_path / "config.yaml").write_text("name: unfinished\n")  # a run that never ended
    with pytest.raises(RaycvError, match="summary.json is missing"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    monkeypatch.setattr(logging.getLogger("raycv"), "propagate", True)  # main turned it off
    assert try_build_report(tmp_path) == []  # the end of `run` only warns
    assert "raycv report" in caplog.text


def test_the_page_renders_in_a_headless_browser(run_dir, report, tmp_path):
    if not shutil.which("chromium"):
        missing = "chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("CI"):  # .ci/run installs it: there, a skip would hide a failure
            pytest.fail(f"{missing}; .ci/run should have installed it")
        pytest.skip(missing)
    shot = tmp_path / "report.png"
    subprocess.run(
        [str(ROOT / "docs" / "screenshot.sh"), str(run_dir), str(shot), "2400"],
        check=True,
        timeout=120,
        capture_output=True,
    )
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert image.shape == (2400, 1280)
    # rendered content, not a blank or error page: dark text and figure pixels throughout
    rows_with_ink = (image < 128).any(axis=1).mean()
    assert rows_with_ink > 0.3


# -- experiment tracking --------------------------------------------------------------


def test_a_run_logs_to_mlflow_with_params_kappas_and_curves(run_dir, tmp_path):
    pytest.importorskip("mlflow", reason="the tracking extra (mlflow) is not installed")
    from mlflow.tracking import MlflowClient

    from raycv.tracking import log_to_mlflow

    uri = (tmp_path / "mlruns").as_uri()
    run_id = log_to_mlflow(run_dir, uri, experiment="report-test")
    logged = MlflowClient(uri).get_run(run_id)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert logged.data.params["stage2.lr"] == str(TINY["stage2"]["lr"])
    assert logged.data.params["data.classes"] == "[I, P, R]"
    assert logged.data.metrics["kappa_pooled/fusion"] == pytest.approx(
        summary["models"]["fusion"]["kappa_pooled"]
    )
    client = MlflowClient(uri)
    per_fold = client.get_metric_history(run_id, "kappa_per_fold/metadata")
    assert [m.value for m in sorted(per_fold, key=lambda m: m.step)] == pytest.approx(
        summary["models"]["metadata"]["kappa_per_fold"]
    )
    history = pd.read_csv(run_dir / "history.csv")
    curve = client.get_metric_history(run_id, "fold0/pretrain_thermal_map/val_kappa")
    assert len(curve) == len(history[(history.fold == 0) & (history.phase == "pretrain")])
    assert "summary.json" in {a.path for a in client.list_artifacts(run_id)}


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of TensorBoard event files: TFRecord frames of Event protos."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list] = {}
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_a_run_logs_tensorboard_event_files(run_dir, tmp_path):
    from raycv.tracking import log_to_tensorboard

    folder = log_to_tensorboard(run_dir, tmp_path / "tb")
    scalars = read_scalars(folder)
    summary = json.loads((run_dir / "summary.json").read_text())
    fusion = sorted(scalars["kappa_per_fold/fusion"])
    assert [v for _, v in fusion] == pytest.approx(summary["models"]["fusion"]["kappa_per_fold"])
    assert scalars["kappa_pooled/metadata"][0][1] == pytest.approx(
        summary["models"]["metadata"]["kappa_pooled"]
    )
    assert "fold2/stage2/train_loss" in scalars


def test_tune_gets_rays_own_logger_callbacks(tmp_path):
    from types import SimpleNamespace

    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    from raycv.orchestration.tune_callbacks import tune_callbacks

    # Tune's per-trial progress.csv and result.json always; TensorBoard only when asked
    kept = [CSVLoggerCallback, JsonLoggerCallback]
    off = SimpleNamespace(mlflow=False, mlflow_uri=None, tensorboard=False)
    assert [type(c) for c in tune_callbacks(tmp_path, off, "search")] == kept
    tb = tune_callbacks(tmp_path, SimpleNamespace(tensorboard=True), "search")
    assert [type(c) for c in tb] == [*kept, TBXLoggerCallback]
    pytest.importorskip("mlflow", reason="the tracking extra (mlflow) is not installed")
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    *_, cb = tune_callbacks(tmp_path, SimpleNamespace(mlflow=True, mlflow_uri=None), "search")
    assert isinstance(cb, MLflowLoggerCallback)
    assert cb.tracking_uri == (tmp_path.resolve() / "mlruns").as_uri()


# -- a search's report ----------------------------------------------------------------


@pytest.mark.slow
def test_a_tune_folder_reports_the_search_and_its_best_trial(tiny_search):
    _, out, _ = tiny_search
    written = build_report(out, n_boot=200, seed=0)
    assert [p.name for p in written] == [
        "report.html",
        "report.md",
        "tune_objective.png",
        "best_fold_kappas.png",
        "best_confusion.png",
        "best_reliability.png",
        "best_training_curves.png",
        "best_preview.png",
    ]
    text = (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert f"nested estimate: outer fusion kappa {summary['nested']['kappa_mean']:.3f}" in text
    assert f"{summary['best']['outer_kappa_mean']:.3f}" in text
    trials = markdown_table(text, "trial")
    assert len(trials) == SEARCH["tune"]["num_samples"]
    # the best trial's tables are those of best/, recomputed from its predictions
    pred = pd.read_csv(out / "best" / "predictions.csv", dtype=str)
    pooled = cohen_kappa_score(
        pred["label"], pred["pred_fusion"], weights="quadratic", labels=["I", "P", "R"]
    )
    fusion = {r[0]: r for r in markdown_table(text, "model")}["fusion"]
    assert fusion[4] == f"{pooled:.3f}"


def test_a_repeated_run_is_scored_per_repeat_and_fold(run_dir, tmp_path):
    """predictions.csv with a repeat column: per-fold kappas in (repeat, fold) order, the
    pooled kappa the mean over repeats of each repeat's, the t-test over every unit."""
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("checkpoints", "report*"))
    pred = pd.read_csv(moved / "predictions.csv", dtype={"sample_id": str, "patient_id": str})
    patients = pred["patient_id"].unique()
    other_folds = dict(zip(patients, np.arange(len(patients))[::-1] % 3, strict=True))
    shuffled = pred.assign(fold=pred["patient_id"].map(other_folds))
    table = pd.concat([pred.assign(repeat=0), shuffled.assign(repeat=1)], ignore_index=True)
    table.to_csv(moved / "predictions.csv", index=False)
    build_report(moved, n_boot=50, seed=0)
    run = load_run(moved)
    assert run.units == [(r, k) for r in (0, 1) for k in range(3)]
    draws = patient_draws(len(patients), 20, seed=0)
    scores = {s.model: s for s in model_scores(run, confusions_by_model(run), draws)}
    for model in ("metadata", "fusion"):
        expected = [
            cohen_kappa_score(p["label"], p[f"pred_{model}"], weights="quadratic", labels=CLASSES)
            for _, p in table.groupby(["repeat", "fold"], sort=True)
        ]
        np.testing.assert_allclose(scores[model].kappa_per_fold, expected, atol=1e-12)
        pooled = np.mean(
            [
                cohen_kappa_score(p["label"], p[f"pred_{model}"], weights="quadratic")
                for _, p in table.groupby("repeat")
            ]
        )
        assert scores[model].kappa_pooled.estimate == pytest.approx(pooled, abs=1e-12)
    text = (moved / "report.md").read_text()
    assert "J = 6 per-fold kappa differences" in text and "r1 f2" in text
