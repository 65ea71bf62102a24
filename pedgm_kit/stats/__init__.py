"""Paired statistics for comparing segmentation models, and test-retest reproducibility.

The original study compared models with boxplots only. This module adds what it named as missing:

- :func:`person_means` -- the person is the unit: each person's scans averaged first, so two
  sessions of one person make one pair in every test and interval;
- :func:`person_interval`, :data:`RULE` -- the 95% interval of a mean over persons that the
  measured rule allows (``benchmarks/ci_coverage.py``); none, with the reason, where no candidate
  kept its coverage for that many persons;
- :func:`failure_table`, :func:`penalise_failures` -- failed (empty) predictions listed per model,
  their undefined distances given :data:`FAILURE_PENALTY_MM` so comparisons include them;
- :func:`verdict` -- one sentence per comparison that follows the interval ("improves" only when
  it excludes 0);
- :func:`group_table` -- results per site or any participant covariate, n persons per row;
- :func:`wilcoxon_signed_rank` -- the paired Wilcoxon signed-rank test of per-person differences,
  through :func:`scipy.stats.wilcoxon`, with the small and degenerate cases reported in a ``note``
  instead of warnings;
- :func:`bootstrap_mean_diff` -- a percentile bootstrap CI of the mean paired difference that
  resamples *persons* (all scans or slices of a drawn person come along), because scans and slices
  of one person are not independent;
- :func:`holm` -- Holm's step-down adjustment of p-values across the comparisons made;
- :func:`paired_comparison` -- every model and metric against a baseline over persons, from the
  tidy table of :func:`pedgm_kit.evaluate.evaluate_models` (slice level: descriptive only);
- :func:`retest_cv` -- the within-person coefficient of variation of GM area between a scan and its
  rescan (run-1 vs run-2), per model: a model that gains Dice but loses reproducibility shows it;
- :func:`markdown_summary` -- all of the above as a short Markdown report.

Slices of one person are not independent, so slice-level rows are descriptive: no p-value, no
interval.

Rooms: :mod:`~pedgm_kit.stats.paired` (the single tests), :mod:`~pedgm_kit.stats.compare` (from the
tidy table), :mod:`~pedgm_kit.stats.retest` and :mod:`~pedgm_kit.stats.summary` (Markdown).
"""

from __future__ import annotations

from ..metrics import HIGHER_IS_BETTER
from .compare import MIN_CI_PERSONS, headline_table, paired_comparison, person_means
from .failures import FAILURE_PENALTY_MM, failure_table, penalise_failures
from .groups import check_covariates, group_table
from .intervals import RULE, choose_method, person_interval
from .paired import MIN_WILCOXON_PAIRS, bootstrap_mean_diff, holm, wilcoxon_signed_rank
from .retest import retest_cv
from .summary import markdown_summary
from .wording import verdict

__all__ = [
    "FAILURE_PENALTY_MM",
    "HIGHER_IS_BETTER",
    "RULE",
    "check_covariates",
    "choose_method",
    "failure_table",
    "group_table",
    "penalise_failures",
    "person_interval",
    "person_means",
    "verdict",
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
