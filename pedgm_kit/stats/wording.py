"""Words that follow the interval: one verdict sentence per comparison.

"improves" (or "is worse") only when the 95% interval of the mean per-person difference excludes 0;
otherwise "no evidence of a difference (CI ...)"; where no interval is shown, the sentence says why
and gives the mean difference as descriptive. Never "gains" from a mean alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["verdict"]


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def verdict(row: Mapping) -> str:
    """One sentence on a row of :func:`~pedgm_kit.stats.paired_comparison`.

    Parameters
    ----------
    row : mapping
        Needs ``model, baseline, metric, mean_diff, ci_low, ci_high, n_persons``; uses
        ``higher_is_better`` (default True), ``ci_method``, ``interval_note`` and ``level``.

    Returns
    -------
    str

    Examples
    --------
    >>> verdict({"model": "ft", "baseline": "sct", "metric": "DSC", "mean_diff": 0.05, "ci_low": 0.01,
    ...          "ci_high": 0.09, "n_persons": 14, "ci_method": "t"})
    'ft improves DSC over sct: +0.050 per person (95% CI +0.010 to +0.090, t interval, 14 persons).'
    >>> verdict({"model": "ft", "baseline": "sct", "metric": "DSC", "mean_diff": 0.05, "ci_low": -0.01,
    ...          "ci_high": 0.11, "n_persons": 14, "ci_method": "t"})
    'ft vs sct: no evidence of a difference in DSC (mean +0.050 per person, 95% CI -0.010 to +0.110, t interval, 14 persons).'
    """
    model, base, metric = row["model"], row["baseline"], row["metric"]
    diff, low, high = _num(row.get("mean_diff")), _num(row.get("ci_low")), _num(row.get("ci_high"))
    n = row.get("n_persons", 0)
    n = int(n) if math.isfinite(_num(n)) else 0
    if row.get("level", "scan") == "slice":
        return (f"{model} vs {base}: mean {metric} difference {diff:+.3f} over slices (descriptive: slices of "
                "one person are not independent; no test, no interval).")
    if not math.isfinite(diff):
        return f"{model} vs {base}: no pair of scores in {metric}; nothing to compare."
    if not (math.isfinite(low) and math.isfinite(high)):
        reason = str(row.get("interval_note") or "no interval").removeprefix("no interval: ").split(" (")[0]
        return (f"{model} vs {base}: mean {metric} difference {diff:+.3f} per person over {n} persons, "
                f"descriptive only: no interval is shown ({reason}), so no claim of a difference.")
    method = {"t": "t interval", "wilcoxon_hl": "Hodges-Lehmann interval", "bca": "BCa bootstrap",
              "percentile": "percentile bootstrap"}.get(str(row.get("ci_method") or ""), "95% interval")
    ci = f"95% CI {low:+.3f} to {high:+.3f}, {method}, {n} persons"
    higher = bool(row.get("higher_is_better", True))
    if low > 0 or high < 0:
        better = (low > 0) == higher
        if better:
            return f"{model} improves {metric} over {base}: {diff:+.3f} per person ({ci})."
        return f"{model} is worse than {base} in {metric}: {diff:+.3f} per person ({ci})."
    return f"{model} vs {base}: no evidence of a difference in {metric} (mean {diff:+.3f} per person, {ci})."
