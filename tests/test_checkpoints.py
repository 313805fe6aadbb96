"""A run folder is data, not code: phase files and the stored forest load without
running anything from the file, and whatever is not what it should be is refused in one
line naming the file."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from sklearn.preprocessing import FunctionTransformer

from raycv.checkpoints import CheckpointError, PhaseStore
from raycv.errors import RaycvError
from raycv.models.forest import dump_forest, load_forest
from raycv.phase_states import ForestState, PretrainState, Stage1State, Stage2State
from raycv.phases import FOREST, STAGE1, STAGE2, pretrain_file


class RunsCode:
    """A pickle that creates a folder when it is unpickled: the side effect to look for."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_phase_state_round_trips_exactly(tmp_path):
    store = PhaseStore(tmp_path)
    state = {
        "probs": np.random.default_rng(0).random((5, 3)),
        "index": np.arange(5, dtype=np.int64),
        "mask": np.array([True, False]),
        "weights": {"layer.weight": torch.randn(2, 2)},
        "history": [{"phase": "pretrain", "epoch": 0, "val_kappa": float("nan")}],
        "score": np.float64(0.25),
        "model": b"\x00bytes",
        "kept": None,
    }
    store.save("pretrain_thermal_map", state)
    back = store.load("pretrain_thermal_map")
    np.testing.assert_array_equal(back["probs"], state["probs"])
    assert back["probs"].dtype == np.float64 and back["index"].dtype == np.int64
    np.testing.assert_array_equal(back["mask"], state["mask"])
    torch.testing.assert_close(back["weights"]["layer.weight"], state["weights"]["layer.weight"])
    assert back["score"] == 0.25 and type(back["score"]) is float
    assert back["model"] == b"\x00bytes" and back["kept"] is None
    assert back["history"][0]["phase"] == "pretrain"


def test_a_checkpoint_replaced_by_code_runs_none_of_it_and_is_refused(tmp_path):
    store = PhaseStore(tmp_path / "fold0")
    store.save("stage2", {"state": {}})
    marker = tmp_path / "code-ran"
    torch.save({"format": "raycv-phase/1", "state": RunsCode(str(marker))}, store.path("stage2"))
    with pytest.raises(CheckpointError) as info:
        store.load("stage2")
    assert not marker.exists()  # nothing from the file ran
    message = str(info.value)
    assert "\n" not in message and str(store.path("stage2")) in message
    # power: an unguarded load of the same file does run it
    with open(store.path("stage2"), "rb") as f:
        torch.load(f, weights_only=False)
    assert marker.exists()


def test_a_checkpoint_from_before_the_no_pickle_format_says_how_to_recompute(tmp_path):
    store = PhaseStore(tmp_path)
    # what raycv 0.1 wrote: numpy arrays pickled inside torch.save
    torch.save({"oof": np.zeros((2, 3)), "test": np.zeros((1, 3))}, store.path("forest"))
    with pytest.raises(CheckpointError, match="--overwrite") as info:
        store.load("forest")
    assert str(store.path("forest")) in str(info.value)
    # a file of plain values that is not a raycv phase file
    torch.save({"something": 1}, store.path("stage1"))
    with pytest.raises(CheckpointError, match="not a raycv phase file"):
        store.load("stage1")


def test_a_stored_forest_with_an_untrusted_type_is_refused_before_loading():
    untrusted = dump_forest(FunctionTransformer(os.getcwd))
    with pytest.raises(RaycvError, match="does not trust") as info:
        load_forest(untrusted, "runs/x/checkpoints/fold0/forest.pt")
    assert "posix.getcwd" in str(info.value) or "os.getcwd" in str(info.value)
    with pytest.raises(RaycvError, match="cannot read the stored forest"):
        load_forest(b"not a skops file", "forest.pt")


def test_phase_records_are_the_dicts_phase_files_hold(tmp_path):
    """A phase's record saves exactly the dict its file held before records (same keys,
    same order, same bytes on disk), and reads a file written by that code."""
    rng = np.random.default_rng(0)
    weights = {"layer.weight": torch.randn(2, 2), "layer.bias": torch.zeros(2)}
    rows = [{"branch": "thermal_map", "phase": "pretrain", "epoch": 0, "val_kappa": 0.5}]
    written_before = {
        FOREST: (
            ForestState,
            {"oof": rng.random((4, 3)), "test": rng.random((2, 3)), "model": b"x"},
        ),
        pretrain_file("thermal_map"): (
            PretrainState,
            {
                "state": weights,
                "history": rows,
                "best_score": 0.5,
                "val_probs": rng.random((3, 3)),
                "test_probs": rng.random((2, 3)),
            },
        ),
        STAGE1: (Stage1State, {"state": weights, "score": 0.4, "history": rows}),
        STAGE2: (Stage2State, {"state": weights, "score": 0.45, "kept": True, "history": []}),
    }
    old, new = PhaseStore(tmp_path / "old"), PhaseStore(tmp_path / "new")
    for phase, (kind, state) in written_before.items():
        old.save(phase, state)
        record = kind.from_dict(old.load(phase))
        assert list(record.to_dict()) == list(state)
        new.save(phase, record.to_dict())
        assert new.path(phase).read_bytes() == old.path(phase).read_bytes(), phase
    forest = ForestState.from_dict({"oof": np.zeros((1, 3)), "test": np.zeros((1, 3))})
    assert forest.model is None  # a forest file without the fitted forest: predict says so
    with pytest.raises(
        CheckpointError,
        match=r"Stage2State phase file holds \['history', 'score', 'state'\], expected",
    ):
        Stage2State.from_dict({"state": weights, "score": 0.1, "history": []})


def test_the_phase_names_are_the_strings_run_folders_hold():
    from raycv.phases import RESULT, TRAINED
    from raycv.seeds import PHASES

    assert (FOREST, STAGE1, STAGE2, RESULT) == ("forest", "stage1", "stage2", "result")
    assert TRAINED == ("pretrain", "stage1", "stage2") and pretrain_file("x") == "pretrain_x"
    # the seeds' ids, so every phase keeps its seed
    assert PHASES == {"outer": 0, "inner": 1, "forest": 2, "pretrain": 3, "stage1": 4, "stage2": 5}
