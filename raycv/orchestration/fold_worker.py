"""The per-worker loop of one fold's trainer.

Kept import-light on purpose: Ray unpickles this function in every fold's train
controller too, and a controller that imported torch and scikit-learn would spend
seconds of a 2-core machine on imports it never uses. The heavy imports happen
inside the function, on the worker only.
"""

from __future__ import annotations


def train_fold(cfg: dict) -> dict:
    """Run one fold on a Ray Train worker; returns the FoldResult as a dict.

    cfg: {"config": Config as dict, "plan": FoldSplit fields, "dataset": ObjectRef of the
    Dataset, "relay": ProgressRelay handle, "until": None or 'stage1', "shared": {phase:
    path of a phase file computed elsewhere}}. Knows nothing of Tune or of the driver.
    """
    import shutil
    import tempfile
    from pathlib import Path

    import ray
    import ray.train
    import torch

    from raycv.checkpoints import PhaseStore
    from raycv.config import from_dict
    from raycv.fold import run_fold
    from raycv.folds import FoldSplit
    from raycv.orchestration.sequential import fold_threads

    if cfg.get("run_folder"):  # a node that joined after the driver's check_shared_storage
        from raycv.orchestration.storage_check import check_visible_here

        check_visible_here(cfg["run_folder"])
    config = from_dict(cfg["config"])
    torch.set_num_threads(fold_threads(config))
    plan = FoldSplit(**cfg["plan"])
    dataset = ray.get(cfg["dataset"])  # zero-copy, read-only views of the driver's arrays
    relay = cfg["relay"]
    node = f"{ray.get_runtime_context().get_node_id()[:12]} ({ray.util.get_node_ip_address()})"
    relay.push.remote((plan.fold, "start", -1, {"note": f"on node {node}"}))
    # Ray sets CUDA_VISIBLE_DEVICES to the fold's GPU (or its share of one)
    device = ray.train.torch.get_device() if config.resources.per_fold.gpu > 0 else "cpu"

    # Phase checkpoints live in a worker-local folder that each save reports to Ray Train,
    # which copies it to the run's storage; a restarted worker gets the latest one back.
    local = Path(tempfile.mkdtemp(prefix=f"raycv-fold{plan.fold}-"))
    restored = ray.train.get_checkpoint()
    if restored is not None:
        restored.to_directory(str(local))
        phases = sorted(p.stem for p in local.glob("*.pt"))
        relay.push.remote((plan.fold, "restart", -1, {"note": f"resumed with phases {phases}"}))

    def on_save(phase: str) -> None:
        ray.train.report(
            {"fold": plan.fold, "phase": phase},
            checkpoint=ray.train.Checkpoint.from_directory(str(local)),
            checkpoint_dir_name=phase,
            delete_local_checkpoint_after_upload=False,
        )

    def progress(fold: int, phase: str, epoch: int, row: dict) -> None:
        relay.push.remote((fold, phase, epoch, row))

    try:
        shared = {phase: Path(path) for phase, path in (cfg.get("shared") or {}).items()}
        store = PhaseStore(local, on_save=on_save, shared=shared)
        result = run_fold(
            dataset,
            plan,
            config,
            store=store,
            progress=progress,
            device=device,
            until=cfg.get("until"),
        )
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return None if result is None else result.to_dict()
