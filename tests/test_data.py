"""Loading a dataset folder: what is accepted, and every refusal naming its culprit."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raycv.config import Config, DataConfig
from raycv.data import DataError, check_dataset, load_dataset, resolve_config

CSV = """sample_id,patient_id,label,age,site
007,p1,I,61,heel
S2,p1,P,,toe
S3,p2,R,70.5,
S4,p2,P,55,heel
S5,p3,I,48,toe
S6,p3,R,66,heel
"""
IDS = ["007", "S2", "S3", "S4", "S5", "S6"]


def make_folder(root: Path, csv: str = CSV, spec: str | None = None, size=(12, 12)) -> Path:
    """A six-sample dataset: metadata.csv, thermal_map/<id>.npy, optional dataset.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "metadata.csv").write_text(csv)
    (root / "thermal_map").mkdir(exist_ok=True)
    for k, sid in enumerate(IDS):
        np.save(root / "thermal_map" / f"{sid}.npy", np.full(size, 30.0 + k))
    if spec is not None:
        (root / "dataset.yaml").write_text(spec)
    return root


def config_for(path, **data) -> Config:
    return Config(data=DataConfig(path=str(path), image_size=8, **data))


def refusal(config: Config) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(config)
    message = str(info.value)
    assert "\n" not in message  # one line, for the CLI
    return message


# -- accepted input ---------------------------------------------------------------


def test_loads_a_folder_in_csv_order_with_raw_feature_types(tmp_path):
    ds = load_dataset(config_for(make_folder(tmp_path / "d")))
    assert list(ds.sample_id) == IDS  # '007' stays text, row order kept
    assert list(ds.patient_id) == ["p1", "p1", "p2", "p2", "p3", "p3"]
    assert ds.classes == ("I", "P", "R")
    assert list(ds.labels) == ["I", "P", "R", "P", "I", "R"]
    assert ds.images["thermal_map"].pixels.shape == (6, 8, 8)
    assert ds.images["thermal_map"].pixels.dtype == np.float32
    np.testing.assert_allclose(ds.images["thermal_map"].pixels[:, 0, 0], 30.0 + np.arange(6))
    # missing feature values are not an error: they stay NaN; categoricals are plain object
    assert ds.features["age"].dtype == np.float64 and np.isnan(ds.features["age"][1])
    assert ds.features["site"].dtype == object
    assert ds.features["site"][0] == "heel" and ds.features["site"][2] is np.nan


def test_png_8_and_16_bit_are_read_as_gray_values(tmp_path):
    # one modality holds one kind of file (they encode different scales), so two folders
    root = make_folder(tmp_path / "d")
    for name, value, dtype in (("gray8", 200, np.uint8), ("gray16", 40000, np.uint16)):
        (root / name).mkdir()
        for sid in IDS:
            Image.fromarray(np.full((8, 8), value, dtype)).save(root / name / f"{sid}.png")
    ds = load_dataset(config_for(root, modalities=["gray8", "gray16"]))
    assert np.all(ds.images["gray8"].pixels == 200.0)
    assert np.all(ds.images["gray16"].pixels == 40000.0)


def test_maps_of_different_sizes_are_resized(tmp_path):
    root = make_folder(tmp_path / "d", size=(20, 20))
    np.save(root / "thermal_map" / "S2.npy", np.arange(6 * 9, dtype=np.float64).reshape(6, 9))
    maps = load_dataset(config_for(root)).images["thermal_map"].pixels
    assert maps.shape == (6, 8, 8)
    assert np.all(maps[0] == 30.0)  # a constant map stays constant
    assert maps[1].min() >= 0 and maps[1].max() <= 53 and maps[1].std() > 1  # a ramp stays one


def test_dataset_yaml_sets_class_order_columns_and_features(tmp_path):
    csv = CSV.replace("sample_id,patient_id,label", "visit,subject,phase")
    spec = "classes: [R, P, I]\ncolumns: {sample_id: visit, patient_id: subject, label: phase}\n"
    root = make_folder(tmp_path / "d", csv=csv, spec=spec + "features: [age]\n")
    ds = load_dataset(config_for(root))
    assert ds.classes == ("R", "P", "I")
    assert list(ds.y) == [2, 1, 0, 1, 2, 0]
    assert list(ds.features.columns) == ["age"]
    resolved = resolve_config(config_for(root)).data
    assert resolved.classes == ["R", "P", "I"] and resolved.features == ["age"]
    assert resolved.columns.label == "phase" and resolved.modalities == ["metadata", "thermal_map"]
    # the resolved config loads the same data by itself
    assert load_dataset(resolve_config(config_for(root))).fingerprint() == ds.fingerprint()


