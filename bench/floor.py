"""The compute floor of a measured run: its folds' (or phases') own compute seconds, as
recorded by the run itself, packed perfectly on the machine's cores. A wall time's ratio
to its floor is what start-up, hand-overs and idle cores cost, whatever the compute
speed of the machine (which varies from run to run on a shared one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

# "[01:02] fold 3 start", "[01:02] repeat 1 fold 3 done up to stage1" (progress.py)
_EVENT = re.compile(r"^\[(\d+):(\d+)\] ((?:repeat \d+ )?fold \d+) (start|restart|done up to \w+)")


def floor_seconds(compute: list[float], cores: int, cores_per_task: float = 1.0) -> float:
    """Shortest wall in which these tasks (each using `cores_per_task`) could run on
    `cores` cores: their total core-seconds spread over the cores, but never less than the
    longest task."""
    if not compute:
        return 0.0
    return max(max(compute), sum(compute) * cores_per_task / cores)


def run_fold_seconds(run_dir: Path) -> list[float]:
    """Each fold's own seconds, from a run folder's summary.json."""
    summary = json.loads((run_dir / "summary.json").read_text())
    return [float(f["seconds"]) for f in summary["folds"]]


def shared_phase_seconds(tune_dir: Path) -> list[float]:
    """Per fold, the seconds of its shared phases (forest, pretraining, stage 1) computed
    before the trials: from start to 'done up to ...' in the tune folder's run.log."""
    started, ended = {}, {}
    for line in (tune_dir / "run.log").read_text().splitlines():
        m = _EVENT.match(line)
        if m:
            t, fold = int(m[1]) * 60 + int(m[2]), m[3]
            if m[4].startswith("done"):
                ended[fold] = t
            else:
                started.setdefault(fold, t)
    return [float(ended[k] - started[k]) for k in sorted(ended) if k in started]


def trial_fold_seconds(tune_dir: Path) -> list[float]:
    """Every trial's folds' own seconds (with reuse: loading the shared phases + stage 2)."""
    out = []
    for summary in sorted((tune_dir / "trials").glob("*/summary.json")):
        out += [float(f["seconds"]) for f in json.loads(summary.read_text())["folds"]]
    return out
