"""Colour photos (`data.rgb`): decoding, refusals, resizing, boxes, several per visit, `data
check`, `data synth --rgb`, the preview, and a model that learns from colour alone.

Every photo is a real file read from disk. A hand-made photo gives each channel its own
pattern, so a channel mixed up, dropped or blended with another shows pixel for pixel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from raycv.cli import main
from raycv.config import ConfigError
from raycv.data import DataError, load_dataset, open_source, preview, write_dataset
from raycv.data.cohort_model import _photos, synthesize
from raycv.data.dataset import ImageSet
from raycv.data.images import pad, resize
from raycv.prediction import predict
from tests.conftest import TINY, tiny_config
from tests.test_data import IDS, config_for, make_folder, refusal

SIDE = 8  # hand-made photos are 8 x 8, as config_for's data.image_size: read unresized


def painted(k: int, size: tuple[int, int] = (SIDE, SIDE)) -> np.ndarray:
    """(H, W, 3) uint8: red rises along x, green falls along y, blue is flat at 30 + 5 k."""
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]]
    red, green = 20 * k + 10 * cols, 200 - 10 * rows
    return np.stack([red, green, np.full(size, 30 + 5 * k)], axis=-1).astype(np.uint8)


def channels_first(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]: what a photo modality stores."""
    return np.moveaxis(rgb, -1, 0).astype(np.float32) / 255


def photo_folder(root: Path, suffix: str = ".png") -> Path:
    """The six-sample dataset of tests.test_data plus photo/<id><suffix>: painted(k)."""
    make_folder(root)
    (root / "photo").mkdir()
    for k, sid in enumerate(IDS):
        Image.fromarray(painted(k)).save(root / "photo" / f"{sid}{suffix}")
    return root


def photos(root: Path, **data) -> ImageSet:
    return load_dataset(config_for(root, modalities=["photo"], rgb=["photo"], **data)).images[
        "photo"
    ]


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


# -- decoding -------------------------------------------------------------------------