def test_config_values_win_over_dataset_yaml(tmp_path):
    root = make_folder(tmp_path / "d", spec="classes: [R, P, I]\nfeatures: [age]\n")
    ds = load_dataset(config_for(root, classes=["I", "P", "R"], features=["site"]))
    assert ds.classes == ("I", "P", "R") and list(ds.features.columns) == ["site"]


def test_custom_classes_from_yaml(tmp_path):
    csv = CSV.replace(",I,", ",low,").replace(",P,", ",mid,").replace(",R,", ",high,")
    root = make_folder(tmp_path / "d", csv=csv, spec="classes: [low, mid, high]\n")
    ds = load_dataset(config_for(root))
    assert ds.classes == ("low", "mid", "high") and list(ds.y) == [0, 1, 2, 1, 0, 2]


def test_file_uri_loads_like_a_local_path(tmp_path):
    root = make_folder(tmp_path / "d")
    local = load_dataset(config_for(root))
    assert load_dataset(config_for(root.as_uri())).fingerprint() == local.fingerprint()


def test_image_only_dataset_without_features(tmp_path):
    csv = "sample_id,patient_id,label\n" + "".join(
        f"{sid},p{k // 2},{'IPR'[k % 3]}\n" for k, sid in enumerate(IDS)
    )
    ds = load_dataset(config_for(make_folder(tmp_path / "d", csv=csv), modalities=["thermal_map"]))
    assert ds.features.shape == (6, 0) and list(ds.images) == ["thermal_map"]
    assert len(ds.fingerprint()) == 16


def test_check_dataset_summarises_in_class_order(tmp_path):
    text = check_dataset(make_folder(tmp_path / "d", spec="classes: [R, P, I]\n"))
    assert "6 samples from 3 patients" in text
    assert text.index("R: 2 / 2") < text.index("P: 2 / 2") < text.index("I: 2 / 2")
    assert "age (numeric): 16.7%" in text and "site (categorical): 16.7%" in text


# -- refusals: each names its culprit -----------------------------------------------


def test_refuses_missing_metadata_csv(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "metadata.csv").unlink()
    assert "metadata.csv does not exist" in refusal(config_for(root))


def test_refuses_a_missing_folder(tmp_path):
    assert "does not exist" in refusal(config_for(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    "header, culprit",
    [
        ("sample,patient_id,label,age,site", "'sample_id'"),
        ("sample_id,patient,label,age,site", "'patient_id'"),
        ("sample_id,patient_id,phase,age,site", "'label'"),
    ],
)
def test_refuses_a_missing_role_column(tmp_path, header, culprit):
    csv = CSV.replace("sample_id,patient_id,label,age,site", header)
    assert f"no column {culprit}" in refusal(config_for(make_folder(tmp_path / "d", csv=csv)))


def test_refuses_a_missing_feature_column(tmp_path):
    message = refusal(config_for(make_folder(tmp_path / "d"), features=["age", "hba1c"]))
    assert "['hba1c']" in message and "data.features" in message


def test_refuses_the_label_as_a_feature(tmp_path):
    message = refusal(config_for(make_folder(tmp_path / "d"), features=["age", "label"]))
    assert "['label']" in message


def test_refuses_a_missing_map(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "thermal_map" / "S4.npy").unlink()
    message = refusal(config_for(root))
    assert "1 image(s) missing (thermal_map 1)" in message and "'S4' (row 4)" in message
    assert "data.missing_images=drop" in message


def test_refuses_an_unreadable_map(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "thermal_map" / "S3.npy").write_bytes(b"not an array")
    message = refusal(config_for(root))
    assert "thermal_map/S3.npy" in message and "cannot read" in message


def test_refuses_an_unreadable_png(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "thermal_map" / "S3.npy").unlink()
    (root / "thermal_map" / "S3.png").write_bytes(b"\x89PNG garbage")
    assert "thermal_map/S3.png: cannot read" in refusal(config_for(root))


def test_refuses_a_colour_png_without_a_colormap(tmp_path):
    root = make_folder(tmp_path / "d")
    for sid in IDS:
        (root / "thermal_map" / f"{sid}.npy").unlink()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "thermal_map" / f"{sid}.png")
    message = refusal(config_for(root))
    assert re.search(r"007\.png: a colour PNG, but data\.colormaps .* 'thermal_map'", message)


