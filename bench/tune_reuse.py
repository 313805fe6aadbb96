"""Benchmark: a 6-trial, 3-fold stage 2 search with and without reuse of shared phases.

    python bench/tune_reuse.py [--trials 6] [--experiment experiments/tune_stage2.yaml]

Both searches start from an empty phase cache, use the default epochs and the same
seeds, on the same machine, one after the other. With reuse, forest, pretraining and
stage 1 are computed once per fold and the trials only run stage 2; without it every
trial computes every phase. Prints the wall ratio, and the reused search's compute floor
from that run's own timings (the shared phases' and the trials' fold seconds, packed on
the cores) with the wall's ratio to it. Goal: the reused search within 1.15x of its floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from floor import floor_seconds, shared_phase_seconds, trial_fold_seconds

ROOT = Path(__file__).resolve().parent.parent


def search(label: str, experiment: str, work: Path, *sets: str) -> tuple[float, Path]:
    out = work / label
    args = [sys.executable, "-m", "raycv", "tune", str(ROOT / experiment), "--output", str(out)]
    for kv in (f"tune.cache_dir={work / (label + '-cache')}", *sets):
        args += ["--set", kv]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    print(
        json.dumps(
            {
                "run": label,
                "wall_s": round(wall, 1),
                "best_outer_kappa": round(summary["best"]["outer_kappa_mean"], 4),
                "nested_kappa": round(summary["nested"]["kappa_mean"], 4),
            }
        ),
        flush=True,
    )
    return wall, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--experiment", default="experiments/tune_stage2.yaml")
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="raycv-tune-bench-"))
    common = (f"tune.num_samples={args.trials}", "cv.folds=3")
    reused, reused_dir = search("with_reuse", args.experiment, work, *common, "tune.reuse=true")
    naive, _ = search("without_reuse", args.experiment, work, *common, "tune.reuse=false")
    cores = os.cpu_count()
    shared, trials = shared_phase_seconds(reused_dir), trial_fold_seconds(reused_dir)
    # a trial's fold may run beside another fold's shared phases (fold_tasks.py): one
    # floor over all of them (never more than the shared phases' floor then the trials')
    floor = floor_seconds(shared + trials, cores)
    print(
        f"\nsummary: with reuse {reused:.0f} s, without {naive:.0f} s: "
        f"reuse costs {reused / naive:.2f}x the naive search ({naive / reused:.1f}x faster)"
    )
    print(
        f"  reused search's compute floor {floor:.0f} s (shared phases {sum(shared):.0f} "
        f"core-s over {len(shared)} folds, stage 2 {sum(trials):.0f} core-s over "
        f"{len(trials)} trial folds, / {cores} cores): wall = {reused / floor:.2f}x its floor "
        f"(goal: 1.15x)"
    )


if __name__ == "__main__":
    main()
