"""What a search says while it runs: a line per trial result (TrialProgress), and the
MLflow and TensorBoard logger callbacks `tracking` asks for (one MLflow run per trial)."""

from __future__ import annotations

import sys
from pathlib import Path

from ray import tune

from raycv.orchestration.tune_results import OBJECTIVE
from raycv.tracking import allow_file_store, default_mlflow_uri, import_mlflow

# Set in the driver before a search: Tune then adds none of its default logger callbacks
# (CSV, JSON, TensorBoard); tune_callbacks names the ones raycv keeps.
DEFAULT_LOGGERS_OFF = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


def tune_callbacks(tune_dir: str | Path, tracking, experiment: str) -> list:
    """Ray Tune logger callbacks for a search, as `tracking` asks: MLflow gets one run per
    trial (its config and every per-fold report); TensorBoard event files go to each
    trial's folder under <tune_dir>/search. For tune.RunConfig(callbacks=[...]).

    Tune's own per-trial progress.csv and result.json are kept, named here because Tune's
    defaults are off (DEFAULT_LOGGERS_OFF): its defaults also write TensorBoard files,
    which tracking.tensorboard leaves off, and load tensorboardX and with it torch, ~1.4 s
    of the driver's start on 2 cores."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    callbacks = [CSVLoggerCallback(), JsonLoggerCallback()]
    if getattr(tracking, "mlflow", False):
        import_mlflow()
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        uri = mlflow_uri(tune_dir, tracking)
        callbacks.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment))
    if getattr(tracking, "tensorboard", False):
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    return callbacks


def mlflow_uri(tune_dir: str | Path, tracking) -> str:
    """Where the search's MLflow runs go (default a file store in the tune folder), with
    MLflow told that a file store is meant (MLflow 3 refuses one unless told, through this
    process's environment, where Tune's callbacks run). Also for a restored search, whose
    callbacks Tune unpickles without raycv building them."""
    uri = getattr(tracking, "mlflow_uri", None) or default_mlflow_uri(Path(tune_dir))
    allow_file_store(uri)
    return uri


class TrialProgress(tune.Callback):
    """One line per trial result in the terminal and the tune folder's run.log.

    Holds a path, not an open file: Tune pickles its callbacks with the experiment state.
    """

    def __init__(self, log_path: str, n_folds: int, n_trials: int):
        self.log_path, self.n_folds, self.n_trials = log_path, n_folds, n_trials
        self.finished = 0

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        with open(self.log_path, "a") as log_file:
            log_file.write(text + "\n")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.say(
            f"trial {trial.trial_id}: {result.get('folds_done')}/{self.n_folds} folds, "
            f"inner-validation fusion kappa {result.get(OBJECTIVE, float('nan')):.3f}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.finished += 1
        self.say(f"trial {trial.trial_id} finished ({self.finished}/{self.n_trials} this session)")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(f"trial {trial.trial_id} FAILED (see its run.log under trials/)")
