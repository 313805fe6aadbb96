"""Every experiment file in experiments/ runs on any valid dataset with only data.path (and
the export's modalities) set: nothing in them may assume the built-in cohort's column
names or its modalities.

The export here is shaped like a clinic's: colour-mapped PNGs, several images a visit,
feature columns named as a spreadsheet names them (Age, Sex, ...), and depth maps beside
the thermal maps.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from raycv import config as config_mod
from raycv.data import write_dataset
from raycv.experiment import prepare

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
ROLES = ("sample_id", "patient_id", "label")


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "clinic"
    write_dataset(folder, 30, 4, 16, images_per_visit=2, depth_map=True, colormap_name="viridis")
    meta = pd.read_csv(folder / "metadata.csv", dtype=str, keep_default_na=False)
    renamed = {c: c.replace("_", " ").title() for c in meta.columns if c not in ROLES}
    meta.rename(columns=renamed).to_csv(folder / "metadata.csv", index=False)
    return folder


def test_the_experiment_files_are_found():
    assert {p.stem for p in EXPERIMENTS} >= {"quickstart", "two_stage_fusion", "tune_stage2"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
@pytest.mark.parametrize(
    "modalities", [None, "[metadata,depth_map]", "[depth_map]"], ids=["as-is", "depth", "image"]
)
def test_each_experiment_file_runs_on_an_export(export, path, modalities):
    overrides = [f"data.path={export}"]
    if modalities:
        overrides.append(f"data.modalities={modalities}")
    prepared = prepare(config_mod.load(path, overrides))  # every refusal comes from here
    assert "Age" in prepared.dataset.features.columns
    own = ["metadata", "thermal_map", "depth_map"]  # what the export's dataset.yaml lists
    wanted = own if modalities is None else modalities[1:-1].split(",")
    assert prepared.config.modalities == wanted
    assert sorted(prepared.config.fusion.weights) == sorted(wanted)
