"""Visits without an image of a selected modality: `data.missing_images` decides.

- `refuse` (the default): one error counting every missing image, in total and per
  modality, naming the first few visits, the key and its alternatives;
- `drop`: those visits leave the cohort before anything else sees it (their ids are
  kept per modality for `data check` and provenance.json); the fold checks then run
  on what is left;
- `mask`: the visit stays, with no image of that modality; a visit left with no branch
  at all (no metadata branch, no image in any selected modality) is refused.

A missing image here is a (visit, modality) pair without any image.
"""

from __future__ import annotations

import numpy as np

from raycv.data.table import Table
from raycv.errors import DataError

_SHOWN = 5  # visits named in a refusal


def apply(
    policy: str, counts: dict[str, np.ndarray], table: Table, has_metadata: bool, hint: str
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """-> (keep: (N,) bool, dropped: {modality: ids of the visits dropped for lacking it})."""
    n = len(table.sample_id)
    absent = {m: c == 0 for m, c in counts.items() if (c == 0).any()}
    if not absent:
        return np.ones(n, bool), {}
    if policy == "refuse":
        raise DataError(_refusal(absent, table, hint))
    if policy == "drop":
        gone = np.logical_or.reduce(list(absent.values()))
        if gone.all():
            raise DataError(
                f"data.missing_images=drop leaves no visit: each lacks an image of "
                f"{sorted(absent)} ({hint})"
            )
        dropped = {m: [str(s) for s in table.sample_id[a]] for m, a in absent.items()}
        return ~gone, dropped
    assert policy == "mask", policy
    if not has_metadata and len(absent) == len(counts):
        bare = np.logical_and.reduce(list(absent.values()))
        if bare.any():
            rows = np.flatnonzero(bare)
            raise DataError(
                f"data.missing_images=mask: {len(rows)} visit(s) have no image of any of "
                f"{sorted(counts)} and data.modalities has no metadata branch, so no model "
                f"could predict them ({_visits(table, rows)}); use data.missing_images=drop "
                "to leave them out"
            )
    return np.ones(n, bool), {}


def _refusal(absent: dict[str, np.ndarray], table: Table, hint: str) -> str:
    total = sum(int(a.sum()) for a in absent.values())
    per = ", ".join(f"{m} {int(a.sum())}" for m, a in absent.items())
    shown, left = [], _SHOWN
    for m, a in absent.items():
        rows = np.flatnonzero(a)[:left]
        if len(rows):
            shown.append(f"{m}: {_visits(table, rows)}")
            left -= len(rows)
        if left == 0:
            break
    more = f" and {total - (_SHOWN - left)} more" if total > _SHOWN - left else ""
    return (
        f"{total} image(s) missing ({per}): no image for {'; '.join(shown)}{more} ({hint}); "
        "set data.missing_images=drop to leave those visits out, or data.missing_images=mask "
        "to keep them without that image (default: refuse)"
    )


def _visits(table: Table, rows: np.ndarray) -> str:
    return ", ".join(f"{str(table.sample_id[i])!r} (row {i + 1})" for i in rows[:_SHOWN])
