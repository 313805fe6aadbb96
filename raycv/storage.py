"""Locations that are a local path or a URI (s3://, gs://, file://...), via pyarrow.fs.

Ray's own storage layer uses pyarrow.fs too, so whatever URI Ray accepts for its
checkpoints, raycv accepts for run folders and datasets.
"""

from __future__ import annotations

import os

import pyarrow
import pyarrow.fs as pafs


def is_uri(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def filesystem(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) of a local path or URI; raises ValueError if unusable."""
    location = str(location)
    try:
        if is_uri(location):
            fs, path = pafs.FileSystem.from_uri(location)
            return fs, path.rstrip("/")
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(location))
    except (pyarrow.ArrowException, OSError) as exc:
        raise ValueError(f"cannot open {location!r}: {exc}") from None


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def copy_tree(src_fs, src: str, dst_fs, dst: str) -> None:
    """Copy a folder's files (recursively) from one filesystem to another."""
    if exists(src_fs, src):
        dst_fs.create_dir(dst, recursive=True)
        pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)
