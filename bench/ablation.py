"""Benchmark: `raycv ablate` of metadata, thermal_map and depth_map (7 combinations) on the
default experiment, against one `raycv run` of all three and against 7 separate runs.

    python bench/ablation.py [--skip-separate]

The forest and each image model's pretraining are the same in every combination that
holds them, so the ablation computes them once per fold: the goal is the whole ablation
within 1.3x the single run of all three modalities (7 separate runs cost several times
that). Each command runs in a fresh process with a fresh private Ray, on an empty cache.
Prints each wall, the ratios and the pooled fusion kappas; run it on an idle machine and
compare ratios from the same run only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = str(ROOT / "experiments/two_stage_fusion.yaml")
MODALITIES = ["metadata", "thermal_map", "depth_map"]


def timed(label: str, command: str, config_args: list[str], out: Path) -> float:
    """Seconds of `raycv <command> ...` in a fresh process (its own private Ray)."""
    env = {**os.environ}
    env.pop("RAY_ADDRESS", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "raycv", command, DEFAULT, *config_args, "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"{label}: {wall:.1f} s", flush=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-separate", action="store_true", help="no 7 separate runs")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    all_three = ["--set", f"data.modalities=[{','.join(MODALITIES)}]"]
    # each measured command gets a folder of its own, so none finds another's cached phases
    work = Path(tempfile.mkdtemp(prefix="raycv-ablation-bench-"))
    single = timed("run of all three", "run", all_three, work / "run" / "out")
    ablation = timed("ablate (7 combinations)", "ablate", all_three, work / "ablate" / "out")
    summary = json.loads((work / "ablate" / "out" / "summary.json").read_text())
    print(
        f"\nablation {ablation:.1f} s = {ablation / single:.2f}x the run of all three "
        f"({single:.1f} s; goal 1.3x)"
    )
    if not args.skip_separate:
        separate = 0.0
        for size in range(1, 4):
            for combo in itertools.combinations(MODALITIES, size):
                name = "+".join(combo)
                subset = ["--set", f"data.modalities=[{','.join(combo)}]"]
                separate += timed(f"run {name}", "run", subset, work / name / "out")
        print(
            f"7 separate runs {separate:.1f} s = {separate / single:.2f}x the run of all "
            f"three; the ablation is {ablation / separate:.2f}x them"
        )
    for name, row in summary["combinations"].items():
        print(f"  {name:32s} kappa {row['kappa_mean']:.3f} pooled {row['kappa_pooled']:.3f}")
    print(f"  nested estimate of choosing the best: {summary['nested_kappa']:.3f}")


if __name__ == "__main__":
    main()
