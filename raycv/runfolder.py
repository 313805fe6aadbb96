"""The run folder (CONTRACTS 3): claiming it, resuming it, writing its files atomically.

An existing folder is never silently reused: `--resume` continues it (refused if the
config changed), `--overwrite` replaces it, anything else is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import yaml

from raycv import config as config_mod
from raycv.config import Config
from raycv.errors import RunFolderError

# Keys that may change between a run and its resume without changing any number:
# where and how the folds run, not what they compute.
RESUMABLE_CHANGES = ("resources.max_failures", "tune")


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- layout --------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def fold_dir(self, fold: int) -> Path:
        return self.path / "checkpoints" / f"fold{fold}"

    @property
    def ray_storage(self) -> Path:
        """Ray Train's storage for the folds' trainers (their checkpoints and state)."""
        return self.path.resolve() / "ray"

    @property
    def log_path(self) -> Path:
        return self.path / "run.log"

    # -- claiming ------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists() and any(self.path.iterdir())

    def claim(self, config: Config, resume: bool, overwrite: bool) -> bool:
        """Make the folder ready for `config`; True if an earlier run is being resumed."""
        if resume and overwrite:
            raise RunFolderError("--resume and --overwrite exclude each other; choose one")
        if self.exists():
            if overwrite:
                shutil.rmtree(self.path)
            elif resume:
                self._check_same_config(config)
                return True
            else:
                raise RunFolderError(
                    f"run folder {str(self.path)!r} already exists; pass --resume to continue "
                    f"it or --overwrite to replace it (or --output for another folder)"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_text("config.yaml", config_mod.dump(config))
        return False

    def _check_same_config(self, config: Config) -> None:
        saved_path = self.file("config.yaml")
        if not saved_path.exists():
            raise RunFolderError(
                f"{str(self.path)!r} has no config.yaml, so it is not a raycv run to resume; "
                "use --overwrite or another --output"
            )
        saved = config_mod.from_dict(yaml.safe_load(saved_path.read_text()))
        changed = config_mod.differing_keys(saved, config, ignore=RESUMABLE_CHANGES)
        if changed:
            raise RunFolderError(
                f"cannot --resume {str(self.path)!r}: the config differs in {', '.join(changed)}; "
                "use --overwrite to start again"
            )

    # -- writing -------------------------------------------------------------
    def write_text(self, name: str, text: str) -> None:
        target = self.file(name)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)  # readers never see half a file

    def write_json(self, name: str, obj) -> None:
        self.write_text(name, json.dumps(obj, indent=2, allow_nan=False) + "\n")

    def write_csv(self, name: str, table: pd.DataFrame) -> None:
        self.write_text(name, table.to_csv(index=False))
