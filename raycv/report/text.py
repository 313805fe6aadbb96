"""Plain-text tables for the terminal, from a run's summary.json."""

from __future__ import annotations

from raycv.summary import RunSummary


def _f(x) -> str:
    return "  n/a" if x is None else f"{x:5.3f}"


def kappa_table(summary: RunSummary) -> str:
    """Rows = models; columns = folds (with repeats or many folds, their range), mean +-
    std over the (repeat, fold) units, pooled out-of-fold kappa."""
    models = summary.models
    units = [(f.repeat, f.fold) for f in summary.folds]
    n_units = len(next(iter(models.values())).kappa_per_fold)
    per_unit = len(units) == n_units and n_units <= 6 and not any(r for r, _ in units)
    width = max(len(m) for m in models) + 2
    if per_unit:
        columns = "".join(f"{'fold ' + str(k):>8}" for _, k in units)
    else:  # 5 repeats x 3 folds do not fit a terminal line: the spread says enough
        columns = f"{f'{n_units} folds: min..max':>20}"
    head = f"{'model':<{width}}{columns}{'mean +- std':>16}{'pooled':>9}"
    lines = [f"kappa ({summary.kappa_weights})", head, "-" * len(head)]
    for m, s in models.items():
        values = s.kappa_per_fold
        if per_unit:
            folds = "".join(f"{_f(k):>8}" for k in values)
        else:
            known = [k for k in values if k is not None]
            span = f"{_f(min(known))}..{_f(max(known)).strip()}" if known else "n/a"
            folds = f"{span:>20}"
        mean = f"{_f(s.kappa_mean)} +- {_f(s.kappa_std).strip()}"
        lines.append(f"{m:<{width}}{folds}{mean:>16}{_f(s.kappa_pooled):>9}")
    if not per_unit and summary.repeats > 1:
        lines.append(f"({summary.repeats} repeats; pooled: the mean over repeats)")
    return "\n".join(lines)


def stage_table(summary: RunSummary) -> str:
    """Per fold: inner-validation score of stage 1 and stage 2, and which one was kept."""
    folds = summary.folds
    if not folds or folds[0].stage2_kept is None:
        return ""
    repeated = any(f.repeat for f in folds)
    lines = [
        f"two-stage fusion (inner-validation {summary.monitor})",
        ("repeat  " if repeated else "") + "fold  stage1  stage2  kept",
    ]
    for f in folds:
        kept = "stage 2" if f.stage2_kept else "stage 1 (stage 2 did not beat it)"
        lines.append(
            (f"{f.repeat:>6}  " if repeated else "")
            + f"{f.fold:>4}  {_f(f.stage1_val_score)}  {_f(f.stage2_val_score)}  {kept}"
        )
    return "\n".join(lines)
