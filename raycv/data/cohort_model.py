"""The built-in synthetic wound cohort's generative model: diabetic foot ulcers seen over
several visits, drawn in memory as a metadata table and per-visit image arrays.

Shaped like the cohort the method was built on: ~268 patients, ~3.3 visits each,
phases I/P/R about 31/56/13 %, about 40 % of patients (with more than one visit)
changing phase between visits, a patient-level random effect, ~5 % missing
metadata, and a thermal map (deg C) per visit.

Generative model. A visit's healing score is

    h = patient effect + rate * weeks since onset + clinical noise + local noise

and its phase is an ordinal cut of h. The two modalities see h through different
windows, so fusing them beats either one and neither is near-perfect:

- metadata sees the patient's covariates (part of the patient effect), the time
  since onset, and the clinical noise through wound area, exudate and infection,
  each with its own measurement noise; it never sees the local noise;
- the thermal map sees h, local noise included, through an independent imaging
  noise: the wound hot-spot is large and hot while inflamed, faint when remodeling;
- the depth map (optional, `depth_map` in data.modalities) sees h through a larger
  imaging noise of its own: the wound bed is deep while inflamed, shallow when
  remodeling;
- the colour photo (optional, `photo`, read with data.rgb) sees h through an imaging
  noise of its own, in the wound's hue alone: dark purple-red while inflamed, red when
  proliferating, orange-yellow when remodeling, every hue at one luminance
  (0.299 R + 0.587 G + 0.114 B). The wound is darker than the skin, but by the same amount
  in every class, and its size and place do not depend on the class either: a model that
  reads the photo as gray sees the wound and learns nothing of its phase; one that reads
  its three channels can.

Real exports have several images of a visit, or none: with `images_per_visit` k > 1 a
visit has 1 + Poisson(k - 1) images of each modality, its map plus retakes (the map
shifted by a pixel or two, with its own sensor noise: they agree but are not copies),
and `missing_images` leaves that share of (visit, modality) pairs without any image.

The cohort is a pure function of (patients, seed, image_size, images_per_visit,
missing_images); the metadata does not depend on the image settings. Every random
stream is its own SeedSequence child, so a new option never moves an existing draw:
with the defaults the cohort is the one of earlier versions, bit for bit.

raycv.data.synthetic turns the cohort into a Dataset, or writes it as a dataset folder.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

CLASSES = ("I", "P", "R")
MODALITY = "thermal_map"
DEPTH = "depth_map"
PHOTO = "photo"  # colour photos (S, S) RGB: the class in the hue alone (data.rgb)
IMAGE_MODALITIES = (MODALITY, DEPTH, PHOTO)
# SeedSequence children: one per random stream, in a fixed order (append, never insert)
_STREAMS = (
    "cohort",
    MODALITY,
    DEPTH,
    f"{MODALITY} layout",
    f"{DEPTH} layout",
    f"{MODALITY} frames",
    f"{DEPTH} frames",
    PHOTO,
    f"{PHOTO} layout",
)
FEATURES = (
    "age",
    "sex",
    "diabetes_duration_years",
    "hba1c",
    "location",
    "wound_area_cm2",
    "days_since_onset",
    "exudate",
    "infection",
)
# Fraction of values left missing per feature column (~5 % of all feature cells).
_MISSING = {
    "hba1c": 0.12,
    "diabetes_duration_years": 0.10,
    "exudate": 0.08,
    "wound_area_cm2": 0.06,
    "infection": 0.05,
    "age": 0.02,
    "location": 0.02,
}
# Cuts of the healing score h into I | P | R, calibrated once on a large cohort
# (300 000 patients: the 31 % and 87 % quantiles of h) so the shares come out
# near 31 / 56 / 13 %. Recalibrate them whenever the model constants below change.
_THRESHOLDS = (-0.06, 1.80)
_RATE = 0.05  # healing per week since onset (mean over patients)
_PATIENT_SD = 0.9  # residual patient effect, not explained by covariates
_CLINICAL_SD = 0.2  # visit noise that the metadata sees (area, exudate, infection)
_LOCAL_SD = 0.35  # visit noise that only the thermal map sees
_IMAGE_SD = 1.25  # imaging noise on what the thermal map shows of h
_DEPTH_SD = 2.0  # imaging noise on what the depth map shows of h: the weaker view
_PHOTO_SD = 0.4  # imaging noise on what the photo's hue shows of h
# a retake's own sensor noise, in the image's units (a photo's: 0..1 per channel)
_RETAKE_SD = {MODALITY: 0.05, DEPTH: 0.05, PHOTO: 0.02}
_RETAKE_SHIFT = 0.03  # a retake is shifted by up to this share of the side (>= 1 pixel) each way


def synthesize(
    patients: int = 268,
    seed: int = 0,
    image_size: int = 64,
    *,
    images_per_visit: int = 1,
    missing_images: float = 0.0,
    modalities: tuple[str, ...] = (MODALITY,),
) -> tuple[pd.DataFrame, dict[str, list[list[np.ndarray]]]]:
    """-> (metadata with sample_id, patient_id, label and FEATURES;
    {image modality: per visit, its (S, S) float32 images (none, one or several); a
    photo's are (3, S, S) float32 RGB in [0, 1]}). The images are read-only."""
    frame, out = _drawn(
        patients, seed, image_size, images_per_visit, missing_images, tuple(modalities)
    )
    return frame.copy(), {m: [list(visit) for visit in shots] for m, shots in out.items()}


# The last cohorts drawn in this process, kept: a run's report draws its cohort again for
# the preview (from the config, as `raycv report` on the folder would), which took ~1 s
# of a 2-core machine after every run on the built-in cohort. Their images are frozen
# (read-only), so no caller can change what the next one gets.
@functools.lru_cache(maxsize=2)
def _drawn(patients, seed, image_size, images_per_visit, missing_images, modalities):
    frame, out = _draw(patients, seed, image_size, images_per_visit, missing_images, modalities)
    for shots in out.values():
        for visit in shots:
            for image in visit:
                image.setflags(write=False)
    return frame, out


def _draw(patients, seed, image_size, images_per_visit, missing_images, modalities):
    streams = _streams(seed)
    frame, h = _cohort(patients, np.random.default_rng(streams["cohort"]))
    patient = pd.factorize(frame["patient_id"])[0]
    out = {}
    for modality in modalities:
        rng = np.random.default_rng(streams[modality])
        if modality == MODALITY:
            seen = h + rng.normal(0.0, _IMAGE_SD, len(h))
            maps = _thermal_maps(seen, patient, patients, image_size, rng)
        elif modality == DEPTH:
            seen = h + rng.normal(0.0, _DEPTH_SD, len(h))
            maps = _depth_maps(seen, patient, patients, image_size, rng)
        else:
            seen = h + rng.normal(0.0, _PHOTO_SD, len(h))
            maps = _photos(seen, patient, patients, image_size, rng)
        layout_rng = np.random.default_rng(streams[f"{modality} layout"])
        out[modality] = _shots(maps, images_per_visit, missing_images, modality, layout_rng)
    return frame, out


def synthetic_metadata(patients: int = 268, seed: int = 0) -> pd.DataFrame:
    """The cohort's metadata table alone (sample_id, patient_id, label, FEATURES), the one
    `synthesize` returns, without drawing a single image (reports by subgroup need it)."""
    return _cohort(patients, np.random.default_rng(_streams(seed)["cohort"]))[0]


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one named random stream of the cohort (one of _STREAMS): how the
    files are laid out draws from its own stream, so it never moves the cohort's draws."""
    return np.random.default_rng(_streams(seed)[name])


def _streams(seed: int) -> dict[str, np.random.SeedSequence]:
    return dict(zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS)), strict=True))


