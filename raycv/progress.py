"""Progress of a running cross-validation: which fold is in which phase, its latest kappa.

The terminal gets one compact line per phase change (and at most one every few seconds
otherwise); the run folder's `run.log` gets every event. Executors feed `update` from
wherever the folds run (in-process, or via a Ray actor).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TextIO


class ProgressBoard:
    def __init__(
        self,
        n_folds: int,
        log_path: Path | None = None,
        stream: TextIO | None = None,  # None: this process's stderr; quiet=True: none
        every_seconds: float = 10.0,
        quiet: bool = False,
    ):
        self.n_folds = n_folds
        self.state: dict[int, str] = {k: "waiting" for k in range(n_folds)}
        self.stream = None if quiet else (stream or sys.stderr)
        self.every = every_seconds
        self.started = time.time()
        self.last_print = 0.0
        self.log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115

    def _elapsed(self) -> str:
        s = int(time.time() - self.started)
        return f"{s // 60:02d}:{s % 60:02d}"

    def update(self, fold: int, phase: str, epoch: int, row: dict) -> None:
        branch = row.get("branch")
        where = f"{phase}({branch})" if phase == "pretrain" and branch else phase
        val_k = row.get("val_kappa")
        detail = f" ep {epoch}" if epoch >= 0 else ""
        if val_k is not None and not (isinstance(val_k, float) and math.isnan(val_k)):
            detail += f" val_kappa {val_k:.3f}"
        if row.get("note"):
            detail += f" ({row['note']})"
        phase_changed = not self.state.get(fold, "").startswith(where)
        self.state[fold] = f"{where}{detail}"
        self.event(f"fold {fold} {where}{detail}")
        if phase_changed or time.time() - self.last_print >= self.every:
            self.show()

    def fold_done(self, fold: int, message: str = "done") -> None:
        self.state[fold] = message
        self.event(f"fold {fold} {message}")
        self.show()

    def event(self, text: str) -> None:
        if self.log:
            self.log.write(f"[{self._elapsed()}] {text}\n")

    def say(self, text: str) -> None:
        """A message for both the terminal and the log."""
        self.event(text)
        if self.stream:
            print(text, file=self.stream, flush=True)

    def show(self) -> None:
        self.last_print = time.time()
        if self.stream:
            folds = " | ".join(f"f{k} {self.state[k]}" for k in sorted(self.state))
            print(f"[{self._elapsed()}] {folds}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.log:
            self.log.close()
            self.log = None
