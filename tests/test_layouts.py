"""Several images per visit (folders or images.csv) and visits without images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raycv.data import load_dataset
from tests.test_data import CSV, IDS, config_for, make_folder, refusal


def three_of_s2(root: Path) -> Path:
    """The six-sample dataset, with visit S2's thermal map a folder of three images."""
    make_folder(root)
    (root / "thermal_map" / "S2.npy").unlink()
    (root / "thermal_map" / "S2").mkdir()
    for name, value in (("b_side.npy", 2.0), ("a_top.npy", 1.0), ("c_heel.npy", 3.0)):
        np.save(root / "thermal_map" / "S2" / name, np.full((12, 12), value))
    (root / "thermal_map" / "S2" / ".DS_Store").write_bytes(b"junk")  # not an image: ignored
    return root


def manifest_of(root: Path) -> str:
    """images.csv naming exactly the files the folder conventions find, rows shuffled."""
    rows = [
        f"{p.stem if p.parent.name == 'thermal_map' else p.parent.name},thermal_map,"
        f"{p.relative_to(root).as_posix()}"
        for p in sorted((root / "thermal_map").rglob("*.npy"))
    ]
    return "sample_id,modality,path\n" + "\n".join(reversed(rows)) + "\n"


def test_a_visit_with_three_images_loads_as_three_images_of_that_visit(tmp_path):
    ds = load_dataset(config_for(three_of_s2(tmp_path / "d")))
    images = ds.images["thermal_map"]
    assert len(images) == 8 and list(images.counts(6)) == [1, 3, 1, 1, 1, 1]
    assert list(images.visit) == [0, 1, 1, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(images.pixels[1:4, 0, 0], [1.0, 2.0, 3.0])  # by file name
    stats = ds.notes["images"]["thermal_map"]
    assert stats["visits"] == {"0": 0, "1": 5, "several": 1} and stats["ignored"] == 1


def test_folder_and_manifest_layouts_give_identical_image_sets(tmp_path):
    root = three_of_s2(tmp_path / "folders")
    by_folders = load_dataset(config_for(root))
    other = tmp_path / "manifest"
    shutil.copytree(root, other)
    (other / "images.csv").write_text(manifest_of(other))
    by_manifest = load_dataset(config_for(other))
    a, b = by_folders.images["thermal_map"], by_manifest.images["thermal_map"]
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.visit, b.visit)
    assert by_folders.fingerprint() == by_manifest.fingerprint()
    assert by_manifest.notes["layout"] == "images.csv"


def test_a_manifest_replaces_the_folder_conventions(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "scans").mkdir()
    rows = ["sample_id,modality,path,angle"]  # extra columns are allowed
    for k, sid in enumerate(IDS):
        for angle in (0, 1):
            np.save(root / "scans" / f"{sid}-{angle}.npy", np.full((8, 8), 10.0 * k + angle))
            rows.append(f"{sid},thermal_map,scans\\{sid}-{angle}.npy,{angle}")  # Windows path
    (root / "images.csv").write_text("\n".join(rows) + "\n")
    images = load_dataset(config_for(root)).images["thermal_map"]
    assert list(images.counts(6)) == [2] * 6
    np.testing.assert_array_equal(images.pixels[:4, 0, 0], [0.0, 1.0, 10.0, 11.0])


@pytest.mark.parametrize(
    "row, words",
    [
        ("S9,thermal_map,thermal_map/S2.npy", ["row 7", "unknown sample_id 'S9'"]),
        ("S2,thermal-map,thermal_map/S2.npy", ["row 7", "unknown modality 'thermal-map'"]),
        ("S2,metadata,thermal_map/S2.npy", ["row 7", "unknown modality 'metadata'"]),
        ("S2,thermal_map,thermal_map/nope.npy", ["row 7", "thermal_map/nope.npy does not exist"]),
        ("S2,thermal_map,thermal_map/S3.npy", ["row 7", "listed already in row 3"]),
        ("S2,thermal_map,/data/S2.npy", ["row 7", "'/data/S2.npy' is absolute"]),
        ("S2,thermal_map,C:\\data\\S2.npy", ["row 7", "is absolute"]),
        ("S2,thermal_map,../S2.npy", ["row 7", "leads outside the dataset folder"]),
        ("S2,thermal_map,metadata.csv", ["row 7", "not an image file"]),
        ("S2,,thermal_map/S2.npy", ["row 7", "empty modality"]),
    ],
)
def test_a_bad_manifest_row_is_refused_by_its_number(tmp_path, row, words):
    root = make_folder(tmp_path / "d")
    good = [f"{sid},thermal_map,thermal_map/{sid}.npy" for sid in IDS]
    (root / "images.csv").write_text("\n".join(["sample_id,modality,path", *good, row]) + "\n")
    message = refusal(config_for(root))
    assert "images.csv" in message
    for w in words:
        assert w in message


