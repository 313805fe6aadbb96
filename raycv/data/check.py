"""`raycv data check`: what loading made of a dataset, as a few readable lines.

Everything comes from the loaded Dataset and the notes loading kept
(`Dataset.notes`), so no file is read twice.
"""

from __future__ import annotations

from raycv.data.dataset import Dataset

_SHOWN_IDS = 5


def summarize(dataset: Dataset, where: str) -> str:
    labels = dataset.labels
    lines = [
        f"{where}: {len(dataset)} samples from {len(set(dataset.patient_id))} patients "
        f"(fingerprint {dataset.fingerprint()})",
        "classes, in order (samples / patients):",
    ]
    for name in dataset.classes:
        mine = labels == name
        patients = len(set(dataset.patient_id[mine]))
        lines.append(f"  {name}: {int(mine.sum())} / {patients}")
    lines += _features(dataset)
    notes = dataset.notes
    if notes.get("warnings"):
        lines.append("warnings:")
        lines += [f"  {w}" for w in notes["warnings"]]
    lines += _images(dataset)
    dropped = notes.get("dropped") or {}
    if dropped:
        gone = len(set().union(*map(set, dropped.values())))
        lines.append(f"dropped visits (data.missing_images=drop): {gone}")
        for modality, ids in dropped.items():
            shown = ", ".join(ids[:_SHOWN_IDS]) + (" ..." if len(ids) > _SHOWN_IDS else "")
            lines.append(f"  without {modality}: {len(ids)} ({shown})")
    return "\n".join(lines)


def _features(dataset: Dataset) -> list[str]:
    n = len(dataset)
    features = dataset.features
    lines = [f"features ({features.shape[1]}), cells read as missing:"]
    for name in features.columns:
        col = features[name]
        kind = "numeric" if col.dtype.kind == "f" else "categorical"
        count = int(col.isna().sum())
        lines.append(f"  {name} ({kind}): {count / n:.1%} missing ({count} of {n})")
    return lines


def _images(dataset: Dataset) -> list[str]:
    if not dataset.images:
        return ["image modalities: none"]
    layout = dataset.notes.get("layout")
    lines = [f"image modalities{f' (found via {layout})' if layout else ''}:"]
    stats = dataset.notes.get("images", {})
    for modality, images in dataset.images.items():
        s = stats.get(modality) or {}
        padded = " (padded: aspect ratio kept)" if s.get("resize") == "pad" else ""
        what = "colour photos (RGB, 3 channels, data.rgb)" if images.channels == 3 else "images"
        lines.append(
            f"  {modality}: {len(images)} {what}, {images.size}x{images.size} for the CNN{padded}"
        )
        if not s:
            continue
        v = s["visits"]
        lines.append(
            f"    visits with 0 / 1 / several images: {v['0']} / {v['1']} / {v['several']}"
        )
        if s["images"]:
            (h0, h1), (w0, w1) = s["height"], s["width"]
            lines.append(f"    original size: H {h0}..{h1}, W {w0}..{w1}")
        if s.get("crops"):
            lines.append(_crops(s["crops"]))
        kinds = ", ".join(f"{kind} {n}" for kind, n in s["kinds"].items()) or "none"
        lines.append(f"    files: {kinds}")
        if s.get("colormap"):
            off = s["off_colormap"]
            where = (
                f"in {off['files']} files, at most {off['max_share']:.1%} of one, filled with "
                "that image's median"
                if off["files"]
                else "none"
            )
            lines.append(f"    colormap: {s['colormap']}; pixels off it: {where}")
        if s.get("ignored"):
            lines.append(f"    ignored: {s['ignored']} files that are no visit's image")
    return lines


def _crops(crops: dict) -> str:
    (h0, h1), (w0, w1) = crops["frame_height"], crops["frame_width"]
    margin = crops["margin"]
    widened = f"{margin} px" if isinstance(margin, int) else f"{margin:.0%} of the box's side"
    return (
        f"    boxes: {crops['images']} images cut from frames of H {h0}..{h1}, W {w0}..{w1} "
        f"(original size above: the crops), margin {widened} (data.crop_margin)"
    )
