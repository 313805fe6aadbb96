"""timm backbones as image branches: weights files and their refusals, imagenet from the
cache (offline), blocks from feature_info, the two-step pretraining, frozen features
computed once, predict and Ray on a backbone run.

No model hub is reachable here: weights are randomly initialised state dicts the tests
save themselves, loaded through `image.weights` exactly as a downloaded file would be.
Most tests use timm's `test_resnet` (0.4 M parameters, the same stages as a ResNet);
one runs resnet18.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import time

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file

from raycv import config as config_mod
from raycv.checkpoints import PhaseStore
from raycv.cli import main
from raycv.config_coercion import ConfigError
from raycv.data import write_dataset
from raycv.experiment import prepare
from raycv.fold import run_fold
from raycv.models.backbone import BackboneBranch, stage_groups
from raycv.models.branches import build_branch
from raycv.models.choice import check_image_models
from raycv.models.cnn import freeze, unfreeze_trailing
from raycv.phase_states import PretrainState
from raycv.phases import pretrain_file
from raycv.prediction import predict
from tests.conftest import TINY

NET = "test_resnet"


def timm_state(name: str = NET, seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised state dict as a pretrained file holds it: classifier included."""
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).state_dict()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / f"{NET}.pth"
    torch.save(timm_state(), path)
    return path


def backbone_raw(weights, **sections) -> dict:
    raw = {**TINY, "image": {**TINY["image"], "backbone": NET, "weights": str(weights)}}
    return {**raw, **sections}


def run_cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


# -- blocks ----------------------------------------------------------------------------


def test_a_backbones_blocks_are_its_feature_info_stages_then_the_head():
    model = timm.create_model("densenet121", pretrained=False, num_classes=0)
    groups = dict(stage_groups(model))
    assert list(groups) == [i["module"] for i in model.feature_info]
    every = [p for names in groups.values() for p in names]
    assert sorted(every) == sorted(n for n, _ in model.named_parameters())  # each once
    # a transition feeds the next dense block: it unfreezes with it
    assert any(p.startswith("features.transition1.") for p in groups["features.denseblock2"])
    assert any(p.startswith("features.conv0.") for p in groups["features.norm0"])  # the stem

    branch = BackboneBranch(NET, 3, 0.0, 1, pretrained=True)
    freeze(branch)
    assert branch.frozen_prefix_length() == 1  # nothing of the backbone trains
    assert unfreeze_trailing(branch, 1) == ["head"]
    assert branch.frozen_prefix_length() == 1
    assert unfreeze_trailing(branch, 2) == ["layer4", "head"]
    assert branch.frozen_prefix_length() == 0
    trainable = {n for n, p in branch.backbone.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("layer4.") for n in trainable)
    names = [n for n, _ in branch.stage_groups()]
    assert names == ["act1", "layer1", "layer2", "layer3", "layer4", "head"]


