"""The report's strip of what the image model is given: `raycv data check --preview`'s
contact sheet (raycv.data.preview) of the run's cohort, read with config.yaml's data
settings (boxes, margins, resizing, colormaps, photos).

The one part of a report that reads the dataset again: a few images per modality and
class, never the whole cohort and never a model. Where the data cannot be read from here
(moved, another machine's path), the section says so and the report goes on.
"""

from __future__ import annotations

from pathlib import Path

from raycv.data import write_preview
from raycv.errors import RaycvError
from raycv.report.document import Figure, Paragraph, Section
from raycv.report.load import RunRecord

TITLE = "What the image model is given"


def preview_sections(run: RunRecord, out_dir: Path, prefix: str = "") -> list[Section]:
    """The contact sheet of the run's cohort: one section, none for a run without an image
    modality."""
    config = run.config
    if not config.image_modalities:
        return []
    path = Path(out_dir) / f"{prefix}preview.png"
    where = config.data.path or "the built-in synthetic cohort"
    try:
        shown = write_preview(config, path)
    except RaycvError as exc:
        text = f"No preview: the cohort could not be read again from {where} ({exc})."
        return [Section(TITLE, [Paragraph(text)])]
    caption = (
        f"{shown[0].upper()}{shown[1:]} of {where}, exactly as the image model gets them: "
        "decoded, cropped to their box, resized or padded, before normalisation; a row per "
        "image modality and class, each labelled with its sample id and class (a colour "
        "photo, data.rgb, in its own colours). Check the colormaps, the boxes and the padding "
        "at a glance."
    )
    return [Section(TITLE, [Figure(path, caption)])]
