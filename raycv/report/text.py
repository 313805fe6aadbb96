"""Plain-text tables for the terminal, from a run's summary.json."""

from __future__ import annotations


def _f(x) -> str:
    return "  n/a" if x is None else f"{x:5.3f}"


def kappa_table(summary: dict) -> str:
    """Rows = models; columns = folds, mean +- std, pooled out-of-fold kappa."""
    models = summary["models"]
    n_folds = len(next(iter(models.values()))["kappa_per_fold"])
    width = max(len(m) for m in models) + 2
    head = (
        f"{'model':<{width}}"
        + "".join(f"{'fold ' + str(k):>8}" for k in range(n_folds))
        + f"{'mean +- std':>16}{'pooled':>9}"
    )
    lines = [f"kappa ({summary['kappa_weights']})", head, "-" * len(head)]
    for m, s in models.items():
        folds = "".join(f"{_f(k):>8}" for k in s["kappa_per_fold"])
        mean = f"{_f(s['kappa_mean'])} +- {_f(s['kappa_std']).strip()}"
        lines.append(f"{m:<{width}}{folds}{mean:>16}{_f(s['kappa_pooled']):>9}")
    return "\n".join(lines)


def stage_table(summary: dict) -> str:
    """Per fold: inner-validation score of stage 1 and stage 2, and which one was kept."""
    folds = summary.get("folds", [])
    if not folds or folds[0].get("stage2_kept") is None:
        return ""
    monitor = summary.get("monitor", "val_kappa")
    lines = [f"two-stage fusion (inner-validation {monitor})", "fold  stage1  stage2  kept"]
    for f in folds:
        kept = "stage 2" if f["stage2_kept"] else "stage 1 (stage 2 did not beat it)"
        lines.append(
            f"{f['fold']:>4}  {_f(f['stage1_val_score'])}  {_f(f['stage2_val_score'])}  {kept}"
        )
    return "\n".join(lines)