def _shots(maps, per_visit: int, missing: float, modality: str, rng) -> list[list[np.ndarray]]:
    """(N, S, S) maps (or (N, 3, S, S) photos) -> each visit's images: none, its image, or
    its image and retakes."""
    n = len(maps)
    counts = np.ones(n, np.int64) if per_visit == 1 else 1 + rng.poisson(per_visit - 1, n)
    if missing > 0:
        counts[rng.random(n) < missing] = 0
    sd = _RETAKE_SD[modality]
    return [
        [arr, *(_retake(arr, sd, rng) for _ in range(count - 1))] if count else []
        for arr, count in zip(maps, counts, strict=True)
    ]


def _retake(arr: np.ndarray, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """The same wound imaged again: shifted a little (edges repeated), with new noise.
    (S, S) or (3, S, S): a photo's channels move together."""
    h, w = arr.shape[-2:]
    s = max(1, round(_RETAKE_SHIFT * h))
    dy, dx = rng.integers(-s, s + 1, 2)
    padded = np.pad(arr, [(0, 0)] * (arr.ndim - 2) + [(s, s), (s, s)], mode="edge")
    moved = padded[..., s + dy : s + dy + h, s + dx : s + dx + w]
    out = moved + rng.normal(0.0, noise_sd, arr.shape)
    return (np.clip(out, 0.0, 1.0) if arr.ndim == 3 else out).astype(np.float32)


def _cohort(patients: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """-> (metadata table, healing score h of each visit)."""
    visits = _visits(patients, rng)
    cov = _covariates(patients, rng)
    p = visits["patient"]
    weeks = cov["onset_weeks"][p] + visits["week"]
    progress = cov["effect"][p] + cov["rate"][p] * weeks
    clinical = progress + rng.normal(0.0, _CLINICAL_SD, len(p))
    h = clinical + rng.normal(0.0, _LOCAL_SD, len(p))
    label = np.asarray(CLASSES)[np.searchsorted(_THRESHOLDS, h)]

    features = {name: cov[name][p] for name in ("age", "sex", "diabetes_duration_years")}
    features["hba1c"] = cov["hba1c"][p]
    features["location"] = cov["location"][p]
    features.update(_visit_findings(clinical, cov["area0"][p], weeks, rng))
    frame = pd.DataFrame({name: features[name] for name in FEATURES})
    _punch_missing(frame, rng)

    width = max(3, len(str(patients)))
    pid = np.char.add("P", np.char.zfill(p.astype(str), width))
    sid = np.char.add(np.char.add(pid, "_v"), (visits["index"] + 1).astype(str))
    frame.insert(0, "label", label)
    frame.insert(0, "patient_id", pid)
    frame.insert(0, "sample_id", sid)
    return frame, h


def _visits(patients: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """1 + Poisson(2.3) visits per patient, roughly every four weeks."""
    n = 1 + rng.poisson(2.3, patients)
    patient = np.repeat(np.arange(patients), n)
    start = np.repeat(np.cumsum(n) - n, n)
    index = np.arange(len(patient)) - start  # 0 for a patient's first visit
    gap = np.where(index == 0, 0.0, 1.0 + rng.gamma(2.0, 1.5, len(patient)))
    elapsed = np.cumsum(gap)
    week = elapsed - elapsed[start]  # weeks since the patient's first visit
    return {"patient": patient, "index": index, "week": week}


def _covariates(patients: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-patient baseline: covariates and the healing effect they partly explain."""
    age = np.clip(rng.normal(64.0, 11.0, patients), 30, 92).round()
    sex = np.where(rng.random(patients) < 0.7, "male", "female").astype(object)
    duration = rng.gamma(3.0, 4.5, patients).round(1)
    hba1c = np.clip(rng.normal(7.8, 1.3, patients), 4.8, 13.5).round(1)
    sites = np.array(["toe", "forefoot", "midfoot", "heel"], dtype=object)
    site = rng.choice(4, patients, p=[0.35, 0.30, 0.15, 0.20])
    # worse glycaemic control, longer diabetes, older age and heel ulcers heal slower
    explained = (
        -0.25 * (hba1c - 7.8) / 1.3
        - 0.15 * (duration - 13.5) / 7.8
        - 0.10 * (age - 64.0) / 11.0
        - np.array([0.0, 0.1, 0.25, 0.45])[site]
    )
    effect = explained + rng.normal(0.0, _PATIENT_SD, patients)
    return {
        "age": age,
        "sex": sex,
        "diabetes_duration_years": duration,
        "hba1c": hba1c,
        "location": sites[site],
        "effect": effect,
        "rate": _RATE * np.exp(rng.normal(0.0, 0.3, patients)),
        "onset_weeks": 1.0 + rng.gamma(2.0, 3.0, patients),
        "area0": np.exp(rng.normal(1.0, 0.7, patients)),
    }


def _visit_findings(
    clinical: np.ndarray, area0: np.ndarray, weeks: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """What the clinician records at a visit: each a noisy view of the clinical state."""
    n = len(clinical)
    area = area0 * np.exp(-0.6 * clinical + rng.normal(0.0, 0.6, n))
    exudate_score = -clinical + rng.normal(0.0, 1.0, n)
    exudate = np.array(["none", "low", "moderate", "high"], dtype=object)[
        np.searchsorted([-1.2, -0.4, 0.4], exudate_score)
    ]
    p_infected = 1.0 / (1.0 + np.exp(1.5 * clinical + 0.5))
    infection = np.where(rng.random(n) < p_infected, "yes", "no").astype(object)
    days = (7.0 * weeks).round()
    return {
        "wound_area_cm2": area.round(2),
        "days_since_onset": days,
        "exudate": exudate,
        "infection": infection,
    }


def _punch_missing(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    for name, fraction in _MISSING.items():
        frame.loc[rng.random(len(frame)) < fraction, name] = np.nan


def _thermal_maps(
    seen: np.ndarray, patient: np.ndarray, patients: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """(N, S, S) float32 deg C: skin background plus a phase-dependent wound hot-spot."""
    n = len(seen)
    axis = np.linspace(-1.0, 1.0, size)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")  # (S, S)

    # skin: patient-level temperature, a smooth gradient, mild smooth texture
    base = rng.normal(31.5, 0.7, patients)[patient] + rng.normal(0.0, 0.2, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    tilt = rng.uniform(0.2, 0.8, n)
    gradient = tilt[:, None, None] * (
        np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    )
    skin = base[:, None, None] + gradient + 0.15 * _smooth_noise(n, size, 0.15, rng)

    # inflammation in [0, 1]: 1 = acutely inflamed, 0 = remodeled (monotone in -h)
    inflamed = 1.0 / (1.0 + np.exp(2.0 * (seen - sum(_THRESHOLDS) / 2)))
    amp = 0.3 + 3.2 * inflamed  # deg C above the skin
    radius = 0.10 + 0.22 * inflamed  # in half-widths of the map
    centre = rng.uniform(-0.3, 0.3, (patients, 2))[patient] + rng.normal(0, 0.04, (n, 2))
    aspect = np.exp(rng.normal(0.0, 0.2, patients))[patient]
    dy = (yy[None] - centre[:, 0, None, None]) * aspect[:, None, None]
    dx = (xx[None] - centre[:, 1, None, None]) / aspect[:, None, None]
    blob = np.exp(-(dx**2 + dy**2) / (2 * radius[:, None, None] ** 2))  # (N, S, S)
    # granulating tissue is patchy: texture inside the wound, strongest mid-healing
    patchy = 0.25 + 0.5 * inflamed * (1 - inflamed) * 4
    texture = patchy[:, None, None] * _smooth_noise(n, size, 0.06, rng)
    wound = blob * (amp[:, None, None] + texture)

    sensor = rng.normal(0.0, 0.05, (n, size, size))
    return (skin + wound + sensor).astype(np.float32)


def _depth_maps(
    seen: np.ndarray, patient: np.ndarray, patients: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """(N, S, S) float32 mm relative to the skin: skin relief plus the wound bed's bowl."""
    n = len(seen)
    axis = np.linspace(-1.0, 1.0, size)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")  # (S, S)
    relief = 0.3 * _smooth_noise(n, size, 0.2, rng)
    inflamed = 1.0 / (1.0 + np.exp(2.0 * (seen - sum(_THRESHOLDS) / 2)))
    depth = 0.5 + 3.5 * inflamed  # mm below the skin at the bed's deepest point
    radius = 0.15 + 0.12 * inflamed  # in half-widths of the map
    centre = rng.uniform(-0.3, 0.3, (patients, 2))[patient] + rng.normal(0, 0.04, (n, 2))
    dy = yy[None] - centre[:, 0, None, None]
    dx = xx[None] - centre[:, 1, None, None]
    bowl = np.exp(-(dx**2 + dy**2) / (2 * radius[:, None, None] ** 2))  # (N, S, S)
    sensor = rng.normal(0.0, 0.05, (n, size, size))
    return (relief - depth[:, None, None] * bowl + sensor).astype(np.float32)


# Hue angles in the (Cb, Cr) chroma plane, degrees from +Cb towards +Cr, of a wound that is
# fully inflamed (dark purple-red) and fully remodeled (orange-yellow); red lies between.
_HUE_INFLAMED, _HUE_REMODELED = 70.0, 165.0
_CHROMA = 0.16  # the wound's chroma: far enough from the skin's, within the RGB cube
_SKIN_CHROMA = (-0.04, 0.05)  # (Cb, Cr) of the skin, the same for every class
_WOUND_SHADE = 0.12  # how much darker than the skin a wound is, whatever its phase
_WOUND_RADIUS = (0.2, 0.35)  # the wound's radius, in half-widths, whatever its phase


def _photos(
    seen: np.ndarray, patient: np.ndarray, patients: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """(N, 3, S, S) float32 RGB in [0, 1]: skin with a darker wound whose hue is its phase.

    Built as luminance Y plus chroma (Cb, Cr) and turned into RGB by the JPEG (BT.601)
    matrix, whose chroma columns have zero luminance: 0.299 R + 0.587 G + 0.114 B is Y
    exactly, so the class, which moves only Cb and Cr, never shows in the gray image.
    """
    n = len(seen)
    axis = np.linspace(-1.0, 1.0, size)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")  # (S, S)

    # luminance: the patient's skin, the light falling off across the frame, texture, and
    # the wound's fixed shade; nothing of it depends on the phase
    skin = rng.normal(0.55, 0.04, patients)[patient] + rng.normal(0.0, 0.02, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    light = 0.06 * (np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy)
    texture = 0.02 * _smooth_noise(n, size, 0.1, rng)
    radius = rng.uniform(*_WOUND_RADIUS, n)  # in half-widths, whatever the phase
    centre = rng.uniform(-0.3, 0.3, (patients, 2))[patient] + rng.normal(0, 0.04, (n, 2))
    dy = yy[None] - centre[:, 0, None, None]
    dx = xx[None] - centre[:, 1, None, None]
    blob = np.exp(-(dx**2 + dy**2) / (2 * radius[:, None, None] ** 2))  # (N, S, S)
    luma = skin[:, None, None] + light + texture - _WOUND_SHADE * blob

    # chroma: the skin's tone outside the wound, the phase's hue inside it
    inflamed = 1.0 / (1.0 + np.exp(2.0 * (seen - sum(_THRESHOLDS) / 2)))
    hue = np.radians(_HUE_REMODELED + (_HUE_INFLAMED - _HUE_REMODELED) * inflamed)
    wound = _CHROMA * np.stack([np.cos(hue), np.sin(hue)], axis=1)  # (N, 2): (Cb, Cr)
    skin_tone = np.asarray(_SKIN_CHROMA)
    mottle = 0.01 * _smooth_noise(2 * n, size, 0.1, rng).reshape(n, 2, size, size)
    chroma = (
        skin_tone[None, :, None, None] * (1 - blob[:, None])
        + wound[:, :, None, None] * blob[:, None]
        + mottle
    )  # (N, 2, S, S)
    cb, cr = chroma[:, 0], chroma[:, 1]
    rgb = np.stack(  # BT.601 YCbCr -> RGB, (N, 3, S, S)
        [luma + 1.402 * cr, luma - 0.344136 * cb - 0.714136 * cr, luma + 1.772 * cb], axis=1
    )
    sensor = rng.normal(0.0, 0.015, rgb.shape)
    return np.clip(rgb + sensor, 0.0, 1.0).astype(np.float32)


def _smooth_noise(n: int, size: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """(n, S, S) unit-variance Gaussian noise, low-passed at `scale` half-widths (FFT)."""
    white = rng.normal(0.0, 1.0, (n, size, size))
    # the map spans [-1, 1], so pixels are 2 / size apart; freq is in cycles per half-width
    freq = np.fft.fftfreq(size, d=2.0 / size)
    f2 = freq[:, None] ** 2 + freq[None, :] ** 2
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * f2)
    smooth = np.fft.ifft2(np.fft.fft2(white) * kernel).real
    return smooth / smooth.std(axis=(1, 2), keepdims=True)
