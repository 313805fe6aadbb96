"""Benchmark: repeated CV, 5 repeats x 3 folds of the default experiment, Ray against sequential.

    python bench/repeats.py [--repeats 5]

With 15 independent (repeat, fold) units the lanes stay full, so on a CPU machine Ray
should cost about what the sequential reference costs when the reference is given
every core: the goal is Ray (1 CPU per fold, one lane per core) within 1.1x of
sequential (every core for each fold in turn). Prints wall time, each run's compute
floor (its units' own seconds packed on the cores), peak memory and the pooled fusion
kappa (close, not equal: a fold's torch threads follow its CPUs, 2 against 1 here, and
threads change float rounding; with the same config both executors agree exactly).
Compare ratios from the same run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from executors import measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, python {platform.python_version()}")
    work = Path(tempfile.mkdtemp(prefix="raycv-repeats-bench-"))
    default = str(ROOT / "experiments/two_stage_fusion.yaml")
    repeats = f"cv.repeats={args.repeats}"

    def run(label: str, executor: str, cpu: float) -> dict:
        sets = ["--set", repeats, "--set", f"resources.per_fold.cpu={cpu}"]
        return measure(
            label, [default, "--output", str(work / label), "--executor", executor, *sets]
        )

    sequential = run("repeats_sequential", "sequential", cores)
    ray = run("repeats_ray", "ray", 1)
    print(
        f"\n{args.repeats} repeats x 3 folds: Ray {ray['wall_s']} s = "
        f"{ray['wall_s'] / sequential['wall_s']:.2f}x sequential ({sequential['wall_s']} s; "
        f"goal 1.1x); walls over their floors: Ray {ray['wall_over_floor']}x, sequential "
        f"{sequential['wall_over_floor']}x; peak memory {ray['peak_mib']} vs "
        f"{sequential['peak_mib']} MiB"
    )


if __name__ == "__main__":
    main()