def test_a_manifest_without_its_columns_is_refused(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "images.csv").write_text("sample,file\nS2,thermal_map/S2.npy\n")
    message = refusal(config_for(root))
    assert "images.csv has no column(s) ['sample_id', 'modality', 'path']" in message


def test_manifest_rows_of_a_declared_but_unselected_modality_are_left_out(tmp_path):
    root = make_folder(tmp_path / "d", spec="modalities: [metadata, thermal_map, depth_map]\n")
    (root / "depth").mkdir()
    rows = [f"{sid},thermal_map,thermal_map/{sid}.npy" for sid in IDS]
    for sid in IDS[:2]:
        np.save(root / "depth" / f"{sid}.npy", np.zeros((8, 8)))
        rows.append(f"{sid},depth_map,depth/{sid}.npy")
    (root / "images.csv").write_text("sample_id,modality,path\n" + "\n".join(rows) + "\n")
    ds = load_dataset(config_for(root, modalities=["metadata", "thermal_map"]))
    assert list(ds.images) == ["thermal_map"] and len(ds.images["thermal_map"]) == 6


def test_a_visit_with_both_a_file_and_a_folder_is_refused(tmp_path):
    root = three_of_s2(tmp_path / "d")
    np.save(root / "thermal_map" / "S2.npy", np.zeros((8, 8)))
    message = refusal(config_for(root))
    assert "thermal_map/S2.npy and the folder" in message and "keep one" in message


# -- data.missing_images ---------------------------------------------------------------


def with_gaps(root: Path) -> Path:
    """Thermal maps missing for S2 and S5 (an empty folder counts as missing), depth for S3."""
    make_folder(root, spec="modalities: [metadata, thermal_map, depth_map]\n")
    (root / "thermal_map" / "S2.npy").unlink()
    (root / "thermal_map" / "S5.npy").unlink()
    (root / "thermal_map" / "S5").mkdir()
    (root / "depth_map").mkdir()
    for sid in IDS:
        if sid != "S3":
            Image.fromarray(np.full((8, 8), 9, np.uint8)).save(root / "depth_map" / f"{sid}.png")
    return root


def test_refuse_counts_every_missing_image_in_total_and_per_modality(tmp_path):
    message = refusal(config_for(with_gaps(tmp_path / "d")))
    assert message.startswith("3 image(s) missing (thermal_map 2, depth_map 1)")
    assert "'S2' (row 2), 'S5' (row 5)" in message and "depth_map: 'S3' (row 3)" in message
    assert "data.missing_images=drop" in message and "data.missing_images=mask" in message


def test_refuse_names_only_the_first_few(tmp_path):
    root = make_folder(tmp_path / "d")
    for sid in IDS:
        (root / "thermal_map" / f"{sid}.npy").unlink()
    message = refusal(config_for(root))
    assert message.startswith("6 image(s) missing (thermal_map 6)") and "and 1 more" in message


def test_drop_leaves_those_visits_out_and_records_them(tmp_path):
    ds = load_dataset(config_for(with_gaps(tmp_path / "d"), missing_images="drop"))
    assert list(ds.sample_id) == ["007", "S4", "S6"]
    assert list(ds.labels) == ["I", "P", "R"] and len(ds.features) == 3
    assert ds.notes["dropped"] == {"thermal_map": ["S2", "S5"], "depth_map": ["S3"]}
    for images in ds.images.values():
        assert list(images.counts(3)) == [1, 1, 1]


def test_mask_keeps_the_visits_with_no_image_of_that_modality(tmp_path):
    ds = load_dataset(config_for(with_gaps(tmp_path / "d"), missing_images="mask"))
    assert len(ds) == 6 and ds.notes["dropped"] == {}
    assert list(ds.has_image("thermal_map")) == [True, False, True, True, False, True]
    assert list(ds.images["depth_map"].counts(6)) == [1, 1, 0, 1, 1, 1]
    assert ds.notes["images"]["thermal_map"]["visits"] == {"0": 2, "1": 4, "several": 0}


def test_mask_refuses_a_visit_left_with_no_branch(tmp_path):
    csv = "\n".join(",".join(line.split(",")[:3]) for line in CSV.splitlines()) + "\n"
    root = make_folder(tmp_path / "d", csv=csv)
    (root / "thermal_map" / "S4.npy").unlink()
    message = refusal(config_for(root, modalities=["thermal_map"], missing_images="mask"))
    assert "1 visit(s) have no image" in message and "'S4' (row 4)" in message
    assert "data.missing_images=drop" in message
    ds = load_dataset(config_for(root, modalities=["thermal_map"], missing_images="drop"))
    assert "S4" not in ds.sample_id


def test_drop_of_every_visit_is_refused(tmp_path):
    root = make_folder(tmp_path / "d")
    shutil.rmtree(root / "thermal_map")
    (root / "thermal_map").mkdir()
    assert "leaves no visit" in refusal(config_for(root, missing_images="drop"))
