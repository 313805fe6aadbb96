"""Colour-mapped PNGs: decoded to the value they encode, or refused naming the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from raycv import config as config_mod
from raycv.data import DataError, load_dataset
from raycv.data.colormap import TOLERANCE, decoder
from tests.test_data import IDS, config_for, make_folder, refusal


def exported(values: np.ndarray, name: str, alpha: bool = False) -> np.ndarray:
    """What plotting software writes: matplotlib's own 8-bit colours of `values` in [0, 1]."""
    return matplotlib.colormaps[name](values, bytes=True)[..., : 4 if alpha else 3]


def colour_folder(root: Path, name: str, size=(9, 7), seed=0) -> tuple[Path, dict]:
    """The six-sample dataset with thermal maps as `name` colour PNGs; -> (root, values)."""
    make_folder(root)
    rng = np.random.default_rng(seed)
    values = {}
    for sid in IDS:
        (root / "thermal_map" / f"{sid}.npy").unlink()
        values[sid] = rng.random(size)
        Image.fromarray(exported(values[sid], name)).save(root / "thermal_map" / f"{sid}.png")
    return root, values


def _resolution(name: str) -> float:
    """The step between the values a colormap can tell apart at 8 bits: 1 / (N - 1), times the
    longest run of neighbouring entries that share one colour (jet has runs of 4)."""
    cmap = matplotlib.colormaps[name]
    colours = cmap(np.arange(cmap.N), bytes=True)[:, :3]
    change = np.flatnonzero(np.any(np.diff(colours, axis=0) != 0, axis=1))
    longest = int(np.diff(np.concatenate([[-1], change, [cmap.N - 1]])).max())
    return longest / (cmap.N - 1)


@pytest.mark.parametrize("name", ["viridis", "inferno", "jet"])
def test_colour_pngs_decode_to_the_values_they_encode(tmp_path, name):
    root, values = colour_folder(tmp_path / "d", name, size=(8, 8))
    ds = load_dataset(config_for(root, colormaps={"thermal_map": name}))  # 8 x 8: no resizing
    resolution = _resolution(name)
    for i, sid in enumerate(IDS):
        np.testing.assert_allclose(ds.images["thermal_map"].pixels[i], values[sid], atol=resolution)
    stats = ds.notes["images"]["thermal_map"]
    assert stats["colormap"] == name and stats["kinds"] == {"colour PNG": 6}
    assert stats["off_colormap"]["files"] == 0


def test_rgba_and_palette_pngs_decode_like_rgb(tmp_path):
    root, values = colour_folder(tmp_path / "d", "viridis", size=(8, 8))
    Image.fromarray(exported(values["S2"], "viridis", alpha=True)).save(
        root / "thermal_map" / "S2.png"
    )
    Image.fromarray(exported(values["S3"], "viridis")).quantize(256).save(
        root / "thermal_map" / "S3.png"
    )
    assert Image.open(root / "thermal_map" / "S3.png").mode == "P"
    maps = load_dataset(config_for(root, colormaps={"thermal_map": "viridis"})).images
    np.testing.assert_allclose(maps["thermal_map"].pixels[1], values["S2"], atol=1 / 255)
    np.testing.assert_allclose(maps["thermal_map"].pixels[2], values["S3"], atol=1 / 255)


def test_decoding_tolerates_rounding_but_not_annotation_colours():
    viridis = decoder("viridis")
    near = exported(np.array([[0.5]]), "viridis", alpha=True).astype(int) + [2, -2, 1, 0]
    far = np.array([[[255, 255, 255, 255]]])  # white text
    values, off = viridis.decode(np.concatenate([near, far], axis=1).astype(np.uint8))
    assert not off[0, 0] and abs(values[0, 0] - 0.5) < 0.01 and off[0, 1]
    assert 3 < TOLERANCE < 30


def test_a_few_off_colormap_pixels_are_filled_with_the_median(tmp_path):
    root, values = colour_folder(tmp_path / "d", "viridis", size=(8, 8))
    rgb = exported(values["S4"], "viridis")
    rgb[0, :2] = [255, 0, 0]  # a red mark: 2 of 64 pixels
    Image.fromarray(rgb).save(root / "thermal_map" / "S4.png")
    ds = load_dataset(config_for(root, colormaps={"thermal_map": "viridis"}))
    decoded = ds.images["thermal_map"].pixels[3]
    on = np.ones((8, 8), bool)
    on[0, :2] = False
    np.testing.assert_allclose(decoded[~on], np.median(decoded[on]))
    assert ds.notes["images"]["thermal_map"]["off_colormap"] == {"files": 1, "max_share": 2 / 64}


