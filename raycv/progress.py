"""Progress of a running cross-validation: which fold is in which phase, its latest kappa.

The terminal gets a status line per phase change and at least one every 10 s while
folds run or wait (`due` / `show`, which the executors' wait loops call), and one line
per finished fold; a finished fold then counts in the status line instead of being
listed again. The run folder's `run.log` gets every event. Executors feed `update` from
wherever the folds run (in-process, or via a Ray actor).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TextIO

from raycv.phases import PRETRAIN
from raycv.units import unit_label, unit_short

WAITING = "waiting"  # the state of a fold nothing has been heard from yet


class ProgressBoard:
    def __init__(
        self,
        units: list[str],  # the run's units of work (fold<k>, r<i>-fold<k>), in order
        log_path: Path | None = None,
        stream: TextIO | None = None,  # None: this process's stderr; quiet=True: none
        every_seconds: float = 10.0,
        quiet: bool = False,
        started: float | None = None,  # when the run began (default: now): the log's clock
    ):
        self.n_folds = len(units)
        self.state: dict[str, str] = dict.fromkeys(units, WAITING)
        self.finished: set[str] = set()
        self.stream = None if quiet else (stream or sys.stderr)
        self.every = every_seconds
        self.started = started or time.time()
        self.last_print = 0.0
        self.log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115

    def _elapsed(self) -> str:
        s = int(time.time() - self.started)
        return f"{s // 60:02d}:{s % 60:02d}"

    def update(self, fold: str, phase: str, epoch: int, row: dict) -> None:
        branch = row.get("branch")
        where = f"{phase}({branch})" if phase == PRETRAIN and branch else phase
        val_k = row.get("val_kappa")
        detail = f" ep {epoch}" if epoch >= 0 else ""
        if val_k is not None and not (isinstance(val_k, float) and math.isnan(val_k)):
            detail += f" val_kappa {val_k:.3f}"
        if row.get("note"):
            detail += f" ({row['note']})"
        phase_changed = not self.state.get(fold, "").startswith(where)
        self.state[fold] = f"{where}{detail}"
        self.event(f"{unit_label(fold)} {where}{detail}")
        if phase_changed or self.due():
            self.show()

    def fold_done(self, fold: str, message: str = "done", ok: bool = True) -> None:
        """A fold has ended: said once; a finished one (ok) is then only counted, a
        failed one stays listed with its error."""
        self.state[fold] = message
        if ok:
            self.finished.add(fold)
        self.event(f"{unit_label(fold)} {message}")
        if self.stream:
            print(
                f"[{self._elapsed()}] {unit_label(fold)} {message} "
                f"({len(self.finished)}/{self.n_folds} folds done)",
                file=self.stream,
                flush=True,
            )
        self.last_print = time.time()

    def is_waiting(self, fold: str) -> bool:
        """Nothing heard from the fold yet: its lane has not started it."""
        return self.state.get(fold) == WAITING

    def event(self, text: str) -> None:
        if self.log:
            self.log.write(f"[{self._elapsed()}] {text}\n")

    def say(self, text: str) -> None:
        """A message for both the terminal and the log."""
        self.event(text)
        if self.stream:
            print(text, file=self.stream, flush=True)

    def due(self) -> bool:
        """Whether the status line is due again (every `every_seconds`)."""
        return time.time() - self.last_print >= self.every

    def status_line(self, note: str = "") -> str:
        active = [f"{unit_short(k)} {s}" for k, s in self.state.items() if k not in self.finished]
        parts = [f"{len(self.finished)}/{self.n_folds} folds done", *active]
        if note:
            parts.append(note)
        return f"[{self._elapsed()}] " + " | ".join(parts)

    def show(self, note: str = "") -> None:
        """Print the status line; `note` adds what the executor knows (e.g. resources)."""
        self.last_print = time.time()
        if note:
            self.event(note)
        if self.stream:
            print(self.status_line(note), file=self.stream, flush=True)

    def close(self) -> None:
        if self.log:
            self.log.close()
            self.log = None
