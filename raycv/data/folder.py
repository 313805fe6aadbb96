"""A dataset folder on the local disk or behind a URI that pyarrow.fs understands.

Everything is read through `Folder`, so a local path and a URI (`file://`, `s3://`,
`gs://`, ...) load the same way; listings are one call per folder tree, not one query
per file, which is what keeps an object store fast.
"""

from __future__ import annotations

import os

import pyarrow
import pyarrow.fs as pafs

from raycv.errors import DataError
from raycv.storage import filesystem


class Folder:
    def __init__(self, location: str):
        self.location = str(location)
        try:
            self.fs, self.root = filesystem(self.location)
        except ValueError as exc:
            raise DataError(f"cannot open dataset location: {exc}") from None

    def show(self, rel: str = "") -> str:
        """The name a user recognises (the location as given), for messages."""
        return f"{self.location.rstrip('/')}/{rel}" if rel else self.location

    def kind(self, rel: str = "") -> pafs.FileType:
        return self.fs.get_file_info(self._path(rel)).type

    def names(self, rel: str) -> set[str]:
        """File names directly inside folder `rel` (empty if there is no such folder)."""
        if self.kind(rel) != pafs.FileType.Directory:
            return set()
        infos = self.fs.get_file_info(pafs.FileSelector(self._path(rel)))
        return {i.base_name for i in infos if i.type == pafs.FileType.File}

    def tree(self, rel: str) -> list[tuple[str, bool]]:
        """Everything below folder `rel`: (path relative to the root, is a folder), sorted."""
        base = self._path(rel)
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        out = []
        for info in infos:
            inside = info.path[len(base) :].lstrip("/")
            if info.type in (pafs.FileType.File, pafs.FileType.Directory):
                out.append((f"{rel}/{inside}", info.type == pafs.FileType.Directory))
        return sorted(out)

    def read(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self._path(rel)) as stream:
                return stream.read()
        except (pyarrow.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"{self.show(rel)}: cannot read ({exc})") from None

    def write(self, rel: str, data: bytes) -> None:
        parent = os.path.dirname(rel)
        self.fs.create_dir(self._path(parent), recursive=True)
        with self.fs.open_output_stream(self._path(rel)) as stream:
            stream.write(data)

    def _path(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root
