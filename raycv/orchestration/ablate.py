"""`raycv ablate`, the driver: every combination of modalities as a complete run on the same
folds, the phases they share computed once.

A fold's forest and a fold's pretraining of an image modality are the same in every
combination that holds them (they depend on neither the other branches nor the fusion),
so they are computed once per (repeat, fold) unit, content-keyed in the same cache as a
search's (shared_phases.py), and each combination loads them: what is left per
combination is its fusion's two stages. A one-modality combination has no fusion, so it
only gathers its model's saved predictions.

The ablation folder holds one ordinary run folder per combination (combos/<name>/,
started and finished as any run: lifecycle.py), then the tables that put them side by
side (raycv.ablation). A killed ablation resumed with --resume keeps the shared phases
and every finished combination and fold. Compute only: the caller writes the report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from raycv.ablation import COMBOS, AblationSummary, ablation_summary
from raycv.combinations import Combination, combination_config, combinations, reference
from raycv.config import ConfigError
from raycv.errors import RunFolderError
from raycv.lifecycle import finish_run, start_run
from raycv.phases import FOREST, PRETRAIN
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.provenance import now, provenance
from raycv.results import FoldResult
from raycv.runfolder import RESUMABLE_CHANGES, RunFolder


def check_ablation(config) -> tuple[list[Combination], Combination]:
    """The combinations and the reference, refused up front by name where unusable."""
    if config.data.missing_images == "drop":
        # each combination would drop the visits lacking its own images: different
        # cohorts, so no longer the same folds and visits to compare on
        raise ConfigError(
            "raycv ablate compares combinations on the same visits, but "
            "data.missing_images=drop gives each combination its own cohort; use mask "
            "(each model predicts the visits it has images for) or refuse"
        )
    combos = combinations(config)
    return combos, reference(config, combos)


def for_combination(prepared: Prepared, combo: Combination) -> Prepared:
    """The prepared run of one combination: its config, the same folds, the same visits
    with only its own modalities' images (what `raycv run` of its config.yaml loads)."""
    config = combination_config(prepared.config, combo)
    images = {m: prepared.dataset.images[m] for m in config.image_modalities}
    dataset = dataclasses.replace(prepared.dataset, images=images)
    return dataclasses.replace(prepared, config=config, dataset=dataset)


def default_output(config) -> Path:
    return Path("runs") / f"{config.name}-ablation"


# Runs one prepared run's folds into a folder: (prepared, folder, board, until, shared)
# -> results (none with until). The sequential executor, or Ray lanes on a connected Ray.
RunFolds = Callable[
    [Prepared, RunFolder, ProgressBoard, "str | None", dict[str, dict[str, Path]]],
    list[FoldResult],
]
# Opens an executor for the whole ablation: (prepared, folder, board) -> a context manager
# yielding its RunFolds (Ray is started once, the dataset put once, for every combination).
OpenRunner = Callable[[Prepared, RunFolder, ProgressBoard], AbstractContextManager[RunFolds]]


def sequential_runner(prepared: Prepared, folder: RunFolder, board: ProgressBoard):
    """The reference executor for an ablation: every fold in this process."""
    from raycv.orchestration.sequential import run_sequential

    def run(run_prepared, run_folder, run_board, until, shared):
        return run_sequential(run_prepared, run_folder, run_board, shared=shared, until=until)

    return nullcontext(run)


@dataclass
class AblationOutcome:
    folder: RunFolder  # written; still open for the report (publish.py)
    summary: AblationSummary


