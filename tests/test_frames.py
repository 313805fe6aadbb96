"""Full camera frames with boxes: crops, margins, padding, several wounds a frame, the preview.

Every test reads real files from disk: hand-made frames whose every pixel says where it
is, so a crop is checked pixel for pixel, and the synthetic cohort written as frames.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from raycv import config as config_mod
from raycv.cli import main
from raycv.config import ConfigError
from raycv.data import load_dataset, open_source, preview, write_dataset
from raycv.data.frames import Box, Crop
from raycv.data.images import fill_value, pad, resize
from tests.conftest import TINY, tiny_config
from tests.test_colormap import exported
from tests.test_data import IDS, config_for, make_folder, refusal
from tests.test_ray_run import assert_same_predictions

H, W = 20, 30  # a hand-made frame: 20 rows, 30 columns


def where_am_i() -> np.ndarray:
    """(H, W) float: each pixel's value is 100 * row + column, so a crop says where it was cut."""
    rows, cols = np.mgrid[0:H, 0:W]
    return (100.0 * rows + cols).astype(np.float64)


def framed(root: Path, rows: list[str], spec: str | None = None) -> Path:
    """The six-sample dataset, its images listed in images.csv: `rows` ("sid,path,xmin,ymin,
    xmax,ymax", box cells may be empty) for the first samples, the whole-file maps of
    thermal_map/ for the others; the frame `frames/f.npy` is `where_am_i()`."""
    make_folder(root, spec=spec)
    (root / "frames").mkdir()
    np.save(root / "frames" / "f.npy", where_am_i())
    listed = {r.split(",")[0] for r in rows}
    rest = [f"{sid},thermal_map/{sid}.npy,,,," for sid in IDS if sid not in listed]
    lines = ["sample_id,path,xmin,ymin,xmax,ymax", *rows, *rest]
    table = pd.read_csv(io.StringIO("\n".join(lines)), dtype=str, keep_default_na=False)
    table.insert(1, "modality", "thermal_map")
    table.to_csv(root / "images.csv", index=False)
    return root


# -- boxes and margins ----------------------------------------------------------------


def test_a_box_and_its_margin_crop_the_expected_pixels(tmp_path):
    # box: columns 5..8, rows 4..7 (max exclusive); 2 px on every side: rows 2..9, cols 3..10
    root = framed(tmp_path / "d", ["S2,frames/f.npy,5,4,9,8"])
    ds = load_dataset(config_for(root, crop_margin={"thermal_map": 2}))  # image_size 8
    frame = where_am_i()
    np.testing.assert_array_equal(ds.images["thermal_map"].pixels[1], frame[2:10, 3:11])
    # a share of the box's side: 0.5 of 4 px is 2 px, the same window
    share = load_dataset(config_for(root, crop_margin={"thermal_map": 0.5}))
    np.testing.assert_array_equal(share.images["thermal_map"].pixels[1], frame[2:10, 3:11])
    # no margin: the box alone (4 x 4, resized to 8 x 8)
    bare = load_dataset(config_for(root)).images["thermal_map"].pixels[1]
    np.testing.assert_array_equal(bare, resize(frame[4:8, 5:9].astype(np.float32), 8))
    stats = ds.notes["images"]["thermal_map"]
    assert stats["crops"] == {
        "images": 1,
        "frame_height": [H, H],
        "frame_width": [W, W],
        "margin": 2,
    }
    assert stats["height"] == [8, 12]  # the crop's size, and the other visits' 12 x 12 maps


def test_gray_and_colour_png_frames_crop_the_expected_pixels(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "frames").mkdir()
    values = where_am_i() / where_am_i().max()  # 0..1: positions on the colormap
    Image.fromarray((where_am_i() % 251).astype(np.uint8)).save(root / "frames" / "gray.png")
    Image.fromarray(exported(values, "viridis")).save(root / "frames" / "colour.png")
    rows = ["sample_id,modality,path,xmin,ymin,xmax,ymax"]
    for k, sid in enumerate(IDS):  # one box each: the first at (5, 4, 9, 8)
        box = f"{5 + k},4,{9 + k},8"
        rows += [f"{sid},gray,frames/gray.png,{box}", f"{sid},colour,frames/colour.png,{box}"]
    (root / "images.csv").write_text("\n".join(rows) + "\n")
    config = config_for(
        root,
        modalities=["gray", "colour"],
        colormaps={"colour": "viridis"},
        crop_margin={"gray": 2, "colour": 2},
    )
    ds = load_dataset(config)
    window = (slice(2, 10), slice(3, 11))
    np.testing.assert_array_equal(ds.images["gray"].pixels[0], gray_of(where_am_i())[window])
    np.testing.assert_allclose(ds.images["colour"].pixels[0], values[window], atol=1 / 255)


