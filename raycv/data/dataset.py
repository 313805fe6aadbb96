"""The in-memory dataset every fold reads: one record, validated once at load time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Dataset:
    """A validated cohort. Row i of every field is the same sample (wound visit).

    Images are already resized to `data.image_size`, so each modality is one
    contiguous float32 array: cheap to put in Ray's object store once and read
    zero-copy from every fold.
    """

    sample_id: np.ndarray  # (N,) str, unique
    patient_id: np.ndarray  # (N,) str
    y: np.ndarray  # (N,) int64: index into `classes`
    classes: tuple[str, ...]  # ordinal class labels, in order
    features: pd.DataFrame  # (N, F) raw metadata features: numeric or str, NaN allowed
    images: dict[str, np.ndarray]  # modality -> (N, S, S) float32, finite

    def __post_init__(self):
        n = len(self.sample_id)
        assert len(self.patient_id) == n and len(self.y) == n and len(self.features) == n
        for name, arr in self.images.items():
            assert arr.shape[0] == n and arr.ndim == 3, (name, arr.shape)

    def __len__(self) -> int:
        return len(self.sample_id)

    @property
    def labels(self) -> np.ndarray:
        """(N,) str class labels."""
        return np.asarray(self.classes, dtype=object)[self.y]

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
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.images[name], dtype=np.float32).tobytes())
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
        )
