"""Several images per visit, and visits without one: how the models score a visit.

A visit's image-model probability is the mean of its images' probabilities (in
pretraining's validation scores, both fusion stages and the predictions); with
`data.missing_images: mask` a visit without an image has no prediction from that image
model, and the fusion renormalises its weights over the branches the visit has.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from raycv.checkpoints import PhaseStore
from raycv.data.dataset import Dataset, ImageSet
from raycv.fold import run_fold
from raycv.models.cnn import ImageBranch
from raycv.models.fusion import LateFusion, fit_fusion_weights
from raycv.models.visits import Batch, visit_mean
from raycv.results import model_names, predictions_table, summarize
from raycv.training.loop import Split, _loss
from tests.conftest import tiny_config


def several_images(dataset: Dataset, counts: np.ndarray, seed: int = 0) -> Dataset:
    """The cohort with counts[i] images of visit i: its map plus a little noise each
    (0: none, as data.missing_images: mask keeps such a visit)."""
    rng = np.random.default_rng(seed)
    pixels = dataset.images["thermal_map"].pixels
    per_visit = [
        pixels[i] + rng.normal(0, 0.3, (k, *pixels.shape[1:])).astype(np.float32)
        for i, k in enumerate(counts)
    ]
    images = {"thermal_map": ImageSet.of(per_visit, pixels.shape[-1])}
    return Dataset(
        dataset.sample_id, dataset.patient_id, dataset.y, dataset.classes, dataset.features, images
    )


# -- the pieces -----------------------------------------------------------------------------


def test_visit_mean_averages_each_visits_images_and_flags_visits_without_one():
    probs = torch.tensor([[0.2, 0.8], [0.6, 0.4], [1.0, 0.0], [0.5, 0.5]])
    means, present = visit_mean(probs, torch.tensor([0, 0, 2, 2]), 3)
    torch.testing.assert_close(means, torch.tensor([[0.4, 0.6], [0.0, 0.0], [0.75, 0.25]]))
    assert present.tolist() == [True, False, True]
    same, none = visit_mean(probs, None, 4)  # one image per visit: untouched
    assert same is probs and none is None


def test_a_split_batch_gathers_every_image_of_its_visits():
    pixels = torch.arange(6.0).reshape(6, 1, 1, 1)  # images 0..5
    offsets = torch.tensor([0, 3, 3, 5, 6])  # visit 0: 3 images, 1: none, 2: 2, 3: 1
    split = Split(torch.tensor([0, 1, 2, 0]), {}, {"m": pixels}, {"m": offsets})
    batch = split.batch(torch.tensor([2, 1, 0]))
    assert batch.n == 3
    assert batch.images["m"].flatten().tolist() == [3.0, 4.0, 0.0, 1.0, 2.0]
    assert batch.owner["m"].tolist() == [0, 0, 2, 2, 2]


def test_each_image_is_an_example_weighted_so_every_visit_counts_once():
    pixels = torch.zeros(4, 1, 2, 2)
    split = Split(torch.tensor([2, 0]), {}, {"m": pixels}, {"m": torch.tensor([0, 3, 4])})
    examples = split.examples_of("m")
    assert examples.y.tolist() == [2, 2, 2, 0]
    torch.testing.assert_close(examples.weight, torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0]))
    # the loss: each visit's images share one visit's weight
    logp = torch.log(torch.tensor([[0.1, 0.1, 0.8]] * 3 + [[0.5, 0.25, 0.25]]))
    idx = torch.arange(4)
    loss = _loss(logp, examples.y, None, examples.weight, idx)
    torch.testing.assert_close(
        loss, -(torch.log(torch.tensor(0.8)) + torch.log(torch.tensor(0.5))) / 2
    )
    # one image per visit: the split is its own example set, plain NLL (today's numbers)
    single = Split(torch.tensor([1, 2]), {}, {"m": pixels[:2]}, {"m": None})
    assert single.examples_of("m").weight is None


def test_the_fusion_renormalises_over_the_branches_a_visit_has():
    torch.manual_seed(0)
    branch = ImageBranch([4], 3, 0.0).eval()
    fusion = LateFusion({"thermal_map": branch}, {"metadata": 0.7, "thermal_map": 0.3}).eval()
    meta = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    images = torch.randn(2, 1, 8, 8)  # both images belong to visit 0; visit 1 has none
    batch = Batch(
        2, {"metadata": meta}, {"thermal_map": images}, {"thermal_map": torch.tensor([0, 0])}
    )
    with torch.no_grad():
        fused = fusion(batch).exp()
        image = branch(images).softmax(-1).mean(0)
    torch.testing.assert_close(fused[0], 0.7 * meta[0] + 0.3 * image)
    torch.testing.assert_close(fused[1], meta[1])  # the forest alone, weight 1


def test_learned_weights_leave_a_missing_branch_out_of_that_visits_mixture():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    noise = rng.dirichlet(np.ones(3), 60)
    with_gaps = good.copy()
    with_gaps[::3] = np.nan  # a third of the visits without this modality's image
    weights = fit_fusion_weights({"metadata": noise, "thermal_map": with_gaps}, y)
    assert weights["thermal_map"] > 0.9  # the informative branch wins where it is present
    assert sum(weights.values()) == pytest.approx(1.0)


# -- a fold end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_per_visit(tiny):
    """The tiny cohort with three images of every visit; fold 0 run with a store."""
    _, prepared = tiny
    data = several_images(prepared.dataset, np.full(len(prepared.dataset), 3))
    return data, prepared


def test_a_visit_with_three_images_is_scored_by_their_mean_probability(three_per_visit, tmp_path):
    data, prepared = three_per_visit
    config, plan = prepared.config, prepared.plans[0]
    result = run_fold(data, plan, config, store=PhaseStore(tmp_path))
    state = PhaseStore(tmp_path).load("pretrain_thermal_map")
    branch = ImageBranch(config.image.channels, 3, config.image.dropout)
    branch.load_state_dict(state["state"])
    branch.eval()
    rows, counts = data.images["thermal_map"].rows_of(plan.test, len(data))
    assert (counts == 3).all()
    with torch.no_grad():
        x = torch.from_numpy(data.images["thermal_map"].pixels[rows][:, None].copy())
        per_image = branch(x).softmax(-1).numpy().astype(np.float64)  # (3 n_test, C)
    expected = per_image.reshape(len(plan.test), 3, -1).mean(1)
    np.testing.assert_allclose(result.probs["thermal_map"], expected, atol=1e-6)
    # the three images disagree, so the mean is not just one image's probability
    assert np.abs(per_image.reshape(len(plan.test), 3, -1)[:, 0] - expected).max() > 1e-4
    # predictions.csv keeps one row per visit
    table = predictions_table(data, [result], model_names(config), config.classes)
    assert len(table) == len(plan.test) and table["sample_id"].is_unique


def test_masked_visits_have_no_image_prediction_and_fuse_from_the_forest(tiny):
    _, prepared = tiny
    config = tiny_config("fusion.mode=learned")
    counts = np.tile([2, 0, 1, 3], len(prepared.dataset))[: len(prepared.dataset)]
    data = several_images(prepared.dataset, counts)
    results = [run_fold(data, plan, config) for plan in prepared.plans]
    missing = counts == 0
    for r in results:
        gone = missing[r.test_index]
        assert np.isnan(r.probs["thermal_map"][gone]).all()
        assert not np.isnan(r.probs["thermal_map"][~gone]).any()
        for m in ("metadata", "fusion_stage1", "fusion"):
            assert not np.isnan(r.probs[m]).any(), m
        # no image: the fusion is the forest's probabilities, its weight renormalised to 1
        np.testing.assert_allclose(r.probs["fusion"][gone], r.probs["metadata"][gone], atol=1e-6)
    models = model_names(config)
    table = predictions_table(data, results, models, config.classes)
    assert table.loc[missing, "pred_thermal_map"].isna().all()
    assert table.loc[~missing, "pred_thermal_map"].notna().all()
    summary = summarize(table, models, config.classes, "quadratic")
    assert summary["thermal_map"].n_predicted == int((~missing).sum())
    assert summary["fusion"].n_predicted == len(data)
    # the image model's kappa is over the visits it predicts, recomputable with sklearn
    from sklearn.metrics import cohen_kappa_score

    known = table[table["pred_thermal_map"].notna()]
    expected = cohen_kappa_score(
        known["label"], known["pred_thermal_map"], weights="quadratic", labels=config.classes
    )
    assert summary["thermal_map"].kappa_pooled == pytest.approx(expected)
    assert isinstance(table, pd.DataFrame)


@pytest.mark.parametrize("mode", ["drop", "mask"])
def test_a_run_records_what_missing_images_did(mode, tmp_path):
    """drop: the dropped visits' ids in provenance.json; mask: run.log says how many visits
    an image model cannot predict; both counted in predictions.csv / summary.json."""
    import json

    from tests.conftest import TINY, run_quietly

    raw = {**TINY, "data": {**TINY["data"], "missing_images": mode}}
    raw["data"]["synthetic"] = {**raw["data"]["synthetic"], "missing_images": 0.15}
    out = run_quietly(tmp_path, raw)
    provenance = json.loads((out / "provenance.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv", dtype={"sample_id": str})
    dropped = provenance["data"]["dropped"].get("thermal_map", [])
    log = (out / "run.log").read_text()
    if mode == "drop":
        assert dropped and not set(dropped) & set(predictions["sample_id"])
        assert predictions["pred_thermal_map"].notna().all()
        assert "dropped" in log
    else:
        assert not dropped
        gone = int(predictions["pred_thermal_map"].isna().sum())
        assert gone > 0 and f"{gone} visit(s) without a thermal_map image kept" in log
        assert summary["models"]["thermal_map"]["n_predicted"] == len(predictions) - gone