def test_refuses_a_map_that_is_not_2d(tmp_path):
    root = make_folder(tmp_path / "d")
    np.save(root / "thermal_map" / "S5.npy", np.zeros((3, 8, 8)))
    message = refusal(config_for(root))
    assert "thermal_map/S5.npy" in message and "2-D" in message and "(3, 8, 8)" in message


def test_refuses_non_finite_pixels(tmp_path):
    root = make_folder(tmp_path / "d")
    arr = np.zeros((8, 8))
    arr[2, 3] = np.nan
    np.save(root / "thermal_map" / "S6.npy", arr)
    message = refusal(config_for(root))
    assert "thermal_map/S6.npy" in message and "non-finite" in message and "(2, 3)" in message


def test_refuses_a_duplicate_sample_id(tmp_path):
    csv = CSV.replace("S4,p2,P", "S2,p2,P")
    message = refusal(config_for(make_folder(tmp_path / "d", csv=csv)))
    assert "duplicate sample_id 'S2' in rows 2 and 4" in message


def test_refuses_an_empty_patient_id(tmp_path):
    csv = CSV.replace("S6,p3,R", "S6,,R")
    message = refusal(config_for(make_folder(tmp_path / "d", csv=csv)))
    assert "row 6: empty patient_id" in message


def test_refuses_two_files_for_one_map(tmp_path):
    root = make_folder(tmp_path / "d")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "thermal_map" / "S2.png")
    assert "thermal_map/S2: both ['S2.npy', 'S2.png'] exist" in refusal(config_for(root))


def test_refuses_an_empty_label(tmp_path):
    csv = CSV.replace("S3,p2,R", "S3,p2,")
    message = refusal(config_for(make_folder(tmp_path / "d", csv=csv)))
    assert "row 3 (sample_id 'S3'): empty label" in message


def test_refuses_an_unknown_label(tmp_path):
    csv = CSV.replace("S5,p3,I", "S5,p3,X")
    message = refusal(config_for(make_folder(tmp_path / "d", csv=csv)))
    assert "row 5 (sample_id 'S5'): unknown label 'X'" in message
    assert "['I', 'P', 'R']" in message


def test_refuses_a_missing_modality_folder(tmp_path):
    config = config_for(make_folder(tmp_path / "d"), modalities=["metadata", "depth_map"])
    assert "depth_map/ does not exist" in refusal(config)


def test_refuses_metadata_modality_without_features(tmp_path):
    csv = "\n".join(",".join(line.split(",")[:3]) for line in CSV.splitlines()) + "\n"
    message = refusal(config_for(make_folder(tmp_path / "d", csv=csv)))
    assert "'metadata'" in message and "no feature columns" in message


def test_refuses_a_bad_dataset_yaml(tmp_path):
    root = make_folder(tmp_path / "d", spec="classes: [I, I]\n")
    assert "dataset.yaml: classes" in refusal(config_for(root))
    (root / "dataset.yaml").write_text("phases: [I, P, R]\n")
    assert "unknown key(s) ['phases']" in refusal(config_for(root))


def test_a_refusal_comes_before_any_map_is_read(tmp_path):
    # an unreadable map and an unknown label: the table is checked first
    root = make_folder(tmp_path / "d", csv=CSV.replace("S5,p3,I", "S5,p3,X"))
    (root / "thermal_map" / "007.npy").write_bytes(b"junk")
    assert "unknown label 'X'" in refusal(config_for(root))


def test_png_bytes_helper_roundtrip():
    # guards the test helper above: Pillow writes 16-bit gray as mode I;16
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(buffer, format="PNG")
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        assert image.mode.startswith("I")


def test_load_dataset_leaves_config_untouched(tmp_path):
    config = config_for(make_folder(tmp_path / "d"))
    before = replace(config.data)
    load_dataset(config)
    resolve_config(config)
    assert config.data == before
