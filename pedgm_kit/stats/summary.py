"""The statistics as a short Markdown report."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["markdown_summary"]


# --------------------------------------------------------------------------------------------
# Markdown report
# --------------------------------------------------------------------------------------------


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def _comparison_table(tests: pd.DataFrame) -> list[str]:
    lines = [
        "| metric | model | n pairs | persons | baseline mean | model mean | mean diff [95% CI] | W | p | p (Holm) "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in tests.itertuples(index=False):
        ci = f"{_fmt(row.mean_diff)} [{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"
        lines.append(
            f"| {row.metric} | {row.model} | {row.n_pairs} | {row.n_persons} | {_fmt(row.mean_baseline)} | "
            f"{_fmt(row.mean_model)} | {ci} | {_fmt(row.wilcoxon_W, 1)} | {_fmt(row.p_value, 4)} | "
            f"{_fmt(row.p_holm, 4)} | {row.note or ''} |"
        )
    return lines


def markdown_summary(
    tests: pd.DataFrame,
    *,
    cv: pd.DataFrame | None = None,
    baseline: str | None = None,
    scan_means: Mapping[str, float] | None = None,
    scope: str = (
        "Scan-level scores are computed on the labelled slices only (slices where the manual GM mask has a voxel)."
    ),
    alpha: float = 0.05,
) -> str:
    """A Markdown report of the comparisons and the test-retest CVs.

    Parameters
    ----------
    tests : pandas.DataFrame
        Rows of :func:`paired_comparison` (one or both levels, concatenated).
    cv : pandas.DataFrame, optional
        The ``summary`` of :func:`retest_cv`.
    baseline : str, optional
        Baseline label; default: the ``baseline`` column of ``tests``.
    scan_means : mapping of str to float, optional
        Mean scan-level Dice per model (all models, baseline included), used to flag models that
        gain Dice but lose reproducibility when ``tests`` has no DSC row.
    scope : str
        Sentence stating which slices the scores are computed on; printed first.
    alpha : float, default 0.05
        Level quoted in the text.

    Returns
    -------
    str
        Markdown: scope, one table per level, the CV table and plain-language flags.
    """
    lines = ["## Model comparison", "", scope, ""]
    if baseline is None and len(tests):
        baseline = str(tests["baseline"].iloc[0])
    if baseline is not None:
        lines += [f"Baseline: **{baseline}**. Differences are model minus baseline; for DSC, JI, CC, TPR, "
                  "TNR and PPV higher is better, for distances (MSD, HSD, SHD, SMD, mm) lower is better. "
                  "95% CIs are percentile bootstraps resampling persons; p-values are paired Wilcoxon "
                  f"signed-rank tests, Holm-adjusted across the comparisons of each level (alpha = {alpha}).", ""]
    titles = (("scan", "Scan level"), ("slice", "Slice level (slices are not independent: p-values optimistic)"))
    for level, title in titles:
        part = tests[tests["level"] == level] if len(tests) else tests
        if len(part):
            lines += [f"### {title}", ""] + _comparison_table(part) + [""]
    if not len(tests):
        lines += ["Only one model: nothing to compare.", ""]

    dice_gain: dict[str, float] = {}
    scan_dsc = tests[(tests["level"] == "scan") & (tests["metric"] == "DSC")] if len(tests) else tests
    for row in scan_dsc.itertuples(index=False):
        dice_gain[row.model] = row.mean_diff
    if not dice_gain and scan_means and baseline in scan_means:
        dice_gain = {m: v - scan_means[baseline] for m, v in scan_means.items() if m != baseline}

    if cv is not None and len(cv):
        lines += ["### Test-retest reproducibility (GM area, run-1 vs run-2)", "",
                  "| model | pairs | persons | slices | CV per slice (%) | CV of mean area (%) | mean GM area (mm²) |",
                  "|---|---|---|---|---|---|---|"]
        for row in cv.itertuples(index=False):
            lines.append(f"| {row.model} | {row.n_pairs} | {row.n_persons} | {row.n_slices} | "
                         f"{_fmt(row.cv_slice_pct, 2)} | {_fmt(row.cv_mean_area_pct, 2)} | "
                         f"{_fmt(row.mean_area_mm2, 2)} |")
        lines.append("")
        by_model = cv.set_index("model")
        if baseline in by_model.index:
            base_cv = by_model.loc[baseline, "cv_slice_pct"]
            for mdl, gain in dice_gain.items():
                if mdl not in by_model.index or not math.isfinite(gain):
                    continue
                m_cv = by_model.loc[mdl, "cv_slice_pct"]
                if gain > 0 and math.isfinite(m_cv) and math.isfinite(base_cv) and m_cv > base_cv:
                    lines.append(f"- **{mdl}** gains Dice ({_fmt(gain)} over {baseline}) but is less reproducible "
                                 f"(CV per slice {_fmt(m_cv, 2)} % vs {_fmt(base_cv, 2)} %).")
                elif gain > 0:
                    lines.append(f"- **{mdl}** gains Dice ({_fmt(gain)} over {baseline}) and is at least as "
                                 "reproducible "
                                 f"(CV per slice {_fmt(m_cv, 2)} % vs {_fmt(base_cv, 2)} %).")
                else:
                    lines.append(f"- **{mdl}** does not gain Dice over {baseline} ({_fmt(gain)}); CV per slice "
                                 f"{_fmt(m_cv, 2)} % vs {_fmt(base_cv, 2)} %.")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
