"""The fold models of a finished run as one ensemble: loaded without running code.

Each fold's final models are what `raycv run` evaluated on its test fold: the forest fit
on the whole training fold (with its imputation and encoding), each pretrained image
branch (with its pixel normalisation), the stage 1 fusion and the final fusion (stage 2
where the fold kept it, else stage 1). `fold_probabilities` computes, for any visits,
exactly what the fold computed for its test visits; the ensemble is the mean over folds
(as nnU-Net averages its fold models).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.pipeline import Pipeline

from raycv.checkpoints import load_phase_file
from raycv.config import Config
from raycv.data.dataset import Dataset
from raycv.errors import RaycvError
from raycv.models.branches import build_branch
from raycv.models.cnn import ImageBranch
from raycv.models.forest import load_forest, predict_forest
from raycv.models.fusion import LateFusion, fuse
from raycv.models.visits import visit_mean
from raycv.phase_states import ForestState, PretrainState, Stage1State, Stage2State
from raycv.phases import FOREST, STAGE1, STAGE2, pretrain_file
from raycv.results import model_names


@dataclass
class FoldModels:
    unit: str  # fold<k>, or r<i>-fold<k> in repeat i of a repeated CV
    forest: Pipeline | None  # None: the run had no metadata branch
    pretrained: dict[str, ImageBranch]  # the image models; stage 1 keeps them frozen
    stage1: LateFusion | None  # None: one modality, no fusion
    fusion: LateFusion | None
    stage2_kept: bool


def phase_files(config: Config) -> list[str]:
    """The phase files of a fold that predict reads."""
    names = [FOREST] if "metadata" in config.modalities else []
    names += [pretrain_file(m) for m in config.image_modalities]
    if len(config.modalities) >= 2:
        names += [STAGE1, STAGE2]
    return names


def missing_files(run_dir: Path, config: Config, units: list[str]) -> list[Path]:
    return [
        run_dir / "checkpoints" / unit / f"{name}.pt"
        for unit in units
        for name in phase_files(config)
        if not (run_dir / "checkpoints" / unit / f"{name}.pt").is_file()
    ]


def load_fold_models(run_dir: Path, config: Config, unit: str) -> FoldModels:
    """One (repeat, fold) unit's models; RaycvError naming the file for anything unusable."""
    fold_dir = run_dir / "checkpoints" / unit
    states = {name: load_phase_file(fold_dir / f"{name}.pt") for name in phase_files(config)}

    forest = None
    if FOREST in states:
        where = fold_dir / f"{FOREST}.pt"
        fitted = ForestState.from_dict(states[FOREST]).model
        if fitted is None:
            raise RaycvError(
                f"{where} holds no fitted forest (raycv before 0.2 kept only its "
                "probabilities); recompute the run with --overwrite to predict with it"
            )
        forest = load_forest(fitted, str(where))

    def branch(m: str, state: dict) -> ImageBranch:
        b = build_branch(config, m)
        b.load_state_dict(state)
        return b.eval()

    pretrained = {
        m: branch(m, PretrainState.from_dict(states[pretrain_file(m)]).state)
        for m in config.image_modalities
    }
    stage1 = fusion = None
    kept = False
    if STAGE1 in states:
        s1, s2 = Stage1State.from_dict(states[STAGE1]), Stage2State.from_dict(states[STAGE2])
        stage1 = _fusion(config, pretrained, s1.state)
        fusion = _fusion(config, pretrained, s2.state)  # stage 2's weights where it was kept
        kept = bool(s2.kept)
    return FoldModels(unit, forest, pretrained, stage1, fusion, kept)


def _fusion(config: Config, pretrained: dict[str, ImageBranch], state: dict) -> LateFusion:
    branches = {m: build_branch(config, m) for m in pretrained}
    # the order of the weights buffer is data.modalities' order, as in run_fold
    fusion = LateFusion(branches, {m: 1.0 for m in config.modalities})
    fusion.load_state_dict(state)
    return fusion.eval()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@torch.no_grad()
def fold_probabilities(
    folds: list[FoldModels], dataset: Dataset, config: Config, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """model -> (K folds, N visits, C) probabilities; NaN rows where an image model has no
    image of the visit. The visits go through in batches, each batch once through every
    fold's models; an image branch stage 2 left as it was is not run twice."""
    models, n, n_classes = model_names(config), len(dataset), len(config.classes)
    out = {m: np.full((len(folds), n, n_classes), np.nan) for m in models}
    meta = {}
    if "metadata" in config.modalities:
        for i, f in enumerate(folds):
            meta[i] = predict_forest(f.forest, dataset.features, n_classes)
            out["metadata"][i] = meta[i]
    # a fusion's branch that differs from the pretrained one (stage 2 kept) runs on its own
    own = {
        (i, name, m): getattr(f, attr).branches[m]
        for i, f in enumerate(folds)
        for name, attr in (("fusion_stage1", "stage1"), ("fusion", "fusion"))
        if getattr(f, attr) is not None
        for m in config.image_modalities
        if not _same_weights(getattr(f, attr).branches[m], f.pretrained[m])
    }
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        images = {m: _batch_images(dataset, m, idx) for m in config.image_modalities}
        for i, f in enumerate(folds):
            pre = {}
            for m, (x, owner) in images.items():
                pre[m] = visit_mean(f.pretrained[m](x).softmax(-1), owner, len(idx))
                out[m][i, idx] = _known_rows(*pre[m])
            for name, fusion in (("fusion_stage1", f.stage1), ("fusion", f.fusion)):
                if fusion is None:
                    continue
                parts = []
                for b in fusion.names:
                    if b == "metadata":
                        parts.append((torch.as_tensor(meta[i][idx], dtype=torch.float32), None))
                    elif (i, name, b) in own:
                        x, owner = images[b]
                        parts.append(visit_mean(own[i, name, b](x).softmax(-1), owner, len(idx)))
                    else:
                        parts.append(pre[b])
                out[name][i, idx] = fuse(parts, fusion.weights).exp().double().numpy()
    return out


def _batch_images(dataset: Dataset, m: str, idx: np.ndarray):
    """Visits idx's images of m, (K, c, S, S), and the batch visit of each (None: one per
    visit, in order)."""
    rows, counts = dataset.images[m].rows_of(idx, len(dataset))
    x = torch.from_numpy(dataset.images[m].batch(rows))
    if np.all(counts == 1):
        return x, None
    return x, torch.as_tensor(np.repeat(np.arange(len(idx)), counts))


def _known_rows(probs: torch.Tensor, present: torch.Tensor | None) -> np.ndarray:
    out = probs.double().numpy().copy()
    if present is not None:
        out[~present.numpy()] = np.nan
    return out


def ensemble(per_fold: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """model -> ((N, C) mean over folds, (N,) standard deviation over folds of the
    probability of the ensemble's predicted class: how much the folds disagree)."""
    out = {}
    for m, p in per_fold.items():
        with np.errstate(invalid="ignore"):
            mean = p.mean(0)  # a visit without the modality's image stays NaN
        known = ~np.isnan(mean).any(1)
        top = np.where(known, np.nan_to_num(mean).argmax(1), 0)
        chosen = p[:, np.arange(p.shape[1]), top]  # (K, N)
        spread = np.where(known, chosen.std(0), np.nan)
        out[m] = (mean, spread)
    return out
