"""Experiment tracking (optional, off by default): MLflow and TensorBoard.

Not compute and not the report: it reads a finished run folder's files (config.yaml,
summary.json, history.csv; not through the report, which compute must not import) and
sends them elsewhere. A run's folder already holds every number, so a finished run is
logged from its files:
params (config.yaml flattened to dotted keys), per-model kappas (per fold, mean, std,
pooled), accuracy and macro F1, and the training curves of history.csv per fold and
phase. A search uses Ray Tune's own logger callbacks instead (orchestration/
tune_callbacks.py), which log every trial's config and reported metrics as it runs.

MLflow is an extra (`pip install 'raycv[tracking]'`); TensorBoard event files are
written with tensorboardX, which Ray Tune already depends on.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from raycv.errors import RaycvError
from raycv.phases import PRETRAIN
from raycv.summary import RunSummary, read_summary

ARTIFACTS = ("config.yaml", "summary.json", "predictions.csv", "history.csv", "report.html")
MAX_PARAM_LENGTH = 500  # MLflow refuses long param values; a truncated one still identifies


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """config.yaml as dotted keys (the names --set uses) -> text values."""
    out = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{dotted}."))
        else:
            text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...")
            out[dotted] = text.strip()[:MAX_PARAM_LENGTH]
    return out


@dataclass
class FinishedRun:
    """What tracking sends of a finished run folder."""

    path: Path
    config: dict  # config.yaml as written: the params, under the names --set uses
    summary: RunSummary
    history: pd.DataFrame | None  # None: the run has no history.csv

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))


def read_run(run_dir: str | Path) -> FinishedRun:
    path = Path(run_dir)
    if not (path / "summary.json").is_file():
        raise RaycvError(
            f"{path / 'summary.json'} is missing: only a finished run folder can be tracked "
            "(is the run finished? `raycv run ... --resume` completes it)"
        )
    config_file, history_file = path / "config.yaml", path / "history.csv"
    return FinishedRun(
        path=path,
        config=yaml.safe_load(config_file.read_text()) if config_file.is_file() else {},
        summary=read_summary(path / "summary.json"),
        history=pd.read_csv(history_file) if history_file.is_file() else None,
    )


def run_metrics(run: FinishedRun) -> list[tuple[str, float, int]]:
    """(key, value, step) of every number worth plotting; keys use only MLflow-safe
    characters, so they read the same in MLflow and TensorBoard."""
    out = []
    for model, s in run.summary.models.items():
        for name in ("kappa_mean", "kappa_std", "kappa_pooled", "accuracy_mean", "macro_f1_mean"):
            if (value := getattr(s, name)) is not None:
                out.append((f"{name}/{model}", float(value), 0))
        for fold, k in enumerate(s.kappa_per_fold):
            if k is not None:
                out.append((f"kappa_per_fold/{model}", float(k), fold))
    kept = [k for k in run.summary.stage2_kept if k is not None]
    if kept:
        out.append(("stage2_kept_folds", float(sum(kept)), 0))
    if run.history is not None:
        branch = run.history["branch"] if "branch" in run.history else None
        for i, row in run.history.iterrows():
            phase = row["phase"]
            if branch is not None and row["phase"] == PRETRAIN and isinstance(branch[i], str):
                phase = f"{PRETRAIN}_{branch[i]}"
            for col in ("train_loss", "train_kappa", "val_loss", "val_kappa"):
                value = row[col]
                if value == value:  # NaN: undefined kappa on a one-class split
                    out.append(
                        (f"fold{row['fold']}/{phase}/{col}", float(value), int(row["epoch"]))
                    )
    return out


def default_mlflow_uri(run_dir: Path) -> str:
    """A local MLflow file store inside the run folder: nothing to set up, travels with it."""
    return (Path(run_dir).resolve() / "mlruns").as_uri()


def import_mlflow():
    try:
        import mlflow
    except ImportError:
        raise RaycvError(
            "tracking.mlflow needs MLflow: pip install 'raycv[tracking]' (or mlflow-skinny)"
        ) from None
    return mlflow


def allow_file_store(uri: str) -> None:
    # MLflow 3 keeps its file store but refuses it unless asked; a local store needs no
    # server or database, which is the point of the default
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def log_to_mlflow(
    run_dir: str | Path, tracking_uri: str | None = None, experiment: str | None = None
) -> str:
    """Log a finished run folder as one MLflow run; returns its run id.

    tracking_uri: any MLflow tracking URI (a server, sqlite:///..., file:...); default a
    file store at <run_dir>/mlruns. experiment: default the config's name.
    """
    mlflow = import_mlflow()
    from mlflow.entities import Metric, Param

    run = read_run(run_dir)
    uri = tracking_uri or default_mlflow_uri(run.path)
    allow_file_store(uri)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    name = experiment or run.name
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    tags = {
        "raycv.run_dir": str(run.path.resolve()),
        "raycv.kappa_weights": run.summary.kappa_weights,
    }
    mlflow_run = client.create_run(experiment_id, run_name=run.path.name, tags=tags)
    run_id = mlflow_run.info.run_id
    now = int(time.time() * 1000)
    params = [Param(k, v) for k, v in flat_params(run.config).items()]
    metrics = [Metric(k, v, now, step) for k, v, step in run_metrics(run)]
    # MLflow's batch limits: 100 params, 1000 metrics per call
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i : i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    for name in ARTIFACTS:
        if (run.path / name).is_file():
            client.log_artifact(run_id, str(run.path / name))
    client.set_terminated(run_id)
    return run_id


def log_to_tensorboard(run_dir: str | Path, log_dir: str | Path | None = None) -> Path:
    """Write a finished run folder's metrics and curves as TensorBoard event files (default
    <run_dir>/tensorboard); returns the folder. View: tensorboard --logdir <it>."""
    from tensorboardX import SummaryWriter

    run = read_run(run_dir)
    target = Path(log_dir) if log_dir else run.path / "tensorboard"
    writer = SummaryWriter(logdir=str(target))
    try:
        writer.add_text("config", "```\n" + yaml.safe_dump(run.config, sort_keys=False) + "```")
        for key, value, step in run_metrics(run):
            writer.add_scalar(key, value, step)
    finally:
        writer.close()
    return target


def check_tracking(tracking) -> None:
    """Refuse, before any training, a `tracking` section whose extra is not installed."""
    if getattr(tracking, "mlflow", False):
        import_mlflow()


def track_run(run_dir: str | Path, tracking) -> None:
    """Log a finished run as the config's `tracking` section asks (attributes `mlflow`,
    `mlflow_uri`, `tensorboard`)."""
    if getattr(tracking, "mlflow", False):
        uri = getattr(tracking, "mlflow_uri", None) or default_mlflow_uri(Path(run_dir))
        log_to_mlflow(run_dir, uri)
    if getattr(tracking, "tensorboard", False):
        log_to_tensorboard(run_dir)
