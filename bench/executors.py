"""Benchmark: the Ray executor against the sequential reference, on one machine, in one go.

    python bench/executors.py [--folds 4] [--skip-default]

1. The default experiment (experiments/two_stage_fusion.yaml) with --folds folds, with
   every fold given every core (resources.per_fold.cpu = cores): sequential, and on Ray
   (one fold at a time: one lane). Then on Ray with the default 1 CPU per fold (as many
   lanes as cores, 1-thread folds side by side), for comparison.
2. A tiny run (quickstart, 2 folds) both ways with the same config: Ray's fixed
   overhead = the difference.

Prints wall time, peak memory (the summed PSS of every process of the run, Ray's
included, sampled every 0.25 s), each run's compute floor (its folds' own seconds from
its summary.json, packed on the cores with the run's per_fold.cpu) with the wall's ratio
to it, and the ratios between runs. Goal: on CPU, Ray within 1.05x of sequential. Timings on shared machines are noisy:
compare ratios measured in the same run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from floor import floor_seconds, run_fold_seconds

ROOT = Path(__file__).resolve().parent.parent


def _pss_kib(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tagged_pss_mib(tag: str) -> float:
    """Summed PSS of every process whose environment carries the tag (Ray's included)."""
    total = 0
    needle = f"RAYCV_BENCH_TAG={tag}".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "environ").read_bytes():
                    total += _pss_kib(proc.name)
            except OSError:
                continue
    return total / 1024


def measure(label: str, args: list[str]) -> dict:
    """Run `raycv run ...` in a fresh process (and, for Ray, a fresh private Ray)."""
    tag = f"{label}-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, "RAYCV_BENCH_TAG": tag}
    env.pop("RAY_ADDRESS", None)
    peak = 0.0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tagged_pss_mib(tag))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    proc = subprocess.run(
        [sys.executable, "-m", "raycv", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout}\n{proc.stderr}")
    out = Path(args[args.index("--output") + 1])
    summary = json.loads((out / "summary.json").read_text())
    fusion = summary["models"].get("fusion", {}).get("kappa_mean")
    cpu = yaml.safe_load((out / "config.yaml").read_text())["resources"]["per_fold"]["cpu"]
    floor = floor_seconds(run_fold_seconds(out), os.cpu_count(), cpu)
    row = {
        "run": label,
        "wall_s": round(wall, 1),
        "floor_s": round(floor, 1),
        "wall_over_floor": round(wall / floor, 2),
        "peak_mib": round(peak),
        "fusion_kappa": fusion,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--skip-default", action="store_true", help="only the tiny-run overhead")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="GPU runs instead: sequential on the GPU, Ray with one GPU per fold, and Ray with "
        "every fold packed on one GPU (resources.per_fold.gpu = 1/folds)",
    )
    args = parser.parse_args()
    cores = os.cpu_count()
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"{cores} cores, python {platform.python_version()}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="raycv-bench-"))
    rows = {}

    def run(label, experiment, *sets, executor="ray"):
        sets = [s for kv in sets for s in ("--set", kv)]
        rows[label] = measure(
            label,
            [str(ROOT / experiment), "--output", str(work / label), "--executor", executor, *sets],
        )

    run.rows = rows

    if args.gpu:
        gpu_runs(run, args.folds, cores)
        return
    tiny = "experiments/quickstart.yaml"
    run(
        "tiny_sequential",
        tiny,
        "cv.folds=2",
        f"resources.per_fold.cpu={cores}",
        executor="sequential",
    )
    run("tiny_ray", tiny, "cv.folds=2", f"resources.per_fold.cpu={cores}")
    if not args.skip_default:
        default, folds = "experiments/two_stage_fusion.yaml", f"cv.folds={args.folds}"
        all_cores = f"resources.per_fold.cpu={cores}"
        run("default_sequential", default, folds, all_cores, executor="sequential")
        run("default_ray", default, folds, all_cores)
        run("default_ray_1cpu", default, folds, "resources.per_fold.cpu=1")

    print("\nsummary")
    overhead = rows["tiny_ray"]["wall_s"] - rows["tiny_sequential"]["wall_s"]
    print(
        f"  tiny run: Ray's fixed overhead {overhead:.1f} s "
        f"({rows['tiny_ray']['wall_s']} s vs {rows['tiny_sequential']['wall_s']} s)"
    )
    if not args.skip_default:
        base = rows["default_sequential"]
        for label in ("default_ray", "default_ray_1cpu"):
            r = rows[label]
            print(
                f"  {label}: wall {r['wall_s']} s = {r['wall_s'] / base['wall_s']:.2f}x "
                f"sequential ({base['wall_s']} s; goal 1.05x); {r['wall_over_floor']}x its "
                f"own folds' floor ({r['floor_s']} s; sequential: {base['wall_over_floor']}x "
                f"of {base['floor_s']} s); peak memory {r['peak_mib']} MiB vs "
                f"{base['peak_mib']} MiB"
            )


def gpu_runs(run, folds: int, cores: int) -> None:
    import torch

    n_gpus = torch.cuda.device_count()
    if n_gpus == 0:
        sys.exit("--gpu: no CUDA device visible")
    default, k = "experiments/two_stage_fusion.yaml", f"cv.folds={folds}"
    cpu = max(1, cores // folds)
    run(
        "gpu_sequential",
        default,
        k,
        "resources.per_fold.gpu=1",
        f"resources.per_fold.cpu={cores}",
        executor="sequential",
    )
    run(
        "gpu_ray_one_per_gpu",
        default,
        k,
        "resources.per_fold.gpu=1",
        f"resources.per_fold.cpu={cpu}",
    )
    run(
        "gpu_ray_packed",
        default,
        k,
        f"resources.per_fold.gpu={1 / folds:g}",
        f"resources.per_fold.cpu={cpu}",
    )
    base = run.rows["gpu_sequential"]["wall_s"]
    print(f"\nsummary ({n_gpus} GPU(s), {folds} folds)")
    for label in ("gpu_ray_one_per_gpu", "gpu_ray_packed"):
        wall = run.rows[label]["wall_s"]
        print(f"  {label}: {wall} s = {base / wall:.2f}x faster than sequential ({base} s)")


if __name__ == "__main__":
    main()