def test_rgb_rgba_palette_and_jpeg_files_are_read_as_three_channels_in_0_1(tmp_path):
    root = photo_folder(tmp_path / "d")
    folder = root / "photo"
    # S2: RGBA, half of it transparent: the alpha is dropped, the colours under it kept
    rgba = np.concatenate([painted(1), np.full((SIDE, SIDE, 1), 255, np.uint8)], axis=-1)
    rgba[:, : SIDE // 2, 3] = 0
    Image.fromarray(rgba).save(folder / "S2.png")
    # S3: a palette PNG, each pixel an index into four colours
    palette = np.array([[250, 10, 10], [10, 250, 10], [10, 10, 250], [128, 64, 32]], np.uint8)
    index = np.arange(SIDE * SIDE).reshape(SIDE, SIDE) % 4
    image = Image.fromarray(index.astype(np.uint8), mode="P")
    image.putpalette(palette.ravel().tolist())
    image.save(folder / "S3.png")
    # S4, S5: JPEGs (any case of suffix), one colour each, so compression barely shifts it
    jpegs = {"S4": ("S4.JPG", (200, 60, 30)), "S5": ("S5.jpeg", (40, 90, 220))}
    for sid, (name, colour) in jpegs.items():
        (folder / f"{sid}.png").unlink()
        Image.new("RGB", (SIDE, SIDE), colour).save(folder / name, quality=95)
    images = photos(root)
    assert images.pixels.shape == (6, 3, SIDE, SIDE) and images.pixels.dtype == np.float32
    assert images.channels == 3
    for k in (0, 1, 5):  # RGB and RGBA PNGs: exactly their 8-bit values
        np.testing.assert_array_equal(images.pixels[k], channels_first(painted(k)))
    np.testing.assert_array_equal(images.pixels[2], channels_first(palette[index]))
    for k, (_, colour) in zip((3, 4), jpegs.values(), strict=True):
        expected = np.broadcast_to(np.array(colour, np.float32)[:, None, None] / 255, (3, 8, 8))
        np.testing.assert_allclose(images.pixels[k], expected, atol=4 / 255)
    assert images.batch(np.array([0, 3])).shape == (2, 3, SIDE, SIDE)


def test_a_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    root = photo_folder(tmp_path / "d")
    (root / "photo" / "S2.png").unlink()
    Image.new("RGB", (SIDE, SIDE), (200, 60, 30)).convert("CMYK").save(root / "photo" / "S2.jpg")
    with Image.open(root / "photo" / "S2.jpg") as image:
        assert image.mode == "CMYK"
    np.testing.assert_allclose(
        photos(root).pixels[1, :, 0, 0], [200 / 255, 60 / 255, 30 / 255], atol=4 / 255
    )


# -- refusals -------------------------------------------------------------------------


def test_a_gray_file_in_a_photo_modality_is_refused_naming_it_and_data_rgb(tmp_path):
    root = photo_folder(tmp_path / "d")
    Image.fromarray(painted(2)[..., 0]).save(root / "photo" / "S3.png")  # mode L
    message = refusal(config_for(root, modalities=["photo"], rgb=["photo"]))
    assert "photo/S3.png: no colour image (8-bit gray PNG), but 'photo' is in data.rgb" in message
    (root / "photo" / "S3.png").unlink()
    Image.fromarray(painted(2)[..., 0]).save(root / "photo" / "S3.jpg")  # a gray JPEG
    message = refusal(config_for(root, modalities=["photo"], rgb=["photo"]))
    assert "photo/S3.jpg: no colour image (gray JPEG), but 'photo' is in data.rgb" in message


def test_an_array_in_a_photo_modality_is_refused_before_any_image_is_read(tmp_path):
    root = photo_folder(tmp_path / "d")
    (root / "photo" / "007.png").write_bytes(b"not a PNG: never read")
    np.save(root / "photo" / "S6.npy", np.zeros((SIDE, SIDE)))
    (root / "photo" / "S6.png").unlink()
    message = refusal(config_for(root, modalities=["photo"], rgb=["photo"]))
    assert "photo/S6.npy: a .npy array, but 'photo' is in data.rgb" in message


def test_a_jpeg_in_a_map_modality_is_refused_naming_data_rgb(tmp_path):
    root = photo_folder(tmp_path / "d", suffix=".jpg")
    message = refusal(config_for(root, modalities=["photo"]))
    assert "photo/007.jpg: a JPEG, which raycv reads only as a colour photo" in message
    assert "'photo' is not in data.rgb; add it (--set 'data.rgb=[photo]')" in message
    # the same file listed in images.csv: refused by its row
    rows = "sample_id,modality,path\n" + "".join(f"{s},photo,photo/{s}.jpg\n" for s in IDS)
    (root / "images.csv").write_text(rows)
    (root / "dataset.yaml").write_text("modalities: [metadata, photo]\n")
    message = refusal(config_for(root, modalities=["photo"]))
    assert "images.csv row 1: 'photo/007.jpg': a JPEG" in message and "data.rgb" in message


def test_a_colour_png_of_a_map_modality_suggests_data_rgb(tmp_path):
    root = photo_folder(tmp_path / "d")
    message = refusal(config_for(root, modalities=["photo"]))
    assert "007.png: a colour PNG, but data.colormaps sets no colormap for 'photo'" in message
    assert "--set 'data.rgb=[photo]'" in message


def test_data_rgb_must_name_an_image_modality_and_never_a_colour_mapped_one(tmp_path):
    root = photo_folder(tmp_path / "d")
    message = refusal(config_for(root, modalities=["photo"], rgb=["fotos"]))
    assert "data.rgb: 'fotos' is no image modality of this dataset" in message
    assert "['photo']" in message
    (root / "dataset.yaml").write_text("colormaps: {photo: viridis}\n")
    message = refusal(config_for(root, modalities=["photo"], rgb=["photo"]))
    assert "data.rgb names 'photo', but dataset.yaml's colormaps.photo='viridis'" in message
    with pytest.raises(ConfigError, match=r"data.rgb and data.colormaps both name \['photo'\]"):
        config_for(root, rgb=["photo"], colormaps={"photo": "viridis"})


def test_a_refused_run_writes_nothing(tmp_path):
    root = photo_folder(tmp_path / "d")
    Image.fromarray(painted(2)[..., 0]).save(root / "photo" / "S6.png")  # the last one read
    raw = {**TINY, "data": {"path": str(root), "modalities": ["photo"], "rgb": ["photo"]}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    code, _, err = cli("run", tmp_path / "exp.yaml", "--output", out, "--executor", "sequential")
    assert code == 2 and "photo/S6.png: no colour image (8-bit gray PNG)" in err
    assert err.count("\n") == 1 and not out.exists()


# -- resizing, padding, boxes ---------------------------------------------------------


def test_resize_and_pad_treat_each_channel_alone_and_pad_photos_black(tmp_path):
    photo = channels_first(painted(3, size=(6, 12)))  # (3, 6, 12): wider than tall
    for made, per_channel in (
        (resize(photo, 8), [resize(c, 8) for c in photo]),
        (pad(photo, 8, 0.0), [pad(c, 8, 0.0) for c in photo]),
    ):
        assert made.shape == (3, 8, 8)
        np.testing.assert_array_equal(made, np.stack(per_channel))
    root = make_folder(tmp_path / "d")
    (root / "photo").mkdir()
    for k, sid in enumerate(IDS):
        Image.fromarray(painted(k, size=(6, 12))).save(root / "photo" / f"{sid}.png")
    padded = photos(root, resize="pad").pixels  # 12 wide -> 8, 6 high -> 4: 2 rows above, below
    assert (padded[:, :, :2] == 0).all() and (padded[:, :, -2:] == 0).all()  # black
    wide = channels_first(painted(4, (6, 12)))
    np.testing.assert_array_equal(padded[4], pad(wide, 8, 0.0))
    inside = padded[4, :, 2:6]
    assert inside.min() > 0 and not np.allclose(inside[0], inside[1])  # channels kept apart
    np.testing.assert_array_equal(photos(root).pixels[4], resize(wide, 8))  # stretched


def test_a_box_of_a_photo_frame_crops_every_channel_alike(tmp_path):
    root = photo_folder(tmp_path / "d")
    (root / "frames").mkdir()
    frame = painted(0, size=(20, 24))  # red = 10 x column, green = 200 - 10 x row
    Image.fromarray(frame).save(root / "frames" / "f.png")
    rows = ["sample_id,modality,path,xmin,ymin,xmax,ymax", "007,photo,frames/f.png,5,4,9,8"]
    rows += [f"{sid},photo,photo/{sid}.png,,,," for sid in IDS[1:]]
    (root / "images.csv").write_text("\n".join(rows) + "\n")
    (root / "dataset.yaml").write_text("modalities: [metadata, photo]\n")
    ds = load_dataset(
        config_for(root, modalities=["photo"], rgb=["photo"], crop_margin={"photo": 2})
    )
    # box columns 5..8, rows 4..7; 2 px on every side: rows 2..9, columns 3..10 (8 x 8)
    np.testing.assert_array_equal(ds.images["photo"].pixels[0], channels_first(frame[2:10, 3:11]))
    stats = ds.notes["images"]["photo"]
    assert stats["crops"]["frame_height"] == [20, 20] and stats["crops"]["frame_width"] == [24, 24]
    assert stats["channels"] == 3 and stats["colormap"] is None


# -- several images per visit, missing images -----------------------------------------


def test_several_photos_per_visit_mixing_png_and_jpeg_and_masked_visits(tmp_path):
    root = photo_folder(tmp_path / "d")
    (root / "photo" / "S2.png").unlink()
    (root / "photo" / "S2").mkdir()
    Image.fromarray(painted(7)).save(root / "photo" / "S2" / "a.png")
    Image.new("RGB", (12, 10), (90, 180, 40)).save(root / "photo" / "S2" / "b.jpg")
    (root / "photo" / "S4.png").unlink()  # S4 has no photo
    message = refusal(config_for(root, modalities=["photo"], rgb=["photo"]))
    assert "1 image(s) missing (photo 1): no image for photo: 'S4' (row 4)" in message
    config = config_for(
        root, modalities=["metadata", "photo"], rgb=["photo"], missing_images="mask"
    )
    ds = load_dataset(config)
    images = ds.images["photo"]
    assert images.pixels.shape == (6, 3, SIDE, SIDE)
    np.testing.assert_array_equal(images.counts(len(ds)), [1, 2, 1, 0, 1, 1])
    rows, counts = images.rows_of(np.array([1, 3]), len(ds))
    np.testing.assert_array_equal(counts, [2, 0])
    batch = images.batch(rows)
    assert batch.shape == (2, 3, SIDE, SIDE)
    np.testing.assert_array_equal(batch[0], channels_first(painted(7)))
    np.testing.assert_allclose(batch[1, :, 0, 0], [90 / 255, 180 / 255, 40 / 255], atol=4 / 255)
    kept = images.select(np.array([1, 0]), len(ds))
    assert kept.pixels.shape == (3, 3, SIDE, SIDE) and list(kept.visit) == [0, 0, 1]
    assert ds.notes["images"]["photo"]["kinds"] == {"colour PNG": 5, "colour JPEG": 1}
    dropped = load_dataset(
        config_for(root, modalities=["photo"], rgb=["photo"], missing_images="drop")
    )
    assert "S4" not in list(dropped.sample_id) and len(dropped.images["photo"]) == 6


def test_imageset_of_stores_photos_channels_first():
    per_visit = [np.ones((2, 3, 4, 4)), np.zeros((0, 3, 4, 4)), np.full((1, 3, 4, 4), 0.5)]
    images = ImageSet.of(per_visit, 4, channels=3)
    assert images.pixels.shape == (3, 3, 4, 4) and images.channels == 3
    assert list(images.visit) == [0, 0, 2] and images.size == 4
    assert ImageSet.of([np.ones((1, 4, 4))], 4).channels == 1


# -- data check, the preview ----------------------------------------------------------


def test_data_check_reports_photos_size_channels_and_no_colormap(tmp_path):
    root = photo_folder(tmp_path / "d")
    (root / "photo" / "S5.png").unlink()
    Image.new("RGB", (20, 10), (40, 90, 220)).save(root / "photo" / "S5.jpg")
    code, out, _ = cli(
        "data",
        "check",
        root,
        "--set",
        "data.modalities=[metadata,photo]",
        "--set",
        "data.rgb=[photo]",
        "--set",
        "data.image_size=16",
    )
    assert code == 0
    assert "  photo: 6 colour photos (RGB, 3 channels, data.rgb), 16x16 for the CNN" in out
    assert "original size: H 8..10, W 8..20" in out
    assert "files: colour PNG 5, colour JPEG 1" in out
    assert "colormap" not in out


def test_the_preview_draws_a_photo_in_its_own_colours(tmp_path):
    root = photo_folder(tmp_path / "d")
    source = open_source(config_for(root, modalities=["photo"], rgb=["photo"]))
    sheet = preview.sheet(source, per_class=2)
    panel = sheet.rows[0][2][0]
    assert panel.pixels.shape == (3, SIDE, SIDE)
    np.testing.assert_array_equal(panel.pixels, channels_first(painted(0)))  # 007, class I
    drawn = preview.figure(sheet).axes[0].get_images()[0].get_array()
    assert drawn.shape == (SIDE, SIDE, 3)  # an RGB image, not a colormapped one
    np.testing.assert_allclose(drawn, painted(0) / 255, atol=1e-6)
    path = preview.write(sheet, tmp_path / "sheet.png")
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert (np.abs(rgb[..., 1] - rgb[..., 2]) > 100).any()  # colours reach the file


# -- data synth --rgb -----------------------------------------------------------------


def test_synth_rgb_writes_photos_that_load_like_the_in_memory_cohort(tmp_path):
    out = tmp_path / "d"
    code, printed, _ = cli(
        "data",
        "synth",
        "--out",
        out,
        "--patients",
        20,
        "--seed",
        4,
        "--image-size",
        16,
        "--rgb",
        "wound_photo",
    )
    assert code == 0 and "wrote the synthetic cohort" in printed
    spec = yaml.safe_load((out / "dataset.yaml").read_text())
    assert spec["modalities"] == ["metadata", "thermal_map", "wound_photo"]
    assert "data.rgb: [wound_photo]" in spec["description"]
    files = sorted((out / "wound_photo").iterdir())
    assert len(files) == len(pd.read_csv(out / "metadata.csv"))
    with Image.open(files[0]) as image:
        assert image.mode == "RGB" and image.size == (16, 16)
    on_disk = load_dataset(
        tiny_config(
            f"data.path={out}", "data.modalities=[metadata,wound_photo]", "data.rgb=[wound_photo]"
        )
    )
    in_memory = load_dataset(
        tiny_config(
            "data.synthetic.patients=20",
            "data.synthetic.seed=4",
            "data.modalities=[metadata,photo]",
            "data.rgb=[photo]",
        )
    )  # the same photos, under the in-memory cohort's name for them
    np.testing.assert_array_equal(
        on_disk.images["wound_photo"].pixels, in_memory.images["photo"].pixels
    )
    stored = on_disk.images["wound_photo"]
    assert stored.pixels.shape == (len(on_disk), 3, 16, 16)
    # the fingerprint sees the channels: red and blue swapped is other data
    swapped = ImageSet(np.ascontiguousarray(stored.pixels[:, ::-1]), stored.visit)
    other = dataclasses.replace(on_disk, images={"wound_photo": swapped})
    assert other.fingerprint() != on_disk.fingerprint()


def test_synth_rgb_is_repeatable_and_leaves_every_other_file_as_it_was(tmp_path):
    plain = write_dataset(tmp_path / "plain", 12, 1, 16, depth_map=True, layout="manifest")
    again = write_dataset(tmp_path / "a", 12, 1, 16, depth_map=True, layout="manifest", rgb="photo")
    twice = write_dataset(tmp_path / "b", 12, 1, 16, depth_map=True, layout="manifest", rgb="photo")
    other = write_dataset(tmp_path / "c", 12, 2, 16, rgb="photo")
    for path in sorted(Path(again).rglob("*")):  # the same seed: the same bytes
        if path.is_file():
            assert path.read_bytes() == (Path(twice) / path.relative_to(again)).read_bytes()
    for path in sorted(Path(plain).rglob("*")):  # the maps and the table do not move
        if path.is_file() and path.name not in ("images.csv", "dataset.yaml"):
            assert path.read_bytes() == (Path(again) / path.relative_to(plain)).read_bytes()
    manifest = pd.read_csv(Path(again) / "images.csv")
    assert pd.read_csv(Path(plain) / "images.csv").equals(manifest[manifest.modality != "photo"])
    assert (manifest.modality == "photo").sum() == len(pd.read_csv(Path(plain) / "metadata.csv"))
    first = sorted((Path(again) / "files").glob("*_photo_*"))[0].read_bytes()
    assert first != sorted((Path(other) / "photo").iterdir())[0].read_bytes()


@pytest.mark.parametrize(
    ("name", "culprit"),
    [("thermal_map", "is a map modality of the cohort"), ("a b", "a modality name is a letter")],
)
def test_synth_refuses_a_photo_name_it_cannot_use(tmp_path, name, culprit):
    code, _, err = cli("data", "synth", "--out", tmp_path / "d", "--rgb", name)
    assert code == 2 and culprit in err and not (tmp_path / "d").exists()


def test_synthetic_photos_carry_the_class_in_hue_alone():
    patients, n, size = 10, 40, 24
    patient = np.repeat(np.arange(patients), n // patients)

    def drawn(seen: float) -> np.ndarray:  # the same random draws, another healing score
        return _photos(np.full(n, seen), patient, patients, size, np.random.default_rng(0))

    inflamed, remodeled = drawn(-2.0), drawn(3.0)  # (N, 3, S, S) each
    assert 0.0 < min(inflamed.min(), remodeled.min()) and max(inflamed.max(), remodeled.max()) < 1
    np.testing.assert_allclose(gray(inflamed), gray(remodeled), atol=1e-6)  # one luminance
    assert np.abs(inflamed - remodeled).max() > 0.2  # but another colour
    # across the cohort: the wound (each photo's darkest eighth) is bluer the more inflamed
    frame, photos_of = synthesize(150, 0, 24, modalities=("photo",))
    rgb = np.stack([v[0] for v in photos_of["photo"]]).reshape(len(frame), 3, -1)
    luma = gray(rgb)  # (N, S * S)
    darkest = np.argsort(luma, axis=1)[:, : luma.shape[1] // 8]
    blue = np.take_along_axis(rgb[:, 2] - luma, darkest, 1).mean(1)  # (N,)
    label = frame["label"].to_numpy()
    i, p, r = (blue[label == c].mean() for c in ("I", "P", "R"))
    assert i > p + 0.03 and p > r + 0.03  # purple-red, red, orange-yellow


def gray(rgb: np.ndarray) -> np.ndarray:
    """(N, 3, ...) RGB -> (N, ...) luminance, as a gray conversion (ITU-R 601) makes it."""
    return np.tensordot([0.299, 0.587, 0.114], rgb, axes=(0, 1))


def test_the_in_memory_cohort_holds_photos_only_as_photo_read_with_data_rgb():
    with pytest.raises(DataError, match=r"read only with data.rgb: \[photo\]"):
        load_dataset(tiny_config("data.modalities=[photo]"))
    with pytest.raises(DataError, match="holds colour photos only as 'photo'"):
        load_dataset(tiny_config("data.modalities=[thermal_map]", "data.rgb=[thermal_map]"))


# -- learning from colour -------------------------------------------------------------

# Enough training for a small CNN to find the hue: 20 epochs at a higher rate, small batches.
LEARN = {
    **TINY,
    "image": {"channels": [4, 8], "batch_size": 16},
    "pretrain": {"epochs": 20, "patience": 20, "lr": 3e-3},
    "stage1": {"epochs": 1},
    "stage2": {"epochs": 1, "patience": 1, "lr": 1e-4},
}


def run_on_photos(root: Path, data: Path, name: str, **extra) -> Path:
    raw = {
        **LEARN,
        "name": name,
        "data": {"path": str(data), "image_size": 16, "modalities": ["photo"], **extra},
    }
    (root / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    out = root / name
    code, _, err = cli("run", root / f"{name}.yaml", "--output", out, "--executor", "sequential")
    assert code == 0, err
    return out


def photo_kappa(run: Path) -> float:
    return json.loads((run / "summary.json").read_text())["models"]["photo"]["kappa_pooled"]


@pytest.mark.slow
def test_photos_whose_class_is_in_colour_are_learned_in_rgb_but_not_in_gray(tmp_path):
    rgb = Path(write_dataset(tmp_path / "rgb-data", 60, 5, 16, rgb="photo"))
    gray = tmp_path / "gray-data"
    shutil.copytree(rgb, gray)
    for path in (gray / "photo").iterdir():  # the same photos, as their luminance
        Image.open(path).convert("L").save(path)
    colour_run = run_on_photos(tmp_path, rgb, "rgb", rgb=["photo"])
    gray_run = run_on_photos(tmp_path, gray, "gray")
    colour, luminance = photo_kappa(colour_run), photo_kappa(gray_run)
    assert colour > 0.4 and colour > luminance + 0.3, (colour, luminance)
    assert abs(luminance) < 0.25, luminance
    # the run's report shows the photos in colour
    shown = np.asarray(Image.open(colour_run / "preview.png").convert("RGB")).astype(int)
    assert (np.abs(shown[..., 0] - shown[..., 2]) > 40).any()
    # raycv predict reads the photos as the run did: fold 0's test visits as predictions.csv
    written = pd.read_csv(colour_run / "predictions.csv", dtype={"sample_id": str})
    test = written[written["fold"] == 0].set_index("sample_id")
    mine = predict(colour_run, rgb, fold=0).set_index("sample_id").loc[test.index]
    columns = [c for c in test.columns if c.startswith("prob_photo_")]
    np.testing.assert_allclose(
        mine[columns].to_numpy(float), test[columns].to_numpy(float), atol=1e-6
    )
