"""The run folder: claiming it, resuming it, writing its files atomically.

An existing folder is never silently reused: `--resume` continues it (refused if the
config changed), `--overwrite` replaces it, anything else is refused.

The folder may be a URI (s3://bucket/run, gs://..., file://...): raycv then writes a
local staging copy and uploads it after every finished fold and at the end, while Ray
Train writes its fold checkpoints straight to `<uri>/ray`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import yaml

from raycv import config as config_mod
from raycv.config import Config
from raycv.errors import RunFolderError
from raycv.storage import copy_tree, exists, filesystem, is_uri

# Keys that may change between a run and its resume without changing any number:
# where and how the folds run, not what they compute, and what the report shows of them.
RESUMABLE_CHANGES = ("resources.max_failures", "tune", "tracking", "report", "ablation")


class RunFolder:
    def __init__(self, location: str | Path):
        self.location = str(location)
        self.uri = self.location.rstrip("/") if is_uri(location) else None
        if self.uri:
            try:
                self.fs, self.remote = filesystem(self.uri)
            except ValueError as exc:
                raise RunFolderError(f"--output: {exc}") from None
            self.path = Path(tempfile.mkdtemp(prefix="raycv-staging-"))  # local copy
        else:
            self.path = Path(location)

    # -- layout --------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def fold_dir(self, unit: str) -> Path:
        """A unit's checkpoints: checkpoints/fold<k> (repeat i > 0: r<i>-fold<k>)."""
        return self.path / "checkpoints" / unit

    @property
    def ray_storage(self) -> str:
        """Ray Train's storage for the folds' trainers (their checkpoints and state)."""
        return f"{self.uri}/ray" if self.uri else str(self.path.resolve() / "ray")

    def __str__(self) -> str:
        return self.uri or str(self.path)

    @property
    def log_path(self) -> Path:
        return self.path / "run.log"

    # -- claiming ------------------------------------------------------------
    def exists(self) -> bool:
        if self.uri:
            listing = self.fs.get_file_info(pafs.FileSelector(self.remote, allow_not_found=True))
            return bool(listing)
        return self.path.exists() and any(self.path.iterdir())

    def claim(
        self,
        config: Config,
        resume: bool,
        overwrite: bool,
        resumable: tuple[str, ...] = RESUMABLE_CHANGES,
    ) -> bool:
        """Make the folder ready for `config`; True if an earlier run is being resumed.
        resumable: the keys (dotted prefixes) a resume may change."""
        if resume and overwrite:
            raise RunFolderError("--resume and --overwrite exclude each other; choose one")
        if resume and not self.exists():
            raise RunFolderError(
                f"--resume: run folder {str(self)!r} does not exist, so there is nothing to "
                "continue; check --output, or drop --resume to start a new run"
            )
        if self.exists():
            if overwrite:
                self._remove()
            elif resume:
                if self.uri:  # the finished phases and folds to reuse, from the remote copy
                    local = pafs.LocalFileSystem()
                    for name in ("config.yaml", "run.log"):
                        if exists(self.fs, f"{self.remote}/{name}"):
                            pafs.copy_files(
                                f"{self.remote}/{name}",
                                str(self.path / name),
                                source_filesystem=self.fs,
                                destination_filesystem=local,
                            )
                    copy_tree(
                        self.fs, f"{self.remote}/checkpoints", local, str(self.path / "checkpoints")
                    )
                self._check_same_config(config, resumable)
                return True
            else:
                raise RunFolderError(
                    f"run folder {str(self)!r} already exists; pass --resume to continue "
                    f"it or --overwrite to replace it (or --output for another folder)"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_text("config.yaml", config_mod.dump(config))
        self.sync()
        return False

    def _remove(self) -> None:
        if self.uri:
            self.fs.delete_dir(self.remote)
        else:
            shutil.rmtree(self.path)

    def close(self) -> None:
        """Drop the local staging copy of a URI run folder (after its last sync)."""
        if self.uri:
            shutil.rmtree(self.path, ignore_errors=True)

    def sync(self) -> None:
        """Upload the staging copy to the URI (no-op for a local folder)."""
        if self.uri:
            copy_tree(pafs.LocalFileSystem(), str(self.path.resolve()), self.fs, self.remote)

    def _check_same_config(self, config: Config, resumable: tuple[str, ...]) -> None:
        saved_path = self.file("config.yaml")
        if not saved_path.exists():
            raise RunFolderError(
                f"{str(self)!r} has no config.yaml, so it is not a raycv run to resume; "
                "use --overwrite or another --output"
            )
        saved = config_mod.from_dict(yaml.safe_load(saved_path.read_text()))
        changed = config_mod.differing_keys(saved, config, ignore=resumable)
        if changed:
            raise RunFolderError(
                f"cannot --resume {str(self)!r}: the config differs in {', '.join(changed)}; "
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