def ablate(
    prepared: Prepared,
    open_runner: OpenRunner,
    executor_name: str,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    cache: Path | None = None,
    stream=None,
) -> AblationOutcome:
    """Run every combination of `prepared` (the whole cohort, every modality) on its folds;
    write combos/<name>/, combinations.csv, comparisons.csv and summary.json."""
    config = prepared.config
    combos, ref = check_ablation(config)
    started, t0 = now(), time.time()
    folder = RunFolder(output or default_output(config))
    if folder.uri:
        raise RunFolderError("raycv ablate writes to a local or shared path, not a URI (yet)")
    # a changed ablation section changes what the folder holds: not resumable
    keep = tuple(k for k in RESUMABLE_CHANGES if k != "ablation")
    resumed = start_run(folder, prepared, resume=resume, overwrite=overwrite, resumable=keep)
    cache = cache or Path(config.tune.cache_dir or folder.path.resolve().parent / ".raycv-cache")
    units = [p.unit for p in prepared.plans]
    board = ProgressBoard(units, folder.log_path, stream)
    try:
        board.say(
            f"raycv: {'resuming' if resumed else 'running'} ablation {config.name!r}: "
            f"{len(combos)} combinations of {config.modalities} on {len(units)} folds, "
            f"executor {executor_name} -> {folder}"
        )
        with open_runner(prepared, folder, board) as run_folds:
            shared = compute_shared(prepared, folder, board, cache, run_folds, resume=resumed)
            for i, combo in enumerate(combos, 1):
                run_combination(prepared, combo, folder, board, run_folds, shared, executor_name)
                board.say(f"raycv: combination {combo.name} done ({i}/{len(combos)})")
    finally:
        board.close()
    shared_phases = sorted({Path(f).stem for files in shared.values() for f in files.values()})
    summary = ablation_summary(folder.path, combos, ref, shared_phases, time.time() - t0)
    record = provenance(prepared.dataset.fingerprint(), started, executor_name)
    folder.write_json("provenance.json", record)
    return AblationOutcome(folder, summary)


def compute_shared(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    cache: Path,
    run_folds: RunFolds,
    *,
    resume: bool,
) -> dict[str, dict[str, Path]]:
    """The forest and every modality's pretraining of each unit, once (or cached)."""
    from raycv.orchestration.shared_phases import compute_shared as compute

    config = prepared.config
    phases = [FOREST] if "metadata" in config.modalities else []
    phases += [PRETRAIN] if config.image_modalities else []

    def run_until(todo, work, until, loaded):
        return run_folds(todo, work, board, until, loaded)

    return compute(
        prepared, folder, board, phases, cache, run_until, resume=resume, before="the combinations"
    )


def run_combination(
    prepared: Prepared,
    combo: Combination,
    folder: RunFolder,
    board: ProgressBoard,
    run_folds: RunFolds,
    shared: dict[str, dict[str, Path]],
    executor_name: str,
) -> None:
    """One combination's complete run folder under combos/, its shared phases loaded; a
    combination an earlier (killed) ablation finished is kept as it is."""
    run = for_combination(prepared, combo)
    target = RunFolder(folder.path / COMBOS / combo.name)
    if target.file("provenance.json").exists():  # finish_run writes it last
        board.event(f"combination {combo.name}: finished earlier (reused)")
        return
    started, t0 = now(), time.time()
    start_run(target, run, resume=target.exists(), overwrite=False)
    mine = {unit: _own_files(files, run.config) for unit, files in shared.items()}
    combo_board = ProgressBoard([p.unit for p in run.plans], target.log_path, quiet=True)
    if len(combo.modalities) == 1:
        # its one model was computed with the shared phases: the folds only gather its
        # saved predictions, quicker here than a trainer's start
        with sequential_runner(run, target, combo_board) as here:
            run_folds = here
    try:
        combo_board.say(f"raycv: combination {combo.name} of ablation {prepared.config.name!r}")
        results = run_folds(run, target, combo_board, None, mine)
    finally:
        combo_board.close()
    finish_run(
        target,
        run,
        results,
        started=started,
        wall=time.time() - t0,
        executor=executor_name,
        shared=mine,
    )


def _own_files(files: dict[str, Path], config) -> dict[str, Path]:
    """The shared files a combination's folds load: its forest, its modalities' pretraining."""
    from raycv.phases import pretrain_file

    wanted = {FOREST} if "metadata" in config.modalities else set()
    wanted |= {pretrain_file(m) for m in config.image_modalities}
    return {stem: path for stem, path in files.items() if stem in wanted}
