"""A validated experiment, ready to run: what `experiment.prepare` returns and every
executor, tune trial and ablation combination runs from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raycv.config import Config
from raycv.data.dataset import Dataset
from raycv.folds import FoldSplit


@dataclass
class Prepared:
    """A validated experiment: resolved config, loaded data, every fold's split."""

    config: Config
    dataset: Dataset
    fold_of: np.ndarray  # (R, N) outer fold per sample in each repeat (R = cv.repeats)
    plans: list[FoldSplit]
    sites: list[str] | None = None  # leave one site out: the site each fold holds, in order
