"""The science rules, each checked on the real pipeline:

1. folds split by patient: no patient in two outer folds, every inner split by patient;
2. nothing is fitted on, chosen by or seeded from an outer test fold;
3. the fusion never trains on in-sample forest probabilities;
4. on labels shuffled between patients every model scores near kappa 0;
5. the same config and seed give the same fold results; a resumed phase agrees.

No mocks: every test runs `prepare` / `plan_folds` / `run_fold` / `forest_probabilities`
as a run would, and each one would fail if its rule were broken. Each rule that can only
pass by "nothing happening" also has a control showing that the test has power.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold

from raycv.checkpoints import PhaseStore
from raycv.data.dataset import Dataset
from raycv.experiment import prepare
from raycv.fold import run_fold
from raycv.folds import FoldSplit, folds_table, outer_folds, plan_folds
from raycv.metrics import kappa
from raycv.models.forest import forest_probabilities
from raycv.models.fusion import fit_fusion_weights
from raycv.results import FoldResult
from raycv.seeds import phase_seed
from tests.conftest import tiny_config

FOLD = 1  # the outer fold that the per-fold tests run

# The cohorts every per-fold rule is checked on: one map per visit, and one shaped like a
# real export (several images per visit, two image modalities, visits without images
# kept by data.missing_images: mask).
COHORTS = {
    "single": (),
    "rich": (
        "data.synthetic.images_per_visit=3",
        "data.synthetic.missing_images=0.2",
        "data.modalities=[metadata, thermal_map, depth_map]",
        "data.missing_images=mask",
    ),
}


# -- helpers ------------------------------------------------------------------------------


def assert_same_result(a: FoldResult, b: FoldResult) -> None:
    """Everything a fold returns is exactly equal (run time aside)."""
    assert set(a.probs) == set(b.probs)
    for m in a.probs:
        np.testing.assert_array_equal(a.probs[m], b.probs[m], err_msg=m)
    np.testing.assert_array_equal(a.test_index, b.test_index)
    assert set(a.val_kappa) == set(b.val_kappa)
    for m in a.val_kappa:  # NaN-aware: an undefined kappa equals an undefined kappa
        np.testing.assert_array_equal(a.val_kappa[m], b.val_kappa[m], err_msg=m)
    pd.testing.assert_frame_equal(pd.DataFrame(a.history), pd.DataFrame(b.history))
    assert a.fusion_weights == b.fusion_weights
    assert (a.stage1_val_score, a.stage2_val_score, a.stage2_kept) == (
        b.stage1_val_score,
        b.stage2_val_score,
        b.stage2_kept,
    )


def assert_patient_grouped(plans: list[FoldSplit], fold_of: np.ndarray, patient_id) -> None:
    """Rule 1 on a list of plans: disjoint patients everywhere, every sample tested once
    in each repeat (fold_of: (R, N), or (N,) for one repeat)."""
    patient_id = np.asarray(patient_id)
    fold_of = np.atleast_2d(fold_of)
    assert sorted({p.repeat for p in plans}) == list(range(len(fold_of)))
    for repeat, folds in enumerate(fold_of):
        mine = [p for p in plans if p.repeat == repeat]
        assert (pd.Series(folds).groupby(patient_id).nunique() == 1).all()
        tested = np.sort(np.concatenate([p.test for p in mine]))
        np.testing.assert_array_equal(tested, np.arange(len(patient_id)))
        for p in mine:
            np.testing.assert_array_equal(p.test, np.flatnonzero(folds == p.fold))
            np.testing.assert_array_equal(np.sort(p.train), np.flatnonzero(folds != p.fold))
            assert not set(patient_id[p.train]) & set(patient_id[p.test])
            assert not set(patient_id[p.inner_train]) & set(patient_id[p.inner_val])
            inner = np.sort(np.concatenate([p.inner_train, p.inner_val]))
            np.testing.assert_array_equal(inner, np.sort(p.train))
            assert len(p.inner_train) and len(p.inner_val)


def cyclic_shift(y: np.ndarray, rows: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """A copy of y with every label in `rows` moved to the next class (so all of them change)."""
    out = y.copy()
    out[rows] = (y[rows] + 1) % n_classes
    return out


def shuffle_between_patients(dataset, seed: int):
    """Each patient gets another patient's labels (a random derangement of patients).

    The donor's labels are put in random visit order (and repeated or cut to the
    recipient's number of visits): the within-patient correlation stays, but neither the
    features nor the maps, nor the visit order (days since onset), say anything about them.
    """
    rng = np.random.default_rng(seed)
    patients = np.unique(dataset.patient_id)
    rows = {p: np.flatnonzero(dataset.patient_id == p) for p in patients}
    order = rng.permutation(patients)
    y = dataset.y.copy()
    for recipient, donor in zip(order, np.roll(order, -1), strict=True):
        labels = rng.permutation(dataset.y[rows[donor]])
        y[rows[recipient]] = np.resize(labels, len(rows[recipient]))
    return dataset.with_labels(y)


def split_by_sample(y: np.ndarray, n_folds: int, seed: int) -> list[FoldSplit]:
    """The leak Rule 1 forbids: folds (and inner splits) by sample, not by patient."""
    outer = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    inner = StratifiedKFold(5, shuffle=True, random_state=seed)
    plans = []
    for k, (train, test) in enumerate(outer.split(np.zeros(len(y)), y)):
        fit, val = next(inner.split(train, y[train]))
        plans.append(FoldSplit(k, train, test, train[fit], train[val]))
    return plans


def mean_fold_kappas(dataset, plans, config) -> dict[str, float]:
    """Model -> mean over folds of the test-fold kappa (argmax of the test probabilities)."""
    per_fold: dict[str, list[float]] = {}
    for plan in plans:
        result = run_fold(dataset, plan, config)
        for m, p in result.probs.items():
            known = ~np.isnan(p).any(1)  # an image model predicts the visits with its image
            y, pred = dataset.y[plan.test][known], p[known].argmax(1)
            k = kappa(y, pred, len(config.classes), config.metrics.kappa_weights)
            per_fold.setdefault(m, []).append(k)
    return {m: float(np.mean(v)) for m, v in per_fold.items()}


# -- fixtures -----------------------------------------------------------------------------


# the rich cohort's folds take ~4x as long: part of the full suite, not the fast subset
@pytest.fixture(scope="module", params=["single", pytest.param("rich", marks=pytest.mark.slow)])
def fixed(request, tmp_path_factory):
    """The tiny experiment with its folds read from a folds.csv (cv.folds_file), and
    learned fusion weights, so the per-fold tests cover every choice made inside a fold;
    once per cohort of COHORTS."""
    cohort = COHORTS[request.param]
    prepared = prepare(tiny_config(*cohort))
    path = tmp_path_factory.mktemp("folds") / "folds.csv"
    folds_table(prepared.dataset, prepared.fold_of).to_csv(path, index=False)
    return prepare(tiny_config(*cohort, f"cv.folds_file={path}", "fusion.mode=learned"))


@pytest.fixture(scope="module")
def baseline(fixed, tmp_path_factory):
    """Fold FOLD of `fixed`, run once with a PhaseStore: (result, the store's folder)."""
    folder = tmp_path_factory.mktemp("baseline")
    store = PhaseStore(folder)
    return run_fold(fixed.dataset, fixed.plans[FOLD], fixed.config, store=store), folder


def _without_folds_file(config):
    return dataclasses.replace(config, cv=dataclasses.replace(config.cv, folds_file=None))


# -- Rule 1: folds split by patient --------------------------------------------------------


def test_prepared_folds_keep_every_patient_in_one_place(fixed, tmp_path):
    """Rule 1: the plans of a prepared experiment, computed or read from cv.folds_file, put
    no patient in two outer folds nor in both inner parts, and test every sample once."""
    computed = prepare(_without_folds_file(fixed.config))
    assert_patient_grouped(computed.plans, computed.fold_of, computed.dataset.patient_id)
    # a folds file is followed as written ...
    np.testing.assert_array_equal(fixed.fold_of, computed.fold_of)
    assert_patient_grouped(fixed.plans, fixed.fold_of, fixed.dataset.patient_id)
    # ... also one with another number of folds, dealt out by patient
    data = computed.dataset
    number = pd.factorize(data.patient_id)[0]
    path = tmp_path / "folds.csv"
    pd.DataFrame({"sample_id": data.sample_id, "fold": number % 4}).to_csv(path, index=False)
    dealt = prepare(tiny_config(f"cv.folds_file={path}"))
    assert dealt.config.cv.folds == len(dealt.plans) == 4
    np.testing.assert_array_equal(dealt.fold_of, [number % 4])
    assert_patient_grouped(dealt.plans, dealt.fold_of, data.patient_id)


def test_the_forest_inner_cv_is_grouped_by_patient(tmp_path):
    """Rule 1 (forest inner CV): features that identify the patient and labels that are
    per-patient noise. A forest remembers its training patients (in-sample accuracy ~1),
    so the out-of-fold probabilities that run_fold stores are at chance only if no patient
    is in both the fitting and the held-out part of the forest's inner CV."""
    prepared = prepare(tiny_config("data.modalities=[metadata]", "metadata.n_estimators=50"))
    config, data = prepared.config, prepared.dataset
    rng = np.random.default_rng(0)
    number = pd.factorize(data.patient_id)[0]
    n_patients = number.max() + 1
    noise = Dataset(
        sample_id=data.sample_id,
        patient_id=data.patient_id,
        y=rng.integers(0, 3, n_patients)[number],
        classes=data.classes,
        features=pd.DataFrame({"patient_code": rng.normal(size=n_patients)[number]}),
        images=data.images,
    )
    fold_of = outer_folds(noise.patient_id, noise.y, noise.classes, 3, config.cv.seed)
    hits_oof, hits_in_sample = [], []
    for plan in plan_folds(noise, fold_of, config):
        store = PhaseStore(tmp_path / str(plan.fold))
        run_fold(noise, plan, config, store=store)
        oof = store.load("forest")["oof"]
        # the full-fold forest predicting its own training rows (same seed): in-sample
        _, in_sample, _ = forest_probabilities(
            noise.features,
            noise.y,
            noise.patient_id,
            plan.train,
            plan.train,
            3,
            config.metadata,
            phase_seed(config.cv.seed, plan.fold, "forest"),
        )
        hits_oof += list(oof.argmax(1) == noise.y[plan.train])
        hits_in_sample += list(in_sample.argmax(1) == noise.y[plan.train])
    assert np.mean(hits_in_sample) > 0.95
    assert np.mean(hits_oof) < 0.55  # chance is 1/3; an ungrouped inner CV gives ~1


# -- Rule 2: nothing is fitted on, chosen by or seeded from the outer test fold -------------


def test_relabelling_a_test_fold_leaves_its_predictions_identical(fixed, baseline):
    """Rule 2: with the folds fixed (cv.folds_file), every label of fold FOLD's test samples
    is changed. The fold's plan (inner split) and everything its run returns (every model's
    test probabilities, learned fusion weights, early stopping histories, the stage 1/2
    choice) must be bit-identical: only the final evaluation may see the test labels."""
    result, _ = baseline
    plan = fixed.plans[FOLD]
    relabelled = fixed.dataset.with_labels(cyclic_shift(fixed.dataset.y, plan.test))
    assert (relabelled.y[plan.test] != fixed.dataset.y[plan.test]).all()
    replanned = plan_folds(relabelled, fixed.fold_of, fixed.config)[FOLD]
    for part in ("train", "test", "inner_train", "inner_val"):
        np.testing.assert_array_equal(getattr(replanned, part), getattr(plan, part))
    assert_same_result(run_fold(relabelled, replanned, fixed.config), result)


def test_relabelling_training_samples_does_change_the_predictions(fixed, baseline):
    """Rule 2, control: the comparison above has power. Changing the labels of some of the
    fold's TRAINING samples (every other training patient) changes every model's test
    probabilities, so identical predictions above are not a matter of insensitivity."""
    result, _ = baseline
    plan, data = fixed.plans[FOLD], fixed.dataset
    patients = np.unique(data.patient_id[plan.train])[::2]
    rows = plan.train[np.isin(data.patient_id[plan.train], patients)]
    changed = run_fold(data.with_labels(cyclic_shift(data.y, rows)), plan, fixed.config)
    for m in result.probs:
        assert not np.array_equal(changed.probs[m], result.probs[m]), m


# -- Rule 3: the fusion never trains on in-sample forest probabilities -----------------------


def test_fusion_trains_on_out_of_fold_forest_probabilities(fixed, baseline):
    """Rule 3: the forest probabilities run_fold gives the fusion for training rows are the
    patient-grouped out-of-fold ones (recomputed independently with the phase's seed), not
    the in-sample predictions of the full-fold forest; and the learned fusion weights are
    fit_fusion_weights of the inner-validation split's out-of-sample probabilities (forest
    OOF rows, pretrained CNN's inner_val predictions)."""
    result, folder = baseline
    config, data, plan = fixed.config, fixed.dataset, fixed.plans[FOLD]
    store = PhaseStore(folder)
    forest = store.load("forest")
    args = (data.features, data.y, data.patient_id, plan.train)
    seed = phase_seed(config.cv.seed, FOLD, "forest")
    oof, test, _ = forest_probabilities(*args, plan.test, 3, config.metadata, seed)
    _, in_sample, _ = forest_probabilities(*args, plan.train, 3, config.metadata, seed)
    np.testing.assert_array_equal(forest["oof"], oof)
    np.testing.assert_array_equal(forest["test"], test)
    np.testing.assert_array_equal(result.probs["metadata"], forest["test"])
    # the in-sample view is a different, overconfident thing
    y_train = data.y[plan.train]
    assert (in_sample.argmax(1) == y_train).mean() > (oof.argmax(1) == y_train).mean() + 0.15
    assert np.abs(in_sample - oof).max() > 0.3

    val_rows = np.searchsorted(plan.train, plan.inner_val)  # positions of inner_val in train
    np.testing.assert_array_equal(plan.train[val_rows], plan.inner_val)
    cnn_val = {m: store.load(f"pretrain_{m}")["val_probs"] for m in config.image_modalities}
    assert all(p.shape == (len(plan.inner_val), 3) for p in cnn_val.values())
    y_val = data.y[plan.inner_val]
    expected = fit_fusion_weights({"metadata": oof[val_rows], **cnn_val}, y_val)
    assert result.fusion_weights == pytest.approx(expected, abs=1e-9)
    leaky = fit_fusion_weights({"metadata": in_sample[val_rows], **cnn_val}, y_val)
    assert leaky["metadata"] > expected["metadata"] + 0.05  # power: in-sample would differ


# -- Rule 4: shuffled labels score at chance -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cohort", list(COHORTS))
def test_labels_shuffled_between_patients_score_at_chance_unless_folds_leak(cohort):
    """Rule 4: on labels shuffled between patients, every model's mean fold kappa is near 0
    with the real (patient-grouped) folds. Control on the SAME labels: folds by sample let
    the forest recognise a test visit's patient from its patient-level features (age, sex,
    HbA1c, ...) and recall that patient's training labels, so it scores clearly above
    chance: the check would catch a patient leak."""
    config = tiny_config(
        "data.synthetic.patients=200", "metadata.n_estimators=100", *COHORTS[cohort]
    )
    prepared = prepare(config)
    config = prepared.config
    shuffled = shuffle_between_patients(prepared.dataset, seed=0)
    fold_of = outer_folds(shuffled.patient_id, shuffled.y, shuffled.classes, 3, config.cv.seed)
    real = mean_fold_kappas(shuffled, plan_folds(shuffled, fold_of, config), config)
    assert set(real) == {*config.modalities, "fusion_stage1", "fusion"}
    for m, k in real.items():
        assert abs(k) < 0.2, (m, real)
    metadata_only = prepare(
        tiny_config(
            "data.synthetic.patients=200",
            "metadata.n_estimators=100",
            "data.modalities=[metadata]",
        )
    ).config
    leaky = mean_fold_kappas(shuffled, split_by_sample(shuffled.y, 3, seed=0), metadata_only)
    assert leaky["metadata"] > 0.25, (leaky, real)
    assert leaky["metadata"] > real["metadata"] + 0.2


# -- Rule 5: same config and seed, same results; resumed phases agree ----------------------


def test_the_same_config_and_seed_give_identical_fold_results(fixed, baseline):
    """Rule 5: a second run of the same fold (no checkpoints to reuse) returns exactly the
    same probabilities, validation kappas, histories, fusion weights and stage choice."""
    result, _ = baseline
    assert_same_result(run_fold(fixed.dataset, fixed.plans[FOLD], fixed.config), result)


def test_a_fold_resumed_after_the_forest_recomputes_the_rest_identically(fixed, baseline, tmp_path):
    """Rule 5: a fold that died after its forest phase (only forest.pt left) loads the forest,
    recomputes pretraining, stage 1 and stage 2 from their own seeds, and agrees exactly
    with the uninterrupted run."""
    result, folder = baseline
    store_dir = tmp_path / "store"
    shutil.copytree(folder, store_dir)
    kept = [p.name for p in store_dir.iterdir()]
    assert {"forest.pt", "pretrain_thermal_map.pt", "stage2.pt", "result.pt"} <= set(kept)
    for path in store_dir.iterdir():
        if path.name != "forest.pt":
            path.unlink()
    forest_written = (store_dir / "forest.pt").stat().st_mtime_ns
    again = run_fold(fixed.dataset, fixed.plans[FOLD], fixed.config, store=PhaseStore(store_dir))
    assert (store_dir / "forest.pt").stat().st_mtime_ns == forest_written  # loaded, not refit
    assert (store_dir / "pretrain_thermal_map.pt").exists()  # recomputed
    assert_same_result(again, result)
