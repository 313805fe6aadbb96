"""Is the run folder the same folder on every node? Checked before any fold trains.

On a cluster each fold's trainer writes its checkpoints to `<run folder>/ray` from
whichever node it lands on, and the driver reads them back. A run folder that is a
plain local path on the driver's node (not a shared filesystem, not a URI) would then
scatter checkpoints over the nodes' own disks, where the driver never finds them.

So the driver writes a marker with a random token into the run folder, and a tiny
0-CPU task pinned to each alive node reads it back. Any node that cannot read it (the
path does not exist there, a URI without credentials there) refuses the run with one
line naming that node, before any training. A single-node cluster passes trivially.

Nodes that join later (GPU nodes the autoscaler starts for the folds) are not alive
when the driver checks; `check_visible_here`, called by a fold before it trains,
covers them.
"""

from __future__ import annotations

import uuid

import pyarrow.fs as pafs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raycv.errors import RunFolderError
from raycv.storage import filesystem, is_uri

MARKER = ".raycv-shared-storage-check"
# A node that has not answered by then (no worker could start there) counts as failing.
ANSWER_WITHIN_S = 180.0


def check_shared_storage(folder_location: str) -> None:
    """Raise RunFolderError unless every alive node of the connected cluster can read
    a marker the driver writes into `folder_location` (a local path or a URI)."""
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) <= 1:
        return
    try:
        fs, path = filesystem(folder_location)
    except ValueError as exc:
        raise RunFolderError(f"--output: {exc}") from None
    name, token = f"{MARKER}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    # what the nodes open: the URI as given, or the absolute path as the driver sees it
    marker = f"{folder_location.rstrip('/') if is_uri(folder_location) else path}/{name}"
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{name}") as out:
        out.write(token.encode())
    try:
        answers = [
            _read_marker.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(marker, token)
            for node in nodes
        ]
        for node, answer in zip(nodes, answers, strict=True):
            problem = _answer(answer)
            if problem:
                raise _not_shared(
                    folder_location, node["NodeID"], node["NodeManagerAddress"], problem
                )
    finally:
        try:
            fs.delete_file(f"{path}/{name}")
        except OSError:
            pass


def check_visible_here(folder_location: str) -> None:
    """On a fold's node, before the fold trains: refuse if the run folder the driver
    created (a URI or an absolute path) is not there."""
    try:
        fs, path = filesystem(folder_location)
        seen = fs.get_file_info(path).type != pafs.FileType.NotFound
        problem = None if seen else "does not see it (no such folder on that node)"
    except (OSError, ValueError) as exc:
        problem = f"cannot open it ({_first_line(exc)})"
    if problem:
        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "(no Ray)"
        raise _not_shared(folder_location, node, ray.util.get_node_ip_address(), problem)


def _not_shared(folder_location: str, node_id: str, address: str, problem: str) -> RunFolderError:
    return RunFolderError(
        f"the run folder {folder_location!r} is not shared: node {node_id} ({address}) "
        f"{problem}, so fold checkpoints written there would be lost; on a cluster give "
        "--output a URI (s3://bucket/path) or a path on a filesystem every node mounts"
    )


def _answer(ref) -> str | None:
    try:
        return ray.get(ref, timeout=ANSWER_WITHIN_S)
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        return f"did not answer the check within {ANSWER_WITHIN_S:.0f} s"
    except ray.exceptions.RayError as exc:
        return f"could not run the check ({type(exc).__name__})"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


@ray.remote(num_cpus=0, max_retries=0)
def _read_marker(location: str, token: str) -> str | None:
    """On one node: None if the marker reads back the token, else what went wrong."""
    try:
        fs, path = filesystem(location)
        with fs.open_input_stream(path) as stream:
            found = stream.read().decode(errors="replace")
    except FileNotFoundError:
        return "does not see the marker the driver wrote there (no such file on that node)"
    except (OSError, ValueError) as exc:
        return f"cannot read the marker the driver wrote there ({_first_line(exc)})"
    if found != token:
        return "reads a different marker than the driver wrote there"
    return None