def gray_of(values: np.ndarray) -> np.ndarray:
    return (values % 251).astype(np.uint8).astype(np.float32)


def test_a_crop_is_clipped_to_its_file_and_the_margin_rounds_half_up():
    crop = Crop(Box(1, 2, 5, 6), 3, "images.csv row 2")
    assert crop.window(H, W, "f.npy") == Box(0, 0, 8, 9)
    assert Crop(Box(26, 16, 30, 20), 2, "r").window(H, W, "f") == Box(24, 14, 30, 20)
    assert Crop(Box(10, 10, 15, 13), 0.5, "r").margin_pixels() == (3, 2)  # 2.5 -> 3, 1.5 -> 2
    assert Crop(Box(10, 10, 15, 13), 0.1, "r").margin_pixels() == (1, 0)  # 0.5 -> 1, 0.3 -> 0


# -- several boxes in one file -------------------------------------------------------


def test_two_wounds_of_one_frame_are_two_samples_and_two_crops_two_images(tmp_path):
    rows = [
        "S2,frames/f.npy,0,0,8,8",  # wound 1 of the frame
        "S3,frames/f.npy,20,10,28,18",  # wound 2: another sample
        "S4,frames/f.npy,21,10,29,18",  # a box overlapping it: a crop of its own
        "S5,frames/f.npy,10,2,18,10",  # two crops of one wound: two images of the visit
        "S5,frames/f.npy,2,2,10,10",
        "S5,frames/f.npy,,,,",  # and the whole frame, a third image
    ]
    ds = load_dataset(config_for(framed(tmp_path / "d", rows)))
    images = ds.images["thermal_map"]
    assert list(images.counts(6)) == [1, 1, 1, 1, 3, 1]
    frame = where_am_i()
    np.testing.assert_array_equal(images.pixels[1], frame[0:8, 0:8])
    np.testing.assert_array_equal(images.pixels[2], frame[10:18, 20:28])
    np.testing.assert_array_equal(images.pixels[3], frame[10:18, 21:29])
    # a visit's images by path, then box: the whole file first, then (2, 2, ...), (10, 2, ...)
    np.testing.assert_array_equal(images.pixels[4], resize(frame.astype(np.float32), 8))
    np.testing.assert_array_equal(images.pixels[5], frame[2:10, 2:10])
    np.testing.assert_array_equal(images.pixels[6], frame[2:10, 10:18])


# -- refusals, each by its row ---------------------------------------------------------


@pytest.mark.parametrize(
    "row, words",
    [
        ("S2,frames/f.npy,5,4,,8", ["row 1", "a box needs all of", "xmax empty"]),
        ("S2,frames/f.npy,5,4,9.5,8", ["row 1", "xmax='9.5' is not a whole pixel"]),
        ("S2,frames/f.npy,5,4,9,x", ["row 1", "ymax='x' is not a whole pixel"]),
        ("S2,frames/f.npy,-1,4,9,8", ["row 1", "(-1, 4, 9, 8) is outside its image"]),
        ("S2,frames/f.npy,9,4,9,8", ["row 1", "(9, 4, 9, 8) is empty", "add 1 to xmax"]),
        ("S2,frames/f.npy,5,4,31,8", ["row 1", "(5, 4, 31, 8) is not inside", "30 x 20 px"]),
        ("S2,frames/f.npy,5,4,9,21", ["row 1", "(5, 4, 9, 21) is not inside", "30 x 20 px"]),
    ],
)
def test_a_bad_box_is_refused_by_its_row(tmp_path, row, words):
    message = refusal(config_for(framed(tmp_path / "d", [row])))
    assert "images.csv row" in message
    for w in words:
        assert w in message


