"""Lane planning: how many folds run at once, and which lane runs which fold (a job: one
unit of one run; a wave may train several runs' units, as an ablation's combinations).

A lane is one Ray Train trainer (one worker with a fold's resources) that runs its folds
one after another; there are as many lanes as folds fit on the cluster at once. Fold k
always runs in lane k mod L, and lanes have deterministic run names, so a rerun with
--resume gives each unfinished fold the lane (and the checkpoints) it had before.
"""

from __future__ import annotations

import dataclasses
import math

import ray

from raycv.folds import FoldSplit


@dataclasses.dataclass(frozen=True)
class Job:
    """One (repeat, fold) unit of one run of a wave, as a lane runs it."""

    run: int  # which run of the wave (one run: 0; an ablation: one per combination)
    plan: FoldSplit
    key: str  # unique in the wave: the unit (fold0, r1-fold2), or <run tag>-<unit>


@dataclasses.dataclass
class Lane:
    name: str  # the trainer's run name: deterministic, so that a rerun resumes it
    jobs: list[Job]


def wave_jobs(plans_of_runs: list[list[FoldSplit]], tags: list[str]) -> list[Job]:
    """Every unit of every run, run after run; a run with an empty tag keys its units by
    their own names (what a single run's checkpoints have always been called)."""
    return [
        Job(i, plan, f"{tag}-{plan.unit}" if tag else plan.unit)
        for i, (plans, tag) in enumerate(zip(plans_of_runs, tags, strict=True))
        for plan in plans
    ]


def lane_count(
    config, n_folds: int, share: int = 1, joined: bool = False, total: dict | None = None
) -> int:
    """How many lanes: `resources.concurrent_folds` if set; else as many folds as the
    cluster runs at once (split `share` ways when Tune runs trials side by side) on a Ray
    raycv started, or every fold on a cluster it joined: there each fold's lane asks for
    its own resources, which is what makes an autoscaler add the nodes. total: the
    cluster's resources (default: asked from the running Ray)."""
    wanted = config.resources.concurrent_folds
    if wanted is None and joined:
        wanted = n_folds
    elif wanted is None:
        total = ray.cluster_resources() if total is None else total
        wanted = fold_slots(config.resources.per_fold, total) // share
    return max(1, min(n_folds, wanted))


def plan_lanes(jobs: list[Job], pending: set[str], n_lanes: int) -> list[Lane]:
    """The lanes that still have work: jobs[i] runs in lane i mod n_lanes (pending: the
    keys of the jobs not finished yet).

    The assignment depends on all jobs, not on which are pending, so a resumed run gives
    each unfinished fold the lane (and so the checkpoints) it had before.
    """
    lanes = []
    for i in range(n_lanes):
        mine = [job for job in jobs[i::n_lanes] if job.key in pending]
        if mine:
            lanes.append(Lane(f"lane{i}of{n_lanes}", mine))
    return lanes


def fold_slots(per, total: dict) -> int:
    """How many folds asking `per` (resources.per_fold) fit at once in `total` (Ray's
    cluster resources). The epsilon goes inside the floor: 1 CPU / 0.1 is 9.999... in
    floats, and `1 // 0.1` is 9.0."""
    slots = math.floor(total.get("CPU", 0) / per.cpu + 1e-9)
    if per.gpu > 0:
        slots = min(slots, math.floor(total.get("GPU", 0) / per.gpu + 1e-9))
    return max(1, slots)
