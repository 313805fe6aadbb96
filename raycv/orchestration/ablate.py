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
from raycv.lifecycle import finish_run, run_provenance, start_run
from raycv.orchestration.reuse import cache_dir
from raycv.orchestration.runs import RunToTrain
from raycv.phases import FOREST, PRETRAIN, pretrain_file
from raycv.prepared import Prepared
from raycv.progress import ProgressBoard
from raycv.provenance import now
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


def for_combination(prepared: Prepared, combo: Combination, weights: dict | None) -> Prepared:
    """The prepared run of one combination: its config (weights: the fusion weights the
    user gave, or None), the same folds, the same visits with only its own modalities'
    images (what `raycv run` of its config.yaml loads)."""
    config = combination_config(prepared.config, combo, weights)
    images = {m: prepared.dataset.images[m] for m in config.image_modalities}
    dataset = dataclasses.replace(prepared.dataset, images=images)
    return dataclasses.replace(prepared, config=config, dataset=dataset)


def default_output(config) -> Path:
    return Path("runs") / f"{config.name}-ablation"


# Trains the folds of several runs (one wave of lanes on Ray), keeping executor state in
# `home`: (runs, home, until) -> each run's results (none with until).
Train = Callable[[list[RunToTrain], RunFolder, "str | None"], list[list[FoldResult]]]
# Opens an executor for the whole ablation: (prepared, folder, board, cache of the shared
# phases) -> a context manager yielding its Train (Ray is started once, the dataset put
# once, for every wave; on a cluster every node must see the folder and the cache).
OpenRunner = Callable[[Prepared, RunFolder, ProgressBoard, Path], AbstractContextManager[Train]]


def train_here(runs: list[RunToTrain], home: RunFolder, until: str | None = None):
    """The reference executor's Train: each run's folds in turn, in this process."""
    from raycv.orchestration.sequential import run_sequential

    return [
        run_sequential(
            r.prepared, r.folder, r.board, shared=r.shared, on_result=r.on_result, until=until
        )
        for r in runs
    ]


def sequential_runner(prepared: Prepared, folder: RunFolder, board: ProgressBoard, cache: Path):
    """The reference executor for an ablation: every fold in this process."""
    return nullcontext(train_here)


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
    weights: dict | None = None,
) -> AblationOutcome:
    """Run every combination of `prepared` (the whole cohort, every modality) on its folds;
    write combos/<name>/, combinations.csv, comparisons.csv and summary.json. weights: the
    experiment's own fusion.weights (None: each combination gets the default rule's)."""
    config = prepared.config
    combos, ref = check_ablation(config)
    started, t0 = now(), time.time()
    folder = RunFolder(output or default_output(config))
    if folder.uri:
        raise RunFolderError("raycv ablate writes to a local or shared path, not a URI (yet)")
    # a changed ablation section changes what the folder holds: not resumable
    keep = tuple(k for k in RESUMABLE_CHANGES if k != "ablation")
    resumed = start_run(folder, prepared, resume=resume, overwrite=overwrite, resumable=keep)
    cache = cache or cache_dir(config, folder.path)
    units = [p.unit for p in prepared.plans]
    board = ProgressBoard(units, folder.log_path, stream)
    try:
        board.say(
            f"raycv: {'resuming' if resumed else 'running'} ablation {config.name!r}: "
            f"{len(combos)} combinations of {config.modalities} on {len(units)} folds, "
            f"executor {executor_name} -> {folder}"
        )
        with open_runner(prepared, folder, board, cache) as train:
            shared = compute_shared(prepared, folder, board, cache, train, resume=resumed)
            run_combinations(prepared, combos, weights, folder, board, train, shared, executor_name)
    finally:
        board.close()
    shared_phases = sorted({Path(f).stem for files in shared.values() for f in files.values()})
    summary = ablation_summary(folder, combos, ref, shared_phases, time.time() - t0)
    # what loading found (warnings, dropped visits), as every run folder's provenance says
    folder.write_json("provenance.json", run_provenance(prepared, started, executor_name))
    return AblationOutcome(folder, summary)


def compute_shared(
    prepared: Prepared,
    folder: RunFolder,
    board: ProgressBoard,
    cache: Path,
    train: Train,
    *,
    resume: bool,
) -> dict[str, dict[str, Path]]:
    """The forest and every modality's pretraining of each unit, once (or cached)."""
    from raycv.orchestration.shared_phases import compute_shared as compute

    config = prepared.config
    phases = [FOREST] if "metadata" in config.modalities else []
    phases += [PRETRAIN] if config.image_modalities else []

    def run_until(todo, work, until, loaded):
        return train([RunToTrain(todo, work, board, loaded)], work, until)

    return compute(
        prepared, folder, board, phases, cache, run_until, resume=resume, before="the combinations"
    )


def run_combinations(
    prepared: Prepared,
    combos: list[Combination],
    weights: dict | None,
    folder: RunFolder,
    board: ProgressBoard,
    train: Train,
    shared: dict[str, dict[str, Path]],
    executor_name: str,
) -> None:
    """Every combination's complete run folder under combos/, its shared phases loaded.
    A one-modality combination only gathers its model's saved predictions, here; the
    fusions' folds train together, in one wave of lanes on Ray. A combination an earlier
    (killed) ablation finished is kept as it is."""
    started, t0 = now(), time.time()
    runs, single, pending = [], [], []
    for index, combo in enumerate(combos):
        target = RunFolder(folder.path / COMBOS / combo.name)
        if target.file("provenance.json").exists():  # finish_run writes it last
            board.say(f"raycv: combination {combo.name} finished earlier (kept)")
            continue
        run = for_combination(prepared, combo, weights)
        start_run(target, run, resume=target.exists(), overwrite=False)
        combo_board = ProgressBoard([p.unit for p in run.plans], target.log_path, quiet=True)
        combo_board.say(f"raycv: combination {combo.name} of ablation {prepared.config.name!r}")
        mine = {unit: _own_files(files, run.config) for unit, files in shared.items()}
        # the tag keys its folds in the wave by its place among the combinations
        spec = RunToTrain(run, target, combo_board, mine, tag=f"c{index}")
        (single if len(combo.modalities) == 1 else runs).append(spec)
        pending.append(combo)
    if runs:
        names = ", ".join(c.name for c in pending if len(c.modalities) > 1)
        board.say(f"raycv: training the fusions of {names} together")
    try:
        results = train_here(single, folder) + (train(runs, folder, None) if runs else [])
    finally:
        for spec in single + runs:
            spec.board.close()
    for spec, result in zip(single + runs, results, strict=True):
        finish_run(
            spec.folder,
            spec.prepared,
            result,
            started=started,
            wall=time.time() - t0,
            executor=executor_name,
            shared=spec.shared,
        )
        board.say(f"raycv: combination {spec.folder.path.name} done")


def _own_files(files: dict[str, Path], config) -> dict[str, Path]:
    """The shared files a combination's folds load: its forest, its modalities' pretraining."""
    wanted = {FOREST} if "metadata" in config.modalities else set()
    wanted |= {pretrain_file(m) for m in config.image_modalities}
    return {stem: path for stem, path in files.items() if stem in wanted}