def test_too_many_off_colormap_pixels_are_refused_by_file_and_share(tmp_path):
    root, values = colour_folder(tmp_path / "d", "viridis", size=(10, 10))
    rgba = exported(values["S5"], "viridis", alpha=True)
    rgba[:2, :, 3] = 0  # fully transparent background: 20 %
    Image.fromarray(rgba).save(root / "thermal_map" / "S5.png")
    message = refusal(config_for(root, colormaps={"thermal_map": "viridis"}))
    assert "thermal_map/S5.png: 20.0% of its pixels are off the 'viridis'" in message
    assert "data.max_off_colormap=0.05" in message
    # allowed once the threshold says so
    load_dataset(config_for(root, colormaps={"thermal_map": "viridis"}, max_off_colormap=0.25))


def test_a_wrong_colormap_shows_as_off_colormap_pixels(tmp_path):
    root, _ = colour_folder(tmp_path / "d", "jet")
    assert "off the 'viridis' colormap" in refusal(
        config_for(root, colormaps={"thermal_map": "viridis"})
    )


def test_an_unknown_colormap_name_is_refused_naming_the_key(tmp_path):
    root, _ = colour_folder(tmp_path / "d", "viridis")
    message = refusal(config_for(root, colormaps={"thermal_map": "viridiss"}))
    assert "data.colormaps.thermal_map='viridiss' is not a matplotlib colormap" in message


def test_an_rgb_png_without_a_colormap_is_refused_naming_the_modality(tmp_path):
    root, _ = colour_folder(tmp_path / "d", "viridis")
    message = refusal(config_for(root, colormaps={"depth_map": "viridis"}))
    assert "007.png: a colour PNG, but data.colormaps sets no colormap for 'thermal_map'" in message
    assert "(it names ['depth_map'])" in message
    assert "--set data.colormaps.thermal_map=viridis" in message


@pytest.mark.parametrize("others", ["8-bit gray PNG", ".npy array"])
def test_a_modality_mixing_file_kinds_is_refused_naming_one_of_each(tmp_path, others):
    root = make_folder(tmp_path / "d")  # .npy maps
    if others == "8-bit gray PNG":
        for sid in IDS:
            (root / "thermal_map" / f"{sid}.npy").unlink()
            Image.fromarray(np.full((8, 8), 7, np.uint8)).save(root / "thermal_map" / f"{sid}.png")
    (root / "thermal_map" / "S5.npy").unlink(missing_ok=True)
    Image.fromarray(np.full((8, 8), 9000, np.uint16)).save(root / "thermal_map" / "S5.png")
    message = refusal(config_for(root))
    assert "'thermal_map' mixes file kinds" in message
    assert re.search(rf"thermal_map/007\.(png|npy) is a {others}, \S+/S5\.png a 16-bit", message)


def test_colormaps_parse_from_set_and_from_yaml(tmp_path):
    c = config_mod.from_dict({}, [config_mod.parse_override("data.colormaps.thermal_map=viridis")])
    assert c.data.colormaps == {"thermal_map": "viridis"}
    path = tmp_path / "exp.yaml"
    path.write_text("data:\n  colormaps:\n    thermal_map: inferno\n    depth_map: jet\n")
    c = config_mod.load(path, ["data.colormaps.depth_map=gray"])
    assert c.data.colormaps == {"thermal_map": "inferno", "depth_map": "gray"}
    with pytest.raises(config_mod.ConfigError, match="data.colormaps"):
        config_mod.from_dict({"data": {"colormaps": ["viridis"]}})


def test_dataset_yaml_may_name_the_colormaps_and_the_config_wins(tmp_path):
    root, values = colour_folder(tmp_path / "d", "inferno", size=(8, 8))
    (root / "dataset.yaml").write_text("colormaps: {thermal_map: inferno}\n")
    ds = load_dataset(config_for(root))
    np.testing.assert_allclose(ds.images["thermal_map"].pixels[0], values["007"], atol=1 / 255)
    with pytest.raises(DataError, match="off the 'viridis'"):
        load_dataset(config_for(root, colormaps={"thermal_map": "viridis"}))
