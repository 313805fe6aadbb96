"""`raycv data check`: the same coercion as `run`, and what loading found, in plain lines."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from raycv.cli import main
from tests.test_colormap import exported
from tests.test_layouts import with_gaps
from tests.test_metadata_csv import export_folder


def check(capsys, *args) -> tuple[int, str, str]:
    code = main(["data", "check", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_shows_missing_cells_the_mostly_numeric_report_and_images(tmp_path, capsys):
    root = export_folder(tmp_path)
    (root / "thermal_map" / "S7.npy").unlink()
    (root / "thermal_map" / "S7").mkdir()
    for k, (h, w) in enumerate([(55, 80), (70, 61)]):
        np.save(root / "thermal_map" / "S7" / f"{k}.npy", np.zeros((h, w)))
    code, out, _ = check(capsys, root)
    assert code == 0
    assert "21 samples from 10 patients" in out
    assert "hba1c (numeric): 14.3% missing (3 of 21)" in out  # '#N/A', 'pending', '>14'
    assert "debridement (categorical): 9.5% missing (2 of 21)" in out  # 'None' is no gap
    assert "warnings:\n  " in out and "column 'hba1c' is read as numbers" in out
    assert "thermal_map: 22 images, 64x64 for the CNN" in out
    assert "visits with 0 / 1 / several images: 0 / 20 / 1" in out
    assert "original size: H 8..70, W 8..80" in out and "files: .npy array 22" in out


def test_check_applies_set_overrides_and_counts_dropped_visits(tmp_path, capsys):
    root = with_gaps(tmp_path / "d")
    code, _, err = check(capsys, root)
    assert code == 2 and "3 image(s) missing" in err and "Traceback" not in err
    code, out, _ = check(capsys, root, "--set", "data.missing_images=drop")
    assert code == 0 and "3 samples from 3 patients" in out
    assert "dropped visits (data.missing_images=drop): 3" in out
    assert "without thermal_map: 2 (S2, S5)" in out and "without depth_map: 1 (S3)" in out
    assert "files: 8-bit gray PNG 3" in out


def test_check_reports_the_colormap_and_off_colormap_pixels(tmp_path, capsys):
    root = with_gaps(tmp_path / "d")
    for png in (root / "depth_map").glob("*.png"):
        rgb = exported(np.linspace(0, 1, 64).reshape(8, 8), "magma")
        rgb[0, 0] = [0, 255, 0]  # one green annotation pixel
        Image.fromarray(rgb).save(png)
    config = tmp_path / "exp.yaml"
    config.write_text("data:\n  missing_images: mask\n  colormaps: {depth_map: magma}\n")
    code, out, _ = check(capsys, root, "--config", config)
    assert code == 0 and "visits with 0 / 1 / several images: 1 / 5 / 0" in out
    assert "colormap: magma; pixels off it: in 5 files, at most 1.6% of one" in out


def test_check_piped_into_head_ends_without_a_traceback(tmp_path):
    # enough columns that the summary outgrows the pipe's buffer once head has gone
    root = with_gaps(tmp_path / "d")
    columns = [f"feature_with_a_long_name_{k}" for k in range(3000)]
    lines = (root / "metadata.csv").read_text().splitlines()
    wide = [lines[0] + "," + ",".join(columns)] + [row + ",1" * len(columns) for row in lines[1:]]
    (root / "metadata.csv").write_text("\n".join(wide) + "\n")
    command = (
        f"{sys.executable} -m raycv data check {root} --set data.missing_images=mask | head -n 3"
    )
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
