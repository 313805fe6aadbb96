"""Phase checkpoints of one fold: a folder of `<phase>.pt` files, written atomically.

A fold saves each finished phase here; a rerun (a retried worker, `--resume`) loads
the phases that exist and recomputes only the rest. Executors decide where the folder
lives and what else happens on save (the Ray executor reports a Train checkpoint).

A run folder is data, not code: run folders travel through S3 and cluster file
systems, and a pickle runs whatever a tampered file asks for when it is loaded. So a
phase file holds only tensors, numbers, strings, bytes, lists and dicts, and is read
with `torch.load(weights_only=True)`, which refuses anything else; numpy arrays travel
as tensors (exact, dtype kept) and come back as arrays. The fitted forest travels as
skops bytes (models.forest), also loaded without running code.

torch is imported where a file is written or read, not with this module: a search's
driver and trial processes pass stores around but never open one, and torch would cost
each ~1 s of its start.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from raycv.errors import RaycvError

FORMAT = "raycv-phase/1"  # what a phase file says it is; files without it predate it
_ARRAY = "__ndarray__"  # marks a numpy array stored as a tensor


class CheckpointError(RaycvError):
    """A checkpoint that cannot be used: unreadable, not raycv's, or from before the
    no-pickle format."""


class PhaseStore:
    def __init__(
        self,
        directory: str | Path,
        on_save: Callable[[str], None] | None = None,
        shared: dict[str, Path] | None = None,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.on_save = on_save
        # phase -> a file computed elsewhere that this fold may load (Tune's reuse cache)
        self.shared = dict(shared or {})

    def path(self, phase: str) -> Path:
        return self.directory / f"{phase}.pt"

    def load(self, phase: str) -> dict | None:
        for path in (self.path(phase), self.shared.get(phase)):
            if path is not None and path.exists():
                return load_phase_file(path)
        return None

    def save(self, phase: str, state: dict) -> None:
        import torch

        tmp = self.path(phase).with_suffix(".pt.tmp")
        torch.save({"format": FORMAT, "state": _encode(state)}, tmp)
        os.replace(tmp, self.path(phase))  # a killed writer never leaves half a checkpoint
        if self.on_save is not None:
            self.on_save(phase)


def load_phase_file(path: Path) -> dict:
    """One phase file -> its state; CheckpointError (one line, naming the file) if it is
    not a raycv phase file in the no-pickle format. Never runs code from the file."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused to load ({reason[:160]}): it holds more than tensors and plain "
            "values, so it was written by raycv before 0.2 (pickled checkpoints) or altered; "
            "recompute the run with --overwrite"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a raycv phase file (format {FORMAT!r} expected); "
            "recompute the run with --overwrite"
        )
    return _decode(saved["state"])


def _encode(obj):
    """numpy -> tensors (marked) and Python scalars, recursively; everything else as is."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:  # never stored: would need pickle
            raise TypeError(f"a phase state holds an object array of shape {obj.shape}")
        import torch

        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj):
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            return obj[_ARRAY].numpy()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj
