import pytest

from raycv import config as config_mod
from raycv.config import ConfigError


def parse(*overrides, raw=None):
    return config_mod.from_dict(raw or {}, [config_mod.parse_override(o) for o in overrides])


def test_defaults_match_the_contract():
    c = config_mod.Config()
    assert c.classes == ["I", "P", "R"]
    assert c.modalities == ["metadata", "thermal_map"]
    assert (c.stage1.epochs, c.stage1.lr, c.stage1.patience) == (30, 1e-4, 10)
    assert (c.stage2.epochs, c.stage2.lr, c.stage2.patience, c.stage2.min_delta) == (
        100,
        1e-6,
        10,
        0.0005,
    )
    assert (c.pretrain.epochs, c.pretrain.lr, c.pretrain.patience) == (100, 1e-3, 10)
    assert c.fusion_weights() == pytest.approx({"metadata": 0.7, "thermal_map": 0.3})
    assert c.stage2.unfreeze_depth == "all" and c.stage2.batchnorm == "frozen"
    assert c.cv.folds == 3 and c.cv.inner_val_fraction == 0.2
    assert c.resources.per_fold.cpu == 1 and c.resources.per_fold.gpu == 0


def test_set_values_are_coerced_to_the_declared_type():
    c = parse(
        "stage2.lr=1e-7", "cv.folds=5", "stage2.unfreeze_depth=2", "resources.per_fold.gpu=0.25"
    )
    assert c.stage2.lr == 1e-7 and isinstance(c.stage2.lr, float)
    assert c.cv.folds == 5 and c.stage2.unfreeze_depth == 2
    assert c.resources.per_fold.gpu == 0.25
    assert parse("stage2.unfreeze_depth=all").stage2.unfreeze_depth == "all"


def test_yaml_file_floats_written_as_1e_minus_7_are_numbers(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("stage2:\n  lr: 1e-7\n")  # YAML 1.1 reads this as a string
    c = config_mod.load(path)
    assert c.stage2.lr == 1e-7 and c.name == "exp"


def test_overrides_apply_in_order():
    assert parse("stage2.lr=1e-7", "stage2.lr=3e-8").stage2.lr == 3e-8


@pytest.mark.parametrize(
    "override, words",
    [
        ("stage2.foo=1", ["stage2.foo", "allowed"]),
        ("nosuch=1", ["nosuch"]),
        ("stage2.lr=fast", ["stage2.lr", "'fast'", "number"]),
        ("cv.folds=1.5", ["cv.folds", "int"]),
        ("cv.folds=1", ["cv.folds", ">= 2"]),
        ("fusion.mode=voting", ["fusion.mode", "'fixed'", "'learned'"]),
        ("stage2.unfreeze_depth=9", ["stage2.unfreeze_depth", "1..4"]),
        ("stage2.unfreeze_depth=some", ["stage2.unfreeze_depth", "'all'"]),
        ("stage2.batchnorm=maybe", ["stage2.batchnorm", "'frozen'"]),
        ("resources.per_fold.cpu=0", ["resources.per_fold.cpu"]),
        ("cv.inner_val_fraction=0.7", ["cv.inner_val_fraction"]),
        ("fusion.weights.metadata=-1", ["fusion.weights"]),
        ("pretrain.epochs=0", ["pretrain.epochs=0", ">= 1"]),
        ("stage1.epochs=-3", ["stage1.epochs=-3"]),
        ("stage2.lr=-1e-6", ["stage2.lr=-1e-06", "> 0"]),
        ("pretrain.lr=0", ["pretrain.lr=0.0", "> 0"]),
        ("stage2.patience=-1", ["stage2.patience=-1", ">= 1"]),
        ("pretrain.min_delta=-0.1", ["pretrain.min_delta=-0.1"]),
        ("image.channels=[16, 0]", ["image.channels=[16, 0]", ">= 1"]),
        ("image.channels=[-4]", ["image.channels=[-4]"]),
        ("metadata.min_samples_leaf=0", ["metadata.min_samples_leaf=0", ">= 1"]),
        ("metadata.max_depth=0", ["metadata.max_depth=0"]),
    ],
)
def test_bad_keys_and_values_are_refused_by_name(override, words):
    with pytest.raises(ConfigError) as err:
        parse(override)
    for w in words:
        assert w in str(err.value)
    assert "\n" not in str(err.value)


def test_one_fusion_weight_can_be_set_without_dropping_the_other():
    c = parse("fusion.weights.metadata=0.5")
    assert c.fusion_weights() == pytest.approx({"metadata": 0.5 / 0.8, "thermal_map": 0.3 / 0.8})


def test_fusion_weights_for_unused_branches_are_refused():
    with pytest.raises(ConfigError, match="depth_map"):
        parse(
            raw={
                "data": {"modalities": ["metadata", "thermal_map"]},
                "fusion": {"weights": {"metadata": 0.5, "depth_map": 0.5}},
            }
        )


def test_a_dumped_config_loads_back_identically(tmp_path):
    c = parse("stage2.lr=1e-7", "name=x")
    path = tmp_path / "config.yaml"
    path.write_text(config_mod.dump(c))
    assert config_mod.load(path) == c


def test_differing_keys_names_the_changes():
    a, b = parse(), parse("stage2.lr=1e-7", "cv.seed=3")
    assert config_mod.differing_keys(a, b) == ["cv.seed", "stage2.lr"]


def test_config_type_of_searchable_keys():
    assert config_mod.config_type("stage2.lr") is float
    assert config_mod.config_type("fusion.weights.metadata") is float
    with pytest.raises(ConfigError):
        config_mod.config_type("stage2.nope")