def test_the_same_file_and_box_twice_is_refused_by_row(tmp_path):
    rows = ["S2,frames/f.npy,5,4,9,8", "S3,frames/f.npy,5,4,9,8"]
    message = refusal(config_for(framed(tmp_path / "d", rows)))
    assert "images.csv row 2: 'frames/f.npy' is listed already with the same box" in message
    assert "(5, 4, 9, 8) in row 1" in message
    whole = ["S2,frames/f.npy,,,,", "S3,frames/f.npy,,,,"]
    message = refusal(config_for(framed(tmp_path / "e", whole)))
    assert "row 2: 'frames/f.npy' is listed already in row 1" in message


def test_a_manifest_with_some_box_columns_is_refused(tmp_path):
    root = framed(tmp_path / "d", ["S2,frames/f.npy,5,4,9,8"])
    table = pd.read_csv(root / "images.csv", dtype=str).drop(columns=["ymax"])
    table.to_csv(root / "images.csv", index=False)
    assert "has box columns but not ['ymax']" in refusal(config_for(root))


def test_a_margin_for_an_unknown_modality_or_of_a_bad_size_is_refused(tmp_path):
    root = framed(tmp_path / "d", ["S2,frames/f.npy,5,4,9,8"])
    message = refusal(config_for(root, crop_margin={"thermal": 2}))
    assert "data.crop_margin.thermal: 'thermal' is no image modality" in message
    for bad in ("1.5", "-2", "yes"):
        with pytest.raises(ConfigError, match=r"data\.crop_margin"):
            config_mod.from_dict({}, [("data.crop_margin.thermal_map", yaml.safe_load(bad))])
    parsed = config_mod.from_dict(
        {}, [config_mod.parse_override("data.crop_margin.depth_map=0.25")]
    )
    assert parsed.data.crop_margin == {"depth_map": 0.25}
    parsed = config_mod.from_dict({}, [config_mod.parse_override("data.crop_margin.depth_map=30")])
    assert parsed.data.crop_margin == {"depth_map": 30}
    assert isinstance(parsed.data.crop_margin["depth_map"], int)


# -- pad or stretch --------------------------------------------------------------------


def test_pad_keeps_the_aspect_ratio_on_a_square_filled_with_the_scales_lowest_value(tmp_path):
    # box 8 wide, 4 high: stretched it fills the 8 x 8 square, padded it keeps its 4 rows
    root = framed(tmp_path / "d", ["S2,frames/f.npy,2,3,10,7"])
    frame = where_am_i()
    stretched = load_dataset(config_for(root)).images["thermal_map"].pixels[1]
    padded = load_dataset(config_for(root, resize="pad")).images["thermal_map"].pixels[1]
    np.testing.assert_array_equal(stretched, resize(frame[3:7, 2:10].astype(np.float32), 8))
    np.testing.assert_array_equal(padded[2:6], frame[3:7, 2:10])  # centred, not resampled
    assert np.all(padded[:2] == 302.0) and np.all(padded[6:] == 302.0)  # .npy: its lowest
    # a square image is not padded: pad and stretch agree on every other visit
    a = load_dataset(config_for(root)).images["thermal_map"].pixels
    b = load_dataset(config_for(root, resize="pad")).images["thermal_map"].pixels
    np.testing.assert_array_equal(np.delete(a, 1, 0), np.delete(b, 1, 0))


def test_the_fill_is_zero_for_gray_and_colour_pngs():
    tall = np.arange(20, dtype=np.float32).reshape(5, 4) + 3.0
    assert fill_value(".npy array", tall) == 3.0
    assert fill_value("8-bit gray PNG", tall) == fill_value("colour PNG", tall) == 0.0
    out = pad(tall, 10, 0.0)  # 5 x 4 -> 10 x 8, centred: a column of fill either side
    assert out.shape == (10, 10) and np.all(out[:, :1] == 0) and np.all(out[:, 9:] == 0)
    assert np.all(out[:, 1:9] > 0)


# -- the off-colormap share is measured on the crop ---------------------------------


