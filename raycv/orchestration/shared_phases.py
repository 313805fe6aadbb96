"""Phases computed once per (repeat, fold) unit and loaded by many runs: every trial of a
search (tune.py), every combination of an ablation (ablate.py).

A phase's files live in a content-keyed cache (reuse.py: the settings the phase depends
on, the dataset, the folds, raycv's version), so a second search or ablation on the same
data and settings finds them. Missing ones are computed by running the folds up to the
last shared phase, with whichever executor the caller uses, into a work folder whose
finished phases a resumed run keeps.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from raycv.orchestration import reuse
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.runfolder import RunFolder

# Runs `prepared`'s folds into `folder` up to phase `until`, loading the files in `shared`
# ({unit: {stem: path}}) instead of computing them.
RunUntil = Callable[[Prepared, RunFolder, str, dict[str, dict[str, Path]]], object]


def shared_phase_files(
    prepared: Prepared, phases: list[str], cache: Path
) -> dict[str, dict[str, Path]]:
    """{unit: {file stem: path in the cache}} of `phases` for every unit of `prepared`."""
    config = prepared.config
    fingerprint = prepared.dataset.fingerprint()
    keys = {p: reuse.phase_key(p, config, fingerprint, prepared.fold_of) for p in phases}
    return {
        plan.unit: {
            stem: path
            for p in phases
            for stem, path in reuse.phase_files(
                p, reuse.stems(p, config.image_modalities), cache, keys[p], plan.unit
            ).items()
        }
        for plan in prepared.plans
    }


@dataclasses.dataclass
class SharedWork:
    """The shared phases still to compute, and where."""

    todo: Prepared  # the units some of whose files are missing
    work: RunFolder  # where they are computed (finished phases kept by a resumed run)
    loaded: dict[str, dict[str, Path]]  # per unit to do: its files there already


def plan_shared(
    prepared: Prepared,
    owner: RunFolder,
    board: ProgressBoard,
    phases: list[str],
    cache: Path,
    *,
    resume: bool,
    before: str,
) -> tuple[dict[str, dict[str, Path]], SharedWork | None]:
    """The shared `phases`' files of every unit ({unit: {stem: path}}), and what is left
    to compute of them (None: every one is cached). They are computed in `owner`'s
    shared/ (kept by a resumed run, so phases it finished before are not computed again).
    before: what waits on them, in words."""
    workdir = owner.path / "shared"
    files = shared_phase_files(prepared, phases, cache)
    missing = [k for k, f in files.items() if not all(p.exists() for p in f.values())]
    if not missing:
        board.say(f"raycv: reusing cached {', '.join(phases)} of every fold ({cache})")
        return files, None
    board.say(f"raycv: computing {', '.join(phases)} once per fold before {before}")
    todo = dataclasses.replace(prepared, plans=[p for p in prepared.plans if p.unit in missing])
    if not resume:  # stale partial work of an earlier run that was not resumed
        shutil.rmtree(workdir, ignore_errors=True)
    work = RunFolder(workdir)
    work.path.mkdir(parents=True, exist_ok=True)
    # what is there already, in the cache or finished in the work folder, is loaded
    loaded = {k: _found(files[k], work.fold_dir(k)) for k in missing}
    return files, SharedWork(todo, work, loaded)


def compute_shared(
    prepared: Prepared,
    owner: RunFolder,
    board: ProgressBoard,
    phases: list[str],
    cache: Path,
    run_until: RunUntil,
    *,
    resume: bool,
    before: str,
) -> dict[str, dict[str, Path]]:
    """Compute the shared `phases` once per unit (or find them cached), running the folds
    up to the last phase with `run_until`; {unit: {stem: path}} (plan_shared)."""
    files, left = plan_shared(prepared, owner, board, phases, cache, resume=resume, before=before)
    if left is None:
        return files
    # PHASE_DEPENDS lists phases in running order
    run_until(left.todo, left.work, phases[-1], left.loaded)
    for plan in left.todo.plans:
        into_cache(left.work.fold_dir(plan.unit), files[plan.unit])
    return files


def into_cache(fold_dir: Path, files: dict[str, Path]) -> None:
    """Copy one unit's computed shared phases from its work folder `fold_dir` to their
    places in the cache ({stem: path}), keeping any already there."""
    for stem, target in files.items():
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(fold_dir / f"{stem}.pt", target)


def _found(cached: dict[str, Path], work_dir: Path) -> dict[str, Path]:
    """{stem: path} of a unit's shared files that exist: cached, or finished in work_dir."""
    found = {}
    for stem, path in cached.items():
        for candidate in (path, work_dir / f"{stem}.pt"):
            if candidate.exists():
                found[stem] = candidate
                break
    return found
