"""Phase checkpoints of one fold: a folder of `<phase>.pt` files, written atomically.

A fold saves each finished phase here; a rerun (a retried worker, `--resume`) loads
the phases that exist and recomputes only the rest. Executors decide where the folder
lives and what else happens on save (the Ray executor reports a Train checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch


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

    def has(self, phase: str) -> bool:
        return self.path(phase).exists() or phase in self.shared and self.shared[phase].exists()

    def load(self, phase: str) -> dict | None:
        for path in (self.path(phase), self.shared.get(phase)):
            if path is not None and path.exists():
                return torch.load(path, map_location="cpu", weights_only=False)
        return None

    def save(self, phase: str, state: dict) -> None:
        tmp = self.path(phase).with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path(phase))  # a killed writer never leaves half a checkpoint
        if self.on_save is not None:
            self.on_save(phase)
