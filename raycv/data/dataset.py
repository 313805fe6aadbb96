"""The in-memory dataset every fold reads: one record, validated once at load time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ImageSet:
    """Every image of one modality, for every visit, as one contiguous array.

    A visit may have any number of images (angles, before/after debridement), or none
    (`data.missing_images: mask`). Images are stored visit by visit, in the visit order
    of the Dataset: visit i's images are `pixels[offsets[i]:offsets[i + 1]]`. One
    array per modality is what makes the record cheap to put in Ray's object store once
    and read zero-copy from every fold.

    A map modality stores (M, S, S); a photo modality (data.rgb) stores (M, 3, S, S),
    channels first as the CNN takes them.
    """

    # (M, S, S) or (M, 3, S, S) float32, finite, already resized to data.image_size
    pixels: np.ndarray
    visit: np.ndarray  # (M,) int64: the Dataset row each image belongs to, non-decreasing

    def __post_init__(self):
        assert self.pixels.ndim in (3, 4) and len(self.visit) == len(self.pixels)
        assert np.all(np.diff(self.visit) >= 0), "images must be stored visit by visit"

    @classmethod
    def of(cls, per_visit: list[np.ndarray], size: int, channels: int = 1) -> ImageSet:
        """(k_i, S, S) arrays (with `channels` 3: (k_i, 3, S, S)), one per visit in row
        order (k_i may be 0) -> ImageSet."""
        counts = np.array([len(a) for a in per_visit], dtype=np.int64)
        shape = (size, size) if channels == 1 else (channels, size, size)
        pixels = np.empty((int(counts.sum()), *shape), dtype=np.float32)
        start = 0
        for a in per_visit:
            pixels[start : start + len(a)] = a
            start += len(a)
        return cls(pixels, np.repeat(np.arange(len(per_visit), dtype=np.int64), counts))

    @classmethod
    def single(cls, pixels: np.ndarray) -> ImageSet:
        """(N, S, S) or (N, 3, S, S): exactly one image per visit."""
        return cls(np.asarray(pixels, dtype=np.float32), np.arange(len(pixels), dtype=np.int64))

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """Images `rows` as a (K, c, S, S) batch, copied out of the (read-only) store:
        c = 1 for a map, 3 for a colour photo."""
        out = self.pixels[rows]
        return out[:, None] if out.ndim == 3 else out

    def __len__(self) -> int:
        """The number of images (not visits)."""
        return len(self.pixels)

    @property
    def size(self) -> int:
        return int(self.pixels.shape[-1])

    @property
    def channels(self) -> int:
        """1 for a map, 3 for a colour photo (data.rgb)."""
        return 1 if self.pixels.ndim == 3 else int(self.pixels.shape[1])

    def counts(self, n_visits: int) -> np.ndarray:
        """(N,) images per visit."""
        return np.bincount(self.visit, minlength=n_visits)

    def offsets(self, n_visits: int) -> np.ndarray:
        """(N + 1,) where each visit's images start; visit i's end at offsets[i + 1]."""
        return np.concatenate([[0], np.cumsum(self.counts(n_visits))]).astype(np.int64)

    def rows_of(self, visits: np.ndarray, n_visits: int) -> tuple[np.ndarray, np.ndarray]:
        """Image rows of `visits` (in that order, each visit's images together) and how
        many images each of them has: (rows (K,), counts (len(visits),))."""
        offsets = self.offsets(n_visits)
        visits = np.asarray(visits, dtype=np.int64)
        counts = offsets[visits + 1] - offsets[visits]
        starts = np.repeat(offsets[visits], counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return starts + within, counts

    def select(self, visits: np.ndarray, n_visits: int) -> ImageSet:
        """The images of `visits`, renumbered 0..len(visits)-1 in that order."""
        rows, counts = self.rows_of(visits, n_visits)
        owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        return ImageSet(self.pixels[rows], owner)


@dataclass(frozen=True)
class Dataset:
    """A validated cohort. Row i of every per-visit field is the same sample (wound visit).

    `images[m]` holds modality m's images of every visit (ImageSet): one or several per
    visit, or none where `data.missing_images: mask` kept a visit without them.
    """

    sample_id: np.ndarray  # (N,) str, unique
    patient_id: np.ndarray  # (N,) str
    y: np.ndarray  # (N,) int64: index into `classes`
    classes: tuple[str, ...]  # ordinal class labels, in order
    features: pd.DataFrame  # (N, F) raw metadata features: numeric or str, NaN allowed
    images: dict[str, ImageSet]  # modality -> every image of the modality
    # what loading found, for `data check`, the run log and provenance.json (dropped
    # visits, columns read as numbers despite a few text cells, per-modality file
    # kinds and sizes); not part of the fingerprint
    notes: dict = field(default_factory=dict, compare=False)
    # image modality -> (M, D) float32: each image's output of the modality's frozen
    # pretrained backbone, computed once for the cohort (raycv.frozen_features); empty:
    # a fold computes what it needs itself. Not part of the fingerprint.
    frozen: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        n = len(self.sample_id)
        assert len(self.patient_id) == n and len(self.y) == n and len(self.features) == n
        for name, images in list(self.images.items()):
            if not isinstance(images, ImageSet):  # (N, S, S) or (N, 3, S, S): one per visit
                self.images[name] = images = ImageSet.single(images)
            assert len(images) == 0 or images.visit[-1] < n, name

    def __len__(self) -> int:
        return len(self.sample_id)

    @property
    def labels(self) -> np.ndarray:
        """(N,) str class labels."""
        return np.asarray(self.classes, dtype=object)[self.y]

    def has_image(self, modality: str) -> np.ndarray:
        """(N,) bool: the visit has at least one image of `modality`."""
        return self.images[modality].counts(len(self)) > 0

    def fingerprint(self) -> str:
        """A content hash of ids, labels, features and pixels: names the data a run used."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.classes).encode())
        h.update("\x1f".join(map(str, self.sample_id)).encode())
        h.update("\x1f".join(map(str, self.patient_id)).encode())
        h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        h.update(pd.util.hash_pandas_object(self.features, index=False).values.tobytes())
        h.update("\x1f".join(map(str, self.features.columns)).encode())
        for name in sorted(self.images):
            images = self.images[name]
            h.update(name.encode())
            if images.channels > 1:  # maps hash as before; a photo's bytes say its shape too
                h.update(f"channels={images.channels}".encode())
            h.update(np.ascontiguousarray(images.pixels, dtype=np.float32).tobytes())
            if not np.array_equal(images.visit, np.arange(len(self))):
                # one image per visit hashes as before, so earlier fingerprints still hold
                h.update(np.ascontiguousarray(images.visit, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def with_labels(self, y: np.ndarray) -> Dataset:
        """The same cohort with other labels (for leak tests: relabelled / shuffled)."""
        return Dataset(
            sample_id=self.sample_id,
            patient_id=self.patient_id,
            y=np.asarray(y, dtype=np.int64),
            classes=self.classes,
            features=self.features,
            images=self.images,
            notes=self.notes,
        )