def test_the_off_colormap_share_is_measured_on_the_crop(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "frames").mkdir()
    rgb = exported(np.tile(np.linspace(0, 1, W), (H, 1)), "magma")
    rgb[:, :12] = [0, 255, 0]  # 40 % of the frame: a green annotation band on the left
    Image.fromarray(rgb).save(root / "frames" / "f.png")
    rows = ["sample_id,modality,path,xmin,ymin,xmax,ymax"]
    rows += [f"{sid},thermal_map,frames/f.png,16,4,24,12" for sid in IDS[:1]]
    rows += [
        f"{sid},thermal_map,frames/f.png,{17 + k},4,{25 + k},12" for k, sid in enumerate(IDS[1:])
    ]
    (root / "images.csv").write_text("\n".join(rows) + "\n")
    colour = {"thermal_map": "magma"}
    ds = load_dataset(config_for(root, colormaps=colour))  # the crops stay off the band
    assert ds.notes["images"]["thermal_map"]["off_colormap"]["files"] == 0
    # the whole frame is refused; a margin that reaches into the band, by its row and box
    whole = root / "images.csv"
    whole.write_text(whole.read_text().replace(",16,4,24,12", ",,,,"))
    assert "40.0% of its pixels are off the 'magma'" in refusal(config_for(root, colormaps=colour))
    whole.write_text(whole.read_text().replace(",,,,", ",16,4,24,12"))
    message = refusal(config_for(root, colormaps=colour, crop_margin={"thermal_map": 6}))
    assert "frames/f.png [images.csv row 1, box (16, 4, 24, 12)]" in message
    assert "of the crop's pixels are off the 'magma' colormap" in message
    assert "narrow data.crop_margin.thermal_map" in message


# -- the preview -------------------------------------------------------------------------


def test_the_preview_shows_each_modality_and_class_as_the_model_gets_them(tmp_path):
    root = tmp_path / "cohort"
    write_dataset(root, 24, 5, 16, frames=True, depth_map=True, colormap_name="viridis")
    config = config_for(
        root,
        modalities=["metadata", "thermal_map", "depth_map"],
        crop_margin={"thermal_map": 2, "depth_map": 0.2},
        resize="pad",
    )
    source = open_source(config)
    fetched = []
    fetch = source.fetch
    source = type(source)(
        source.table, source.located, lambda r: fetched.append(r) or fetch(r), source.settings
    )
    sheet = preview.sheet(source, per_class=3)
    assert [(m, c) for m, c, _ in sheet.rows] == [
        (m, c) for m in ("thermal_map", "depth_map") for c in ("I", "P", "R")
    ]
    assert len(fetched) == sum(len(p) for _, _, p in sheet.rows)  # no other image is read
    ds = load_dataset(config)
    row_of = {sid: i for i, sid in enumerate(ds.sample_id)}
    for modality, label, panels in sheet.rows:
        assert 1 <= len(panels) <= 3
        assert len({ds.patient_id[row_of[p.sample_id]] for p in panels}) == len(panels)
        for p in panels:
            i = row_of[p.sample_id]
            assert ds.labels[i] == label == p.label
            first = ds.images[modality].rows_of(np.array([i]), len(ds))[0][0]
            np.testing.assert_array_equal(p.pixels, ds.images[modality].pixels[first])
    assert sheet.colormaps == {"thermal_map": "viridis", "depth_map": "viridis"}
    fig = preview.figure(sheet)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == sum(len(p) for _, _, p in sheet.rows)
    first = sheet.rows[0][2][0]
    assert drawn[0].get_title() == f"{first.sample_id} · {first.label}"
    np.testing.assert_array_equal(drawn[0].images[0].get_array(), first.pixels)
    assert "data.resize: pad" in fig.texts[0].get_text()