def test_a_map_enters_a_pretrained_backbone_on_its_own_scale_repeated_into_three_channels():
    branch = BackboneBranch(NET, 3, 0.0, 1, pretrained=True)
    maps = torch.rand(4, 1, 16, 16) * 12 + 26  # deg C
    x = branch.normalise(maps)
    assert x.shape == (4, 3, 16, 16)
    scaled = (maps - maps.amin((1, 2, 3), keepdim=True)) / (
        maps.amax((1, 2, 3), keepdim=True) - maps.amin((1, 2, 3), keepdim=True)
    )
    mean = torch.tensor(branch.backbone.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(branch.backbone.pretrained_cfg["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (scaled.expand(-1, 3, -1, -1) - mean) / std)
    # no statistic of any fold: a warmer cohort gives the backbone the same input
    torch.testing.assert_close(branch.normalise(maps + 5), x)
    branch.set_normalisation(maps.numpy() + 100)  # pretrained weights keep their own
    torch.testing.assert_close(branch.normalise(maps), x)

    scratch = BackboneBranch(NET, 3, 0.0, 3, pretrained=False)
    photos = np.random.default_rng(0).random((5, 3, 8, 8), dtype=np.float32)
    scratch.set_normalisation(photos)  # random weights: the fold's statistics, per channel
    np.testing.assert_allclose(scratch.pixel_mean.flatten(), photos.mean((0, 2, 3)), rtol=1e-6)


# -- weights files -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_weights_file_becomes_the_backbones_starting_weights(tmp_path, suffix):
    state = timm_state(seed=1)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": state}, path)  # a training checkpoint's wrapper opens too
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    config = config_mod.from_dict(backbone_raw(path))
    checked = check_image_models(config)
    assert checked["thermal_map"].location == str(path)
    branch = build_branch(config, "thermal_map", initial=True)
    for name, tensor in branch.backbone.state_dict().items():
        torch.testing.assert_close(tensor, state[name], msg=name)
    assert branch.head[1].out_features == 3  # the 1000-class classifier is replaced


def broken_files(tmp_path) -> dict[str, tuple[object, str]]:
    """file name -> (what it holds, the words its refusal must contain)."""
    state = timm_state()
    shaped = {**state, "layer1.0.conv1.weight": torch.zeros(3, 3, 3, 3)}
    missing = {k: v for k, v in state.items() if k != "layer2.0.bn1.running_mean"}
    extra = {**state, "layer5.0.conv1.weight": torch.zeros(1)}
    return {
        "shaped.pth": (shaped, "tensor 'layer1.0.conv1.weight' has shape (3, 3, 3, 3)"),
        "missing.pth": (missing, "has no tensor 'layer2.0.bn1.running_mean'"),
        "extra.pth": (extra, "first 'layer5.0.conv1.weight'"),
        "model.pth": (torch.nn.Linear(2, 2), "loads without running code"),
        "text.pth": (b"not weights", "loads without running code"),
        "absent.pth": (None, "cannot read the weights file"),
        "weights.txt": (b"x", "expected none, imagenet, or a weights file"),
    }


def test_weights_that_do_not_fit_are_refused_by_name_before_anything_is_written(tmp_path):
    for name, (content, words) in broken_files(tmp_path).items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            torch.save(content, path)
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(backbone_raw(path)))
        out = tmp_path / f"run-{name}"
        code, err = run_cli(["run", str(config), "--output", str(out), "--executor", "sequential"])
        assert code == 2 and f"image.weights='{path}'" in err and words in err, (name, err)
        assert len(err.strip().splitlines()) == 1, err
        assert not out.exists() and not (tmp_path / ".raycv-cache").exists()


@pytest.mark.parametrize(
    "sections, words",
    [
        ({"image": {"backbone": "resnet_nope"}}, "image.backbone='resnet_nope' is neither cnn"),
        ({"image": {"weights": "imagenet"}}, "image.weights='imagenet': raycv's cnn trains"),
        (
            {"image": {"modalities": {"thermal_map": {"backbone": NET, "weights": "/no/w.pth"}}}},
            "image.modalities.thermal_map.weights='/no/w.pth': cannot read",
        ),
        (
            {"image": {"backbone": NET}, "stage2": {"unfreeze_depth": 7}},
            "stage2.unfreeze_depth=7 is more than the 6 blocks of the thermal_map branch",
        ),
    ],
)
def test_a_backbone_or_depth_that_cannot_be_used_is_refused_naming_its_key(sections, words):
    with pytest.raises(ConfigError) as info:
        check_image_models(config_mod.from_dict({**TINY, **sections}))
    assert words in str(info.value)


# -- imagenet: the cache, or a quick refusal ---------------------------------------------


def fake_hub_cache(root, repo: str, state: dict) -> str:
    """The layout huggingface_hub keeps a downloaded file in (what `timm.create_model(...,
    pretrained=True)` leaves behind on a machine with internet)."""
    snapshot = root / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (root / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
    (root / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("0123abcd")
    save_file({k: v.contiguous() for k, v in state.items()}, snapshot / "model.safetensors")
    return str(snapshot / "model.safetensors")


def test_imagenet_weights_come_from_the_cache_with_no_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    repo = timm.create_model(NET, pretrained=False).pretrained_cfg["hf_hub_id"]
    state = timm_state(seed=2)
    cached = fake_hub_cache(tmp_path, repo, state)
    config = config_mod.from_dict({**TINY, "image": {"backbone": NET, "weights": "imagenet"}})
    assert check_image_models(config)["thermal_map"].location == cached
    branch = build_branch(config, "thermal_map", initial=True)
    for name, tensor in branch.backbone.state_dict().items():
        torch.testing.assert_close(tensor, state[name], msg=name)


@pytest.mark.parametrize("how", ["offline", "unreachable"])
def test_imagenet_weights_neither_cached_nor_reachable_are_refused_in_seconds(
    tmp_path, monkeypatch, how
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    if how == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    else:  # a hub that does not answer (.invalid never resolves)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", "https://hub.raycv.invalid")
    config = config_mod.from_dict({**TINY, "image": {"backbone": NET, "weights": "imagenet"}})
    started = time.time()
    with pytest.raises(ConfigError) as info:
        check_image_models(config)
    assert time.time() - started < 10
    said = str(info.value)
    assert said.startswith("image.weights=imagenet: test_resnet's pretrained weights are not")
    assert str(tmp_path / "empty") in said and "HF_HOME" in said
    assert "pretrained=True" in said  # the one command that fills the cache elsewhere


# -- pretraining in two steps -------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared_backbone(weights_file, tmp_path_factory):
    raw = backbone_raw(weights_file)
    out = tmp_path_factory.mktemp("prep") / "run"
    return prepare(config_mod.from_dict(raw), out)


@pytest.mark.slow
@pytest.mark.parametrize("finetune_lr, kept", [(1e-12, False), (3e-2, True)])
def test_the_fine_tuning_step_is_kept_only_when_inner_validation_improves(
    prepared_backbone, weights_file, tmp_path, finetune_lr, kept
):
    config = config_mod.from_dict(
        prepared_backbone.config.to_dict(),
        [("pretrain.finetune_lr", finetune_lr), ("pretrain.epochs", 3), ("pretrain.patience", 3)],
    )
    plan = prepared_backbone.plans[2]  # a fold where a large step helps (seen: seeds fixed)
    store = PhaseStore(tmp_path / plan.unit)
    run_fold(prepared_backbone.dataset, plan, config, store=store, until="pretrain")
    state = PretrainState.from_dict(store.load(pretrain_file("thermal_map")))
    assert state.finetuned is kept
    steps = [r["note"] for r in state.history]
    assert steps[:3] == ["head on the frozen backbone"] * 3
    assert steps[3:] and set(steps[3:]) == {"fine-tuning layer4, head (2 of 6 blocks)"}
    best_head = max(r["val_kappa"] for r in state.history[:3])
    initial = torch.load(weights_file, weights_only=True)
    layer4 = state.state["backbone.layer4.0.conv1.weight"]
    if kept:  # it beat the head alone, and its fine-tuned weights are the branch's
        assert state.best_score > best_head
        assert not torch.equal(layer4, initial["layer4.0.conv1.weight"])
    else:  # reverted: the head-only weights, the backbone as the file gave it
        assert state.best_score == best_head
        assert torch.equal(layer4, initial["layer4.0.conv1.weight"])
    # the stages before the unfrozen ones never move, BatchNorm statistics included
    torch.testing.assert_close(
        state.state["backbone.layer1.0.bn1.running_mean"], initial["layer1.0.bn1.running_mean"]
    )


# -- whole runs ---------------------------------------------------------------------------


FROZEN = {
    "pretrain": {**TINY["pretrain"], "unfreeze_depth": 0},
    "stage2": {**TINY["stage2"], "unfreeze_depth": 1},
}


@pytest.fixture(scope="module")
def frozen_run(weights_file, tmp_path_factory):
    """A sequential run with the backbone frozen throughout, on a cohort on disk:
    (run folder, dataset folder, images the backbones saw while it ran)."""
    root = tmp_path_factory.mktemp("frozen")
    data = root / "data"
    write_dataset(data, 36, 3, 16, images_per_visit=2)
    raw = backbone_raw(weights_file, **FROZEN)
    raw["data"] = {"path": str(data), "image_size": 16}
    config = root / "frozen.yaml"
    config.write_text(yaml.safe_dump(raw))
    before = BackboneBranch.images_through
    code, err = run_cli(
        ["run", str(config), "--output", str(root / "run"), "--executor", "sequential"]
    )
    assert code == 0, err
    return root / "run", data, BackboneBranch.images_through - before


@pytest.mark.slow
def test_frozen_features_are_computed_once_for_folds_runs_and_combinations(frozen_run, tmp_path):
    run, data, seen = frozen_run
    images = len(pd.read_csv(run / "predictions.csv"))  # visits
    n_images = sum(1 for _ in (data / "thermal_map").rglob("*.npy"))
    assert n_images > images  # several images a visit
    assert seen == n_images  # one forward pass per image, not one per fold or phase
    cache = run.parent / ".raycv-cache" / "features"
    assert len(list(cache.glob("*.npy"))) == 1

    # a second run and an ablation of the same images: the cache answers, no pass at all
    config = run.parent / "frozen.yaml"
    before = BackboneBranch.images_through
    code, err = run_cli(
        [
            "run",
            str(config),
            "--output",
            str(run.parent / "again"),
            "--executor",
            "sequential",
            "--set",
            "cv.seed=5",
        ]
    )
    assert code == 0 and "from " + str(cache) in err, err
    code, err = run_cli(
        [
            "ablate",
            str(config),
            "--output",
            str(run.parent / "ablation"),
            "--executor",
            "sequential",
        ]
    )
    assert code == 0, err
    assert BackboneBranch.images_through == before
    assert len(list(cache.glob("*.npy"))) == 1


@pytest.mark.slow
def test_predict_with_a_backbone_run_reproduces_each_folds_test_predictions(frozen_run):
    run, data, _ = frozen_run
    written = pd.read_csv(run / "predictions.csv", dtype={"sample_id": str}).set_index("sample_id")
    cols = [c for c in written.columns if c.startswith("prob_")]
    for k in sorted(written["fold"].unique()):
        table = predict(run, data, fold=k).set_index("sample_id")
        test = written[written["fold"] == k]
        # the run scored cached features, predict runs the backbone: the same function,
        # computed in other batches
        np.testing.assert_allclose(
            table.loc[test.index, cols].to_numpy(dtype=float),
            test[cols].to_numpy(dtype=float),
            atol=1e-5,
        )


@pytest.mark.slow
def test_resnet18_from_a_weights_file_trains_and_fine_tunes(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in timm_state("resnet18").items()}, path)
    raw = backbone_raw(path)
    raw["image"]["backbone"] = "resnet18"
    raw["data"] = {**TINY["data"], "image_size": 32}
    config = tmp_path / "r18.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    code, err = run_cli(["run", str(config), "--output", str(out), "--executor", "sequential"])
    assert code == 0, err
    history = pd.read_csv(out / "history.csv")
    notes = set(history.loc[history["phase"] == "pretrain", "note"])
    assert notes == {"head on the frozen backbone", "fine-tuning layer4, head (2 of 6 blocks)"}
    summary = yaml.safe_load((out / "summary.json").read_text())
    assert summary["models"]["fusion"]["n_predicted"] == len(pd.read_csv(out / "predictions.csv"))
    assert "frozen resnet18 features of thermal_map" in err
    provenance = yaml.safe_load((out / "provenance.json").read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert provenance["image_weights"] == {"image": digest}
    assert provenance["versions"]["timm"] == timm.__version__


@pytest.mark.slow
@pytest.mark.parametrize("finetune_lr, depth", [(3e-2, 1), (1e-12, "all")])
def test_cached_frozen_features_give_the_numbers_the_backbone_gives(
    prepared_backbone, finetune_lr, depth
):
    """A fold on the cohort's frozen features and the same fold computing every backbone
    output itself agree: also where fine-tuning (kept in pretraining, or a stage 2 that
    unfreezes everything) moved the backbone, whose cached features then no longer apply."""
    config = config_mod.from_dict(
        prepared_backbone.config.to_dict(),
        [
            ("pretrain.finetune_lr", finetune_lr),
            ("pretrain.epochs", 3),
            ("pretrain.patience", 3),
            ("stage2.unfreeze_depth", depth),
            ("stage2.lr", 1e-2),
        ],
    )
    dataset, plan = prepared_backbone.dataset, prepared_backbone.plans[2]
    assert dataset.frozen  # the run's cohort carries them
    cached = run_fold(dataset, plan, config)
    computed = run_fold(dataclasses.replace(dataset, frozen={}), plan, config)
    for model, probs in computed.probs.items():
        np.testing.assert_allclose(cached.probs[model], probs, atol=1e-5, err_msg=model)


@pytest.mark.slow
def test_a_backbone_run_on_ray_equals_the_sequential_one(frozen_run, local_ray):
    run, _, _ = frozen_run
    out = run.parent / "on-ray"
    code, err = run_cli(["run", str(run.parent / "frozen.yaml"), "--output", str(out)])
    assert code == 0, err
    a = pd.read_csv(run / "predictions.csv", dtype={"sample_id": str}).set_index("sample_id")
    b = pd.read_csv(out / "predictions.csv", dtype={"sample_id": str}).set_index("sample_id")
    cols = [c for c in a.columns if c.startswith("prob_")]
    np.testing.assert_allclose(b.loc[a.index, cols].to_numpy(), a[cols].to_numpy(), atol=1e-6)


@pytest.mark.slow
def test_tune_trials_train_on_the_features_computed_once(frozen_run, local_ray):
    """Every trial of a search reads the features the driver computed (or found) once:
    no fold of any trial passes an image through the backbone."""
    run, _, _ = frozen_run
    raw = yaml.safe_load((run.parent / "frozen.yaml").read_text())
    raw["cv"] = {"folds": 2, "seed": 0}
    raw["tune"] = {
        "space": {"stage2.lr": {"loguniform": [1e-6, 1e-3]}},
        "num_samples": 2,
        "max_concurrent_trials": 2,
    }
    config = run.parent / "search.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, err = run_cli(["tune", str(config), "--output", str(run.parent / "search")])
    assert code == 0, err
    results = sorted((run.parent / "search" / "trials").glob("*/checkpoints/*/result.pt"))
    assert len(results) == 2 * 2  # trials x folds
    for path in results:
        assert PhaseStore(path.parent).load("result")["backbone_images"] == 0, path
    assert len(list((run.parent / ".raycv-cache" / "features").glob("*.npy"))) == 1


def test_a_model_for_a_modality_the_dataset_lacks_is_refused_by_name():
    from raycv.errors import DataError

    config = config_mod.from_dict({**TINY, "image": {"modalities": {"thermal": {"backbone": NET}}}})
    with pytest.raises(DataError, match=r"image.modalities.thermal: 'thermal' is no image"):
        prepare(config)


@pytest.mark.slow
def test_photos_through_a_pretrained_backbone(weights_file, tmp_path):
    """Colour photos enter a backbone as they are (3 channels, the weights' own
    normalisation), beside a map on the section's CNN: one model per modality."""
    raw = {
        **TINY,
        "data": {
            **TINY["data"],
            "modalities": ["metadata", "thermal_map", "photo"],
            "rgb": ["photo"],
        },
        "image": {
            **TINY["image"],
            "modalities": {"photo": {"backbone": NET, "weights": str(weights_file)}},
        },
    }
    config = tmp_path / "photos.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    code, err = run_cli(["run", str(config), "--output", str(out), "--executor", "sequential"])
    assert code == 0, err
    assert "frozen test_resnet features of photo" in err and "of thermal_map" not in err
    summary = yaml.safe_load((out / "summary.json").read_text())
    assert {"photo", "thermal_map", "fusion"} <= set(summary["models"])
    saved = PhaseStore(out / "checkpoints" / "fold0").load(pretrain_file("photo"))
    assert saved["state"]["backbone.conv1.0.weight"].shape[1] == 3  # RGB in, as trained


def test_the_readmes_image_models_example_is_a_valid_config():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Image models", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = config_mod.from_dict(yaml.safe_load(example))
    assert config.image.model_of("photo") == ("densenet121", "imagenet")
    assert config.image.model_of("thermal_map")[0] == "resnet18"
    assert config.data.rgb == ["photo"] and config.pretrain.unfreeze_depth == 2
