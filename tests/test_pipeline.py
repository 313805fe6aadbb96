"""run_fold end to end on a tiny cohort, and the two-stage mechanics it relies on."""

import numpy as np
import pytest
import torch

from raycv.checkpoints import PhaseStore
from raycv.fold import run_fold
from raycv.models.cnn import ImageBranch, freeze, unfreeze_trailing
from raycv.training.loop import set_train_modes
from tests.conftest import tiny_config


def test_run_fold_returns_every_model_for_every_test_sample(tiny):
    config, prepared = tiny
    plan = prepared.plans[0]
    result = run_fold(prepared.dataset, plan, config)
    assert set(result.probs) == {"metadata", "thermal_map", "fusion_stage1", "fusion"}
    for p in result.probs.values():
        assert p.shape == (len(plan.test), 3)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    phases = {(r["branch"], r["phase"]) for r in result.history}
    assert phases == {("thermal_map", "pretrain"), ("fusion", "stage1"), ("fusion", "stage2")}
    stage1 = [r for r in result.history if r["phase"] == "stage1"]
    # fixed weights and a frozen branch leave nothing to train: one evaluation, said so
    assert len(stage1) == 1 and "nothing trainable" in stage1[0]["note"]
    assert isinstance(result.stage2_kept, bool)
    assert set(result.val_kappa) == set(result.probs)


def test_fusion_mixes_branch_probabilities_with_the_fixed_weights(tiny):
    config, prepared = tiny
    result = run_fold(prepared.dataset, prepared.plans[1], config)
    mixed = 0.7 * result.probs["metadata"] + 0.3 * result.probs["thermal_map"]
    # stage 1 changes nothing, so its fusion is exactly the weighted mixture
    np.testing.assert_allclose(result.probs["fusion_stage1"], mixed, atol=1e-5)


def test_stage2_falls_back_to_stage1_when_it_does_not_help(tiny):
    _, prepared = tiny
    config = tiny_config("stage2.lr=1e-12", "stage2.min_delta=0.5")
    result = run_fold(prepared.dataset, prepared.plans[0], config)
    assert result.stage2_kept is False
    np.testing.assert_allclose(result.probs["fusion"], result.probs["fusion_stage1"], atol=1e-6)


@pytest.mark.parametrize("depth", [1, 2])
def test_stage2_precomputes_frozen_blocks_without_changing_its_numbers(tiny, monkeypatch, depth):
    from raycv.models.fusion import PrecomputedPrefix
    from raycv.training import two_stage

    _, prepared = tiny
    # a learning rate that moves the weights, so a difference would show
    config = tiny_config("stage2.lr=1e-3", f"stage2.unfreeze_depth={depth}")
    used = []
    skip = two_stage.skip_frozen_prefixes

    def spy(*args):
        used.append(out := skip(*args))
        return out

    monkeypatch.setattr(two_stage, "skip_frozen_prefixes", spy)
    cached = run_fold(prepared.dataset, prepared.plans[0], config)
    assert isinstance(used[0][0], PrecomputedPrefix)
    n_blocks = len(config.image.channels)
    assert used[0][0].skip == {"thermal_map": n_blocks - (depth - 1)}
    # the same fold with every epoch running the maps through every block
    monkeypatch.setattr(two_stage, "skip_frozen_prefixes", lambda f, t, v, s: (f, t, v))
    plain = run_fold(prepared.dataset, prepared.plans[0], config)
    np.testing.assert_allclose(cached.probs["fusion"], plain.probs["fusion"], atol=1e-5)
    stage2 = [
        [r["val_loss"] for r in res.history if r["phase"] == "stage2"] for res in (cached, plain)
    ]
    np.testing.assert_allclose(*stage2, atol=1e-5)
    assert cached.stage2_kept == plain.stage2_kept


def test_unfreeze_depth_counts_trailing_blocks_head_last():
    branch = ImageBranch([4, 8, 16], n_classes=3, dropout=0.0)
    freeze(branch)
    assert unfreeze_trailing(branch, 1) == ["head"]
    assert [p.requires_grad for p in branch.blocks[2].parameters()] == [False] * 3
    freeze(branch)
    assert unfreeze_trailing(branch, 2) == ["block3", "head"]
    freeze(branch)
    assert unfreeze_trailing(branch, "all") == ["block1", "block2", "block3", "head"]
    assert all(p.requires_grad for p in branch.parameters())


def test_frozen_batchnorm_keeps_running_statistics_in_stage2_mode():
    branch = ImageBranch([4], n_classes=3, dropout=0.5)
    freeze(branch)
    unfreeze_trailing(branch, "all")
    set_train_modes(branch, batchnorm_frozen=True)
    bn = branch.blocks[0][1]
    before = bn.running_mean.clone()
    branch(torch.randn(8, 1, 16, 16) * 5 + 3)
    assert not bn.training and torch.equal(before, bn.running_mean)
    assert branch.head[2].training  # dropout of a trainable head still drops
    set_train_modes(branch, batchnorm_frozen=False)
    branch(torch.randn(8, 1, 16, 16) * 5 + 3)
    assert not torch.equal(before, bn.running_mean)


def test_learned_fusion_weights_are_fitted_and_normalised(tiny):
    _, prepared = tiny
    config = tiny_config("fusion.mode=learned")
    result = run_fold(prepared.dataset, prepared.plans[0], config)
    w = result.fusion_weights
    assert set(w) == {"metadata", "thermal_map"} and sum(w.values()) == pytest.approx(1.0)
    assert w != pytest.approx({"metadata": 0.7, "thermal_map": 0.3})


def test_a_resumed_fold_reuses_finished_phases_and_agrees(tiny, tmp_path):
    config, prepared = tiny
    plan = prepared.plans[2]
    store = PhaseStore(tmp_path)
    first = run_fold(prepared.dataset, plan, config, store=store)
    # as if the worker died during stage 2: its checkpoint and the result are gone
    (tmp_path / "stage2.pt").unlink()
    (tmp_path / "result.pt").unlink()
    pretrained = (tmp_path / "pretrain_thermal_map.pt").stat().st_mtime_ns
    again = run_fold(prepared.dataset, plan, config, store=PhaseStore(tmp_path))
    assert (tmp_path / "pretrain_thermal_map.pt").stat().st_mtime_ns == pretrained
    for m in first.probs:
        np.testing.assert_array_equal(first.probs[m], again.probs[m])


def test_several_image_modalities_get_one_branch_each(tiny):
    config = tiny_config(
        "data.modalities=[metadata, thermal_map, thermal_map_copy]",
        "fusion.weights={metadata: 0.6, thermal_map: 0.2, thermal_map_copy: 0.2}",
    )
    _, prepared = tiny
    data = prepared.dataset
    images = {**data.images, "thermal_map_copy": data.images["thermal_map"].pixels[:, ::-1].copy()}
    two = type(data)(data.sample_id, data.patient_id, data.y, data.classes, data.features, images)
    result = run_fold(two, prepared.plans[0], config)
    assert {"thermal_map", "thermal_map_copy", "fusion"} <= set(result.probs)
    assert {r["branch"] for r in result.history if r["phase"] == "pretrain"} == {
        "thermal_map",
        "thermal_map_copy",
    }