def test_data_check_writes_the_preview_png(tmp_path, capsys):
    root = tmp_path / "cohort"
    write_dataset(root, 24, 5, 16, frames=True, colormap_name="viridis")
    png = tmp_path / "look" / "preview.png"
    code = main(["data", "check", str(root), "--set", "data.crop_margin.thermal_map=2",
                 "--set", "data.resize=pad", "--preview", str(png)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"preview: {png}: 12 images (thermal_map; up to 4 visits per class)" in out
    assert "64x64 for the CNN (padded: aspect ratio kept)" in out
    assert "boxes: " in out and "margin 2 px (data.crop_margin)" in out
    with Image.open(png) as image:
        assert image.width > 400 and image.height > 3 * 100  # 3 rows (classes) of 4 panels


def test_a_report_whose_data_is_gone_says_so_instead_of_a_strip(tmp_path):
    from types import SimpleNamespace

    from raycv.config import Config, DataConfig
    from raycv.report.document import Figure, Paragraph
    from raycv.report.preview import preview_sections

    gone = SimpleNamespace(config=Config(data=DataConfig(path=str(tmp_path / "moved"))))
    (section,) = preview_sections(gone, tmp_path)
    assert isinstance(section.blocks[0], Paragraph) and "No preview" in section.blocks[0].text
    assert "moved" in section.blocks[0].text and not (tmp_path / "preview.png").exists()
    only_metadata = Config(data=DataConfig(modalities=["metadata"]))
    assert preview_sections(SimpleNamespace(config=only_metadata), tmp_path) == []
    synthetic = tiny_config("data.synthetic.patients=12")
    (section,) = preview_sections(SimpleNamespace(config=synthetic), tmp_path, "best_")
    assert isinstance(section.blocks[0], Figure) and section.blocks[0].path.is_file()
    assert section.blocks[0].path.name == "best_preview.png"
    assert "of the built-in synthetic cohort, exactly as" in section.blocks[0].caption


# -- synthetic frames --------------------------------------------------------------------


def test_synth_frames_writes_frames_with_a_border_and_two_wounds_in_some(tmp_path):
    root = tmp_path / "cohort"
    code = main(["data", "synth", "--out", str(root), "--patients", "24", "--seed", "5",
                 "--image-size", "16", "--frames", "--depth-map", "--colormap", "viridis"])  # fmt: skip
    assert code == 0
    table = pd.read_csv(root / "images.csv")
    assert list(table.columns) == ["sample_id", "modality", "path", "xmin", "ymin", "xmax", "ymax"]
    shared = table.groupby("path").size()
    assert (shared == 2).any() and (shared == 1).any() and shared.max() == 2
    width, height = table["xmax"] - table["xmin"], table["ymax"] - table["ymin"]
    assert (width != height).any() and width.between(12, 16).all() and height.between(12, 16).all()
    thermal = np.asarray(
        Image.open(root / table.loc[table.modality == "thermal_map", "path"].iloc[0])
    )
    black = (thermal == 0).all(axis=-1).mean()
    assert 0.5 < black < 0.6  # about half the thermal frame is black border
    # a margin up to a quarter of the map's side stays on skin; one reaching the border not
    mods = ["metadata", "thermal_map", "depth_map"]
    ok = config_for(root, modalities=mods, crop_margin={"thermal_map": 4, "depth_map": 4})
    assert load_dataset(ok).notes["images"]["thermal_map"]["off_colormap"]["files"] == 0
    far = config_for(root, modalities=mods, crop_margin={"thermal_map": 16})
    assert "of the crop's pixels are off the 'viridis' colormap" in refusal(far)


def test_synthetic_boxes_hold_the_cohorts_own_maps(tmp_path):
    from raycv.data import synthesize

    root = tmp_path / "cohort"
    write_dataset(root, 24, 5, 16, frames=True)
    table = pd.read_csv(root / "images.csv")
    _, maps = synthesize(24, 5, 16)
    frame_ids = pd.read_csv(root / "metadata.csv")["sample_id"].tolist()
    for row in table.head(12).itertuples():
        frame = np.load(root / row.path)
        crop = frame[row.ymin : row.ymax, row.xmin : row.xmax]
        full = maps["thermal_map"][frame_ids.index(row.sample_id)][0]
        assert any(
            np.array_equal(crop, full[y : y + crop.shape[0], x : x + crop.shape[1]])
            for y in range(17 - crop.shape[0])
            for x in range(17 - crop.shape[1])
        )


def test_the_readme_recipe_turns_the_originals_box_csvs_into_a_manifest(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("```python", readme.index("bounding-box CSVs"))
    recipe = readme[start + len("```python") : readme.index("```", start + 10)]
    root = tmp_path / "my_export"
    for folder in ("thermal", "depth"):
        (root / folder).mkdir(parents=True)
    rows, boxes = [], {"thermal": [], "depth": []}
    for patient in (1, 2, 3):
        for appt in (1, 2):
            name = f"p{patient}a{appt}.png"
            for folder, size in (("thermal", (40, 30)), ("depth", (20, 36))):
                Image.fromarray(np.full(size, 60 * patient + appt, np.uint8)).save(
                    root / folder / name
                )
            for dfu in (1, 2) if patient == 2 else (1,):  # patient 2: two wounds a frame
                rows.append(f"P{patient:03d}-V{appt:02d}-U{dfu},p{patient},{'IPR'[patient - 1]}")
                for folder in boxes:
                    x = 2 + 10 * dfu
                    boxes[folder].append(f"{name},{patient},{appt},{dfu},L,{x},3,{x + 7},9")
    (root / "metadata.csv").write_text("sample_id,patient_id,label\n" + "\n".join(rows) + "\n")
    header = "Filename,Patient#,Appt#,DFU#,Side,Xmin,Ymin,Xmax,Ymax\n"
    for folder, lines in boxes.items():
        (root / f"{folder}_boxes.csv").write_text(header + "\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    exec(compile(recipe, "README recipe", "exec"), {})
    manifest = pd.read_csv(root / "images.csv", dtype=str)
    assert list(manifest.columns) == [
        "sample_id",
        "modality",
        "path",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
    ]
    assert manifest["sample_id"].iloc[2] == "P002-V01-U1" and len(manifest) == 16
    ds = load_dataset(config_for(root, modalities=["thermal_map", "depth_map"]))
    assert len(ds) == 8 and ds.notes["images"]["depth_map"]["crops"]["images"] == 8
    assert ds.notes["images"]["thermal_map"]["width"] == [7, 7]


# -- runs on boxed frames ----------------------------------------------------------------


def precut(frames: Path, out: Path, margin: int) -> Path:
    """The same dataset with every crop made beforehand: each row's box and margin cut out
    of its frame with numpy and saved as its own .npy file, listed without a box."""
    shutil.copytree(frames, out, ignore=shutil.ignore_patterns("frames", "images.csv"))
    (out / "crops").mkdir()
    table = pd.read_csv(frames / "images.csv")
    rows = []
    for k, row in enumerate(table.itertuples()):
        frame = np.load(frames / row.path)
        top, left = max(0, row.ymin - margin), max(0, row.xmin - margin)
        crop = frame[top : row.ymax + margin, left : row.xmax + margin]
        np.save(out / "crops" / f"{k:04d}.npy", crop)
        rows.append((row.sample_id, row.modality, f"crops/{k:04d}.npy"))
    pd.DataFrame(rows, columns=["sample_id", "modality", "path"]).to_csv(
        out / "images.csv", index=False
    )
    return out


BOXED = {"image_size": 16, "crop_margin": {"thermal_map": 2}, "resize": "pad"}


def run_frames(root: Path, data: Path, name: str, executor: str = "sequential", **settings) -> Path:
    """The tiny experiment on a dataset of boxed frames (BOXED, then `settings`)."""
    raw = {**TINY, "name": name, "data": {"path": str(data), **BOXED, **settings}}
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = root / name
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(config), "--output", str(out), "--executor", executor]) == 0
    return out


@pytest.mark.slow
def test_predict_on_boxed_frames_of_new_visits_is_predict_on_their_crops(tmp_path):
    from raycv.prediction import predict

    train = write_dataset(tmp_path / "train", 30, 3, 16, frames=True)
    run = run_frames(tmp_path, Path(train), "frames")
    new = Path(write_dataset(tmp_path / "new", 24, 8, 16, frames=True))  # new patients
    meta = pd.read_csv(new / "metadata.csv", dtype=str)
    meta.drop(columns=["label"]).to_csv(new / "metadata.csv", index=False)  # unlabelled
    boxed = predict(run, new)
    cut = predict(run, precut(new, tmp_path / "new-cut", margin=2))
    assert len(boxed) == len(meta) and "label" not in boxed.columns
    pd.testing.assert_frame_equal(boxed, cut)
    assert boxed.filter(like="prob_fusion_").notna().all().all()
    page = (run / "report.md").read_text()
    assert "What the image model is given" in page and "(preview.png)" in page


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_ray_and_sequential_agree_on_a_boxed_cohort(tmp_path):
    data = write_dataset(
        tmp_path / "data", 30, 3, 16, frames=True, depth_map=True, colormap_name="viridis"
    )
    settings = {
        "modalities": ["metadata", "thermal_map", "depth_map"],
        "crop_margin": {"thermal_map": 3, "depth_map": 0.25},
    }
    ray_out = run_frames(tmp_path, Path(data), "ray", "ray", **settings)
    seq_out = run_frames(tmp_path, Path(data), "seq", "sequential", **settings)
    assert_same_predictions(ray_out, seq_out)
