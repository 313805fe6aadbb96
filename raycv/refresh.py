"""`raycv report RUN --set report.subgroups=[age,sex]`: new report settings for a finished
run, its statistics recomputed from the folder's files, without training.

Only `report.*` keys may change: every other key changes what was trained, which only a
new run can answer. The run's config.yaml gains the new report settings, so the folder
stays consistent (its summary.json describes its config.yaml); no checkpoint is read or
written. The subgroups need the dataset's metadata table: this command reads it
(raycv.subgroup_data) from config.yaml's `data.path` (or the synthetic cohort regenerated
from its settings), without reading an image, and hands it to the statistics.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from raycv import config as config_mod
from raycv.errors import RaycvError
from raycv.runfolder import RunFolder
from raycv.statistics import with_statistics
from raycv.subgroup_data import subgroup_table
from raycv.summary import read_summary


def report_overrides(overrides: list[str]) -> list[tuple[str, object]]:
    """Parsed `--set` overrides of `raycv report`, refused unless they are report.* keys."""
    parsed = [config_mod.parse_override(o) for o in overrides]
    if trained := [k for k, _ in parsed if k != "report" and not k.startswith("report.")]:
        raise config_mod.ConfigError(
            f"raycv report --set takes report.* keys only (e.g. report.subgroups=[age,sex]); "
            f"{', '.join(trained)} would change what was trained: run again with "
            "`raycv run CONFIG --set ...`"
        )
    return parsed


def run_folder_of(path: Path) -> Path:
    """The run folder whose statistics a report shows: the folder, or a search's best/."""
    if (path / "trials.csv").is_file() and (path / "best").is_dir():
        return path / "best"
    return path


def refresh_statistics(path: str | Path, overrides: list[str], n_boot: int, seed: int) -> Path:
    """Apply report.* overrides to a finished run folder and recompute summary.json's
    statistics; returns the run folder it rewrote (a search's: its best/)."""
    parsed = report_overrides(overrides)
    target = run_folder_of(Path(path))
    files = {name: target / name for name in ("config.yaml", "summary.json", "predictions.csv")}
    if missing := [name for name, file in files.items() if not file.is_file()]:
        raise RaycvError(
            f"{target} has no {', '.join(missing)}: not a finished run folder, so there is "
            "nothing to recompute (is the run finished? `raycv run ... --resume` completes it)"
        )
    config = config_mod.from_dict(yaml.safe_load(files["config.yaml"].read_text()), parsed)
    summary = read_summary(files["summary.json"])
    # ids, labels and predictions as text: a class named "1" must stay the label "1"
    text = ["sample_id", "patient_id", "label", *(f"pred_{m}" for m in summary.models)]
    predictions = pd.read_csv(files["predictions.csv"], dtype={c: str for c in text})
    # the statistics are recomputed; everything else is kept as the run wrote it
    summary = with_statistics(summary, predictions, subgroup_table(config), n_boot, seed)
    folder = RunFolder(target)
    folder.write_json("summary.json", summary.to_json())
    folder.write_text("config.yaml", config_mod.dump(config))
    return target
