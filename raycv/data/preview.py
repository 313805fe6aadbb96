"""What the image model is given: a contact sheet of a few visits per modality and class.

For each image modality and class, up to `per_class` visits of different patients,
spread over the class's visits in metadata.csv order, each by its first image exactly as
the CNN gets it: decoded, cropped to its box, resized or padded, before normalisation;
labelled with its sample id and class. A glance says whether the colormaps, the boxes
and the padding are right. A colour photo (data.rgb) is drawn in its own colours.

Only those images are read: the visits are chosen from the table and the layout (a
`Source`), then `assemble` reads them through the very code a run uses. `raycv data
check --preview` and a run's report draw the sheet the same way. Drawn on a
`matplotlib.figure.Figure`, never through pyplot (no global state, no display);
matplotlib is imported only to draw, so loading data never pays for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raycv.data.dataset import Dataset
from raycv.data.loading import Source, assemble
from raycv.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PER_CLASS = 4  # visits shown per modality and class


@dataclass(frozen=True)
class Panel:
    sample_id: str
    label: str  # the visit's class
    # (S, S) float32, or (3, S, S) RGB for a photo: the image as the CNN is given it, not
    # normalised
    pixels: np.ndarray


@dataclass(frozen=True)
class Sheet:
    rows: list[tuple[str, str, list[Panel]]]  # (modality, class, its panels), in order
    columns: int  # panels per row at most
    colormaps: dict[str, str]  # modality -> the colormap its values are positions on
    size: int  # data.image_size
    resize: str  # data.resize


def sheet(source: Source, per_class: int = PER_CLASS) -> Sheet:
    """The contact sheet of a Source: its chosen visits read, nothing else."""
    settings = source.settings
    if not settings.image_modalities:
        raise DataError(
            f"data.modalities={list(settings.modalities)} has no image modality: "
            "no image to preview"
        )
    keep, _ = source.kept()  # the visits a run keeps (data.missing_images)
    table, counts = source.table, source.located.counts()
    classes = settings.classes if table.labelled else ("unlabelled",)
    chosen = {}  # (modality, class index) -> the rows of the visits shown
    for m in settings.image_modalities:
        for c in range(len(classes)):
            rows = np.flatnonzero(keep & (table.y == c) & (counts[m] > 0))
            chosen[m, c] = _spread(rows, table.patient_id, per_class)
    if not any(len(v) for v in chosen.values()):
        raise DataError("no visit has an image of an image modality: no image to preview")
    shown = _read(source, chosen)
    row_of = {sid: i for i, sid in enumerate(shown.sample_id)}
    rows = []
    for (m, c), visits in chosen.items():
        images = shown.images[m]
        panels = [
            Panel(sid, classes[c], images.pixels[np.flatnonzero(images.visit == row_of[sid])[0]])
            for sid in map(str, table.sample_id[visits])
        ]
        rows.append((m, classes[c], panels))
    colour = {m: s["colormap"] for m, s in shown.notes["images"].items() if s.get("colormap")}
    return Sheet(rows, per_class, colour, settings.image_size, settings.resize)


def figure(sheet: Sheet) -> Figure:
    """The sheet drawn: a row per modality and class, a panel per visit."""
    from matplotlib.figure import Figure

    n_rows, n_cols = len(sheet.rows), sheet.columns
    fig = Figure(figsize=(1.35 * n_cols + 0.9, 1.45 * n_rows + 0.7), dpi=100)
    scale = {m: _scale(sheet, m) for m in dict.fromkeys(m for m, _, _ in sheet.rows)}
    for r, (modality, label, panels) in enumerate(sheet.rows):
        cmap, lo, hi = scale[modality]
        for k in range(n_cols):
            ax = fig.add_subplot(n_rows, n_cols, r * n_cols + k + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(panels):
                p = panels[k]
                _draw(ax, p.pixels, cmap, lo, hi)
                ax.set_title(f"{p.sample_id} · {p.label}", fontsize=6.5)
            else:
                for side in ax.spines.values():
                    side.set_visible(False)
                if k == 0:
                    ax.text(0.5, 0.5, "no visit", ha="center", va="center", fontsize=7)
            if k == 0:
                ax.set_ylabel(f"{modality}\n{label}", fontsize=7.5)
    fig.suptitle(
        f"What the image model is given: {sheet.size} x {sheet.size} px, data.resize: "
        f"{sheet.resize}, before normalisation",
        fontsize=8.5,
    )
    fig.tight_layout()
    return fig


def write(sheet: Sheet, path: str | Path) -> Path:
    """Draw the sheet into a PNG at `path` (its folder made if need be)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(sheet).savefig(path, format="png")
    return path


def describe(sheet: Sheet) -> str:
    """One line: how many panels, of which modalities."""
    n = sum(len(panels) for _, _, panels in sheet.rows)
    modalities = ", ".join(dict.fromkeys(m for m, _, _ in sheet.rows))
    return f"{n} images ({modalities}; up to {sheet.columns} visits per class)"


def _spread(rows: np.ndarray, patient_id: np.ndarray, k: int) -> np.ndarray:
    """Up to k of `rows` (in order): one visit per patient, evenly spread over the
    patients; visits of patients already shown only when there are fewer than k patients."""
    firsts = rows[np.sort(np.unique(patient_id[rows], return_index=True)[1])]
    if len(firsts) >= k:
        return firsts[np.linspace(0, len(firsts) - 1, k).round().astype(int)]
    rest = rows[~np.isin(rows, firsts)]
    return np.sort(np.concatenate([firsts, rest[: k - len(firsts)]]))


def _read(source: Source, chosen: dict[tuple[str, int], np.ndarray]) -> Dataset:
    """The chosen visits, each with its first image of the modalities it is shown for."""
    wanted = np.zeros(len(source.table.sample_id), dtype=bool)
    for visits in chosen.values():
        wanted[visits] = True
    shows = {m: set() for m in source.settings.image_modalities}
    for (m, _), visits in chosen.items():
        shows[m].update(visits.tolist())
    files = {
        m: [refs[:1] if i in shows[m] else [] for i, refs in enumerate(per_visit)]
        for m, per_visit in source.located.files.items()
    }
    located = dataclasses.replace(source.located, files=files)
    # a shown visit may lack another modality's image: those are left out, not refused
    settings = dataclasses.replace(source.settings, missing_images="mask")
    part = dataclasses.replace(source, located=located, settings=settings).take(wanted)
    return assemble(part)


def _draw(ax, pixels: np.ndarray, cmap: str, lo: float, hi: float) -> None:
    """One panel: a map on its colormap, a photo in its own colours."""
    if pixels.ndim == 3:  # (3, S, S) -> (S, S, 3) RGB, as imshow takes a colour image
        rgb = np.clip(np.moveaxis(pixels, 0, -1), 0.0, 1.0)
        ax.imshow(rgb, interpolation="nearest")
        return
    ax.imshow(pixels, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")


def _scale(sheet: Sheet, modality: str) -> tuple[str, float, float]:
    """(colormap, low, high) a modality's panels are drawn with: its own colormap on
    0..1 for colour-mapped PNGs, gray over the values shown for anything else."""
    if modality in sheet.colormaps:
        return sheet.colormaps[modality], 0.0, 1.0
    values = [p.pixels for m, _, panels in sheet.rows if m == modality for p in panels]
    if not values:
        return "gray", 0.0, 1.0
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    return "gray", lo, hi if hi > lo else lo + 1.0
