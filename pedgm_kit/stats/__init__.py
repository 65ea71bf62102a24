"""Paired statistics for comparing segmentation models, and test-retest reproducibility.

The original study compared models with boxplots only. This module adds what it named as missing:

- :func:`wilcoxon_signed_rank` -- the paired Wilcoxon signed-rank test of one model against the
  baseline on the same scans (or slices), through :func:`scipy.stats.wilcoxon`, with the small
  and degenerate cases reported in a ``note`` instead of warnings;
- :func:`bootstrap_mean_diff` -- a percentile bootstrap CI of the mean paired difference that
  resamples *persons* (all scans or slices of a drawn person come along), because scans and slices
  of one person are not independent;
- :func:`holm` -- Holm's step-down adjustment of p-values across the comparisons made;
- :func:`paired_comparison` -- all three for every model and metric against a baseline, from the
  tidy table of :func:`pedgm_kit.evaluate.evaluate_models`;
- :func:`retest_cv` -- the within-person coefficient of variation of GM area between a scan and its
  rescan (run-1 vs run-2), per model: a model that gains Dice but loses reproducibility shows it;
- :func:`markdown_summary` -- all of the above as a short Markdown report.

Slice-level tests treat the slices of a scan as independent pairs, which they are not (neighbouring
slices of one person are correlated), so their p-values are optimistic; they are flagged as such.
The bootstrap CI resamples persons at both levels and stays valid.

Rooms: :mod:`~pedgm_kit.stats.paired` (the single tests), :mod:`~pedgm_kit.stats.compare` (from the
tidy table), :mod:`~pedgm_kit.stats.retest` and :mod:`~pedgm_kit.stats.summary` (Markdown).
"""

from __future__ import annotations

from ..metrics import HIGHER_IS_BETTER
from .compare import MIN_CI_PERSONS, headline_table, paired_comparison
from .paired import MIN_WILCOXON_PAIRS, bootstrap_mean_diff, holm, wilcoxon_signed_rank
from .retest import retest_cv
from .summary import markdown_summary

__all__ = [
    "HIGHER_IS_BETTER",
    "MIN_CI_PERSONS",
    "headline_table",
    "MIN_WILCOXON_PAIRS",
    "bootstrap_mean_diff",
    "holm",
    "markdown_summary",
    "paired_comparison",
    "retest_cv",
    "wilcoxon_signed_rank",
]
