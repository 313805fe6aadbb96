"""What a search leaves behind: trials.csv, the nested estimate, the best trial's run.

Choosing the best trial by its folds' inner-validation kappas still lets fold k's choice
see patients that are other folds' test patients, so the best trial's outer kappas are
optimistic. The nested estimate picks, per outer fold, the trial best on that fold's
own inner-validation kappa and takes its outer kappa there: the search never saw it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from raycv.errors import RaycvError
from raycv.statistics.nested import nested_estimate
from raycv.summary import read_summary

OBJECTIVE = "objective"  # mean over folds of the inner-validation fusion kappa


def trials_table(grid, searched: list[str], units: list[str], trials_dir: Path) -> pd.DataFrame:
    """One row per trial: searched values, per-unit (repeat, fold) inner-validation and
    outer kappas (`val_kappa_fold0`, ..., `val_kappa_r1-fold0`, ...), means, std, pooled,
    folds done and status."""
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name
        row = {"trial_id": trial_id, **{k: result.config.get(k) for k in searched}}
        for unit in units:
            row[f"val_kappa_{unit}"] = metrics.get(f"val_kappa_{unit}")
        for unit in units:
            row[f"outer_kappa_{unit}"] = metrics.get(f"outer_kappa_{unit}")
        row["val_kappa_mean"] = metrics.get(OBJECTIVE)
        row["val_kappa_std"] = metrics.get("val_kappa_std")
        row["outer_kappa_mean"] = metrics.get("outer_kappa_mean")
        row["outer_kappa_std"] = metrics.get("outer_kappa_std")
        summary = trials_dir / str(trial_id) / "summary.json"
        row["outer_kappa_pooled"] = (
            read_summary(summary).models["fusion"].kappa_pooled if summary.exists() else None
        )
        row["folds_done"] = int(metrics.get("folds_done", 0))
        if result.error is not None:
            row["status"] = "error"
        else:
            row["status"] = "complete" if row["folds_done"] == len(units) else "stopped"
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("val_kappa_mean", ascending=False, na_position="last").reset_index(
        drop=True
    )


def best_trial(trials: pd.DataFrame) -> pd.Series:
    """The best trial by the objective among those that finished every fold (a trial ASHA
    stopped after one fold must not win on a single fold's score)."""
    complete = trials[trials["status"] == "complete"]
    if complete.empty:
        raise RaycvError("no trial finished every fold; see the trials' run.log files")
    return complete.loc[complete["val_kappa_mean"].astype(float).idxmax()]


def publish_best(tune_dir: Path, best: pd.Series, name: str) -> Path:
    """Copy the best trial's run folder to best/ and its config to best.yaml (runnable).
    A trial's folder already holds every model of every fold, the phases it loaded from
    the shared cache included (lifecycle.finish_run), so best/ is a plain run folder that
    `raycv predict` can use."""
    source = tune_dir / "trials" / str(best["trial_id"])
    target = tune_dir / "best"
    shutil.rmtree(target, ignore_errors=True)
    # Ray's own trainer state stays with the trial; best/ is a plain run folder
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("ray"))
    text = (source / "config.yaml").read_text()
    best_yaml = tune_dir / "best.yaml"
    best_yaml.write_text(
        f"# best trial {best['trial_id']} of the search in {tune_dir}\n"
        + text.replace(f"name: {name}\n", f"name: {name}-best\n", 1)
    )
    return best_yaml


def tune_summary(trials: pd.DataFrame, searched: list[str], units: list[str], wall: float) -> dict:
    best = best_trial(trials)
    nested = nested_estimate(trials, units, "trial_id")
    return {
        "objective": "mean over folds of the inner-validation fusion kappa",
        "searched": searched,
        "trials": int(len(trials)),
        "complete": int((trials["status"] == "complete").sum()),
        "best": {
            "trial_id": best["trial_id"],
            "params": {k: _plain(best[k]) for k in searched},
            "val_kappa_mean": float(best["val_kappa_mean"]),
            # optimistic: chosen with all folds' inner-validation kappas
            "outer_kappa_mean": float(best["outer_kappa_mean"]),
            "outer_kappa_std": float(best["outer_kappa_std"]),
            "outer_kappa_pooled": _plain(best["outer_kappa_pooled"]),
        },
        "nested": nested,
        "wall_seconds": round(wall, 2),
    }


def top_table(trials: pd.DataFrame, searched: list[str], summary: dict, top: int = 5) -> str:
    cols = ["trial_id", *searched, "val_kappa_mean", "outer_kappa_mean", "folds_done", "status"]
    shown = trials[cols].head(top).copy()
    for c in ("val_kappa_mean", "outer_kappa_mean"):
        shown[c] = shown[c].map(lambda v: "n/a" if pd.isna(v) else f"{float(v):.3f}")
    lines = [f"top {min(top, len(trials))} of {len(trials)} trials (by inner-validation kappa)"]
    lines.append(shown.to_string(index=False))
    b, n = summary["best"], summary["nested"]
    lines.append(
        f"\nbest trial {b['trial_id']}: outer fusion kappa {b['outer_kappa_mean']:.3f} "
        f"+- {b['outer_kappa_std']:.3f} (optimistic: the search chose it on every fold)"
    )
    lines.append(
        f"nested estimate:  outer fusion kappa {n['kappa_mean']:.3f} "
        f"(per fold, the trial best on that fold's own inner validation)"
    )
    return "\n".join(lines)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
