"""The built-in synthetic cohort: deterministic, shaped like the real one, loadable from disk."""

from __future__ import annotations

import numpy as np
import pytest

from raycv.config import Config, DataConfig, SyntheticConfig
from raycv.data import DataError, load_dataset, resolve_config, synthesize, write_dataset
from raycv.data.synthetic import FEATURES


def small(seed=0, image_size=16, **data) -> Config:
    synthetic = SyntheticConfig(patients=30, seed=seed, image_size=image_size)
    return Config(data=DataConfig(synthetic=synthetic, image_size=16, **data))


def test_same_seed_same_cohort_other_seed_another():
    a, b, c = (load_dataset(small(seed)) for seed in (0, 0, 1))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_metadata_does_not_depend_on_image_size():
    a, _ = synthesize(patients=30, seed=3, image_size=16)
    b, _ = synthesize(patients=30, seed=3, image_size=24)
    assert a.equals(b)


def test_default_cohort_is_shaped_like_the_real_one():
    frame, maps = synthesize()  # 268 patients, seed 0, 64 x 64
    assert frame["patient_id"].nunique() == 268
    assert 800 <= len(frame) <= 980  # ~3.3 visits per patient
    shares = frame["label"].value_counts(normalize=True)
    assert shares["I"] == pytest.approx(0.31, abs=0.04)
    assert shares["P"] == pytest.approx(0.56, abs=0.04)
    assert shares["R"] == pytest.approx(0.13, abs=0.04)
    per_patient = frame.groupby("patient_id")["label"]
    several = per_patient.size() > 1
    assert 0.3 <= (per_patient.nunique()[several] > 1).mean() <= 0.5  # phase changes
    assert 0.03 <= frame[list(FEATURES)].isna().to_numpy().mean() <= 0.07
    assert all(len(shots) == 1 for shots in maps["thermal_map"])  # one image per visit
    stack = np.stack([shots[0] for shots in maps["thermal_map"]])
    assert stack.shape == (len(frame), 64, 64) and stack.dtype == np.float32
    assert 26 < np.median(stack) < 35  # skin temperature in deg C
    # the hot-spot is brightest while inflamed and faint when remodeling
    contrast = stack.max(axis=(1, 2)) - np.median(stack, axis=(1, 2))
    by_class = [contrast[(frame["label"] == c).to_numpy()].mean() for c in "IPR"]
    assert by_class[0] > by_class[1] > by_class[2]


def test_features_mix_numbers_and_categories():
    features = load_dataset(small()).features
    assert list(features.columns) == list(FEATURES)
    assert features["age"].dtype == np.float64
    assert features["exudate"].dtype == object
    assert set(features["exudate"].dropna()) <= {"none", "low", "moderate", "high"}


def test_written_folder_loads_to_the_same_dataset(tmp_path):
    write_dataset(str(tmp_path / "cohort"), patients=30, seed=2, image_size=16)
    in_memory = load_dataset(small(seed=2))
    on_disk = load_dataset(Config(data=DataConfig(path=str(tmp_path / "cohort"), image_size=16)))
    assert on_disk.fingerprint() == in_memory.fingerprint()
    with pytest.raises(DataError, match="already exists"):
        write_dataset(str(tmp_path / "cohort"), patients=30, seed=2, image_size=16)


def test_maps_are_resized_to_data_image_size():
    ds = load_dataset(small(image_size=24))
    assert ds.images["thermal_map"].pixels.shape == (len(ds), 16, 16)


def test_class_order_from_config_and_unknown_modality():
    ds = load_dataset(small(classes=["R", "P", "I"]))
    assert ds.classes == ("R", "P", "I")
    assert set(ds.labels[ds.y == 0]) == {"R"}
    with pytest.raises(DataError, match="no image modality 'photo'"):
        load_dataset(small(modalities=["metadata", "photo"]))


def test_resolve_config_fills_the_synthetic_defaults():
    data = resolve_config(small()).data
    assert data.classes == ["I", "P", "R"]
    assert data.modalities == ["metadata", "thermal_map"]
    assert data.features == list(FEATURES)
