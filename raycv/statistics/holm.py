"""Holm's step-down adjustment of p-values for many comparisons at once.

With m tests, sort the p-values ascending p_(1) <= ... <= p_(m); the adjusted p_(i) is
max over j <= i of min(1, (m - j + 1) * p_(j)). It controls the family-wise error rate
like Bonferroni's m * p, without assuming the tests are independent, and rejects at
least as much. An undefined p-value (a comparison without spread) is no test: it stays
undefined and does not count in m.
"""

from __future__ import annotations


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the order given."""
    defined = [i for i, p in enumerate(p_values) if p is not None and p == p]
    m = len(defined)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(defined, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out
