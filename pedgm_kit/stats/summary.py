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
        "| metric | model | persons | scans | failed persons | baseline mean | model mean | mean diff "
        "| 95% CI | W | p | p (Holm) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in tests.itertuples(index=False):
        if math.isfinite(float(row.ci_low)) and math.isfinite(float(row.ci_high)):
            ci = f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}] ({row.ci_method})"
        else:
            ci = "none shown"
        lines.append(
            f"| {row.metric} | {row.model} | {row.n_persons} | {row.n_scans} | {row.failed_persons} | "
            f"{_fmt(row.mean_baseline)} | {_fmt(row.mean_model)} | {_fmt(row.mean_diff)} | {ci} | "
            f"{_fmt(row.wilcoxon_W, 1)} | {_fmt(row.p_value, 4)} | {_fmt(row.p_holm, 4)} | {row.note or ''} |"
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
        Mean scan-level Dice per model (all models, baseline included), used (descriptively, never
        as a claim of a difference) beside the CVs when ``tests`` has no DSC row.
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
        lines += [f"Baseline: **{baseline}**. The person is the unit: each person's scans are averaged first, "
                  "so two sessions of one person make one pair. Differences are model minus baseline; for DSC, JI, "
                  "CC, TPR, TNR and PPV higher is better, for distances (MSD, HSD, SHD, SMD, mm) lower is better. "
                  "A failed (empty) prediction keeps its place: its undefined distances are penalised "
                  "(see the failures table). A 95% interval is shown only where the method's coverage was "
                  "measured to hold for that many persons (benchmarks/ci_coverage.py); p-values are paired "
                  f"Wilcoxon signed-rank tests over persons, Holm-adjusted (alpha = {alpha}).", ""]
    scan_rows = tests[tests["level"] == "scan"] if len(tests) else tests
    if len(scan_rows):
        lines += ["### Verdicts", ""] + [f"- {row.verdict}" for row in scan_rows.itertuples(index=False)] + [""]
        notes = sorted({str(n) for n in scan_rows["interval_note"] if str(n).startswith("no interval")})
        lines += [f"Intervals: {n}" for n in notes] + ([""] if notes else [])
        lines += ["### Persons (scan level, averaged per person)", ""] + _comparison_table(scan_rows) + [""]
    slice_rows = tests[tests["level"] == "slice"] if len(tests) else tests
    if len(slice_rows):
        lines += ["### Slices (descriptive only: slices of one person are not independent; no test)", "",
                  "| metric | model | slice pairs | persons | mean diff | median diff |", "|---|---|---|---|---|---|"]
        lines += [f"| {r.metric} | {r.model} | {r.n_scans} | {r.n_persons} | {_fmt(r.mean_diff)} | "
                  f"{_fmt(r.median_diff)} |" for r in slice_rows.itertuples(index=False)] + [""]
    if not len(tests):
        lines += ["Only one model: nothing to compare.", ""]

    dsc_rows: dict[str, dict] = {}
    scan_dsc = tests[(tests["level"] == "scan") & (tests["metric"] == "DSC")] if len(tests) else tests
    for row in scan_dsc.to_dict("records"):
        dsc_rows[row["model"]] = row
    if not dsc_rows and scan_means and baseline in scan_means:
        dsc_rows = {m: {"mean_diff": v - scan_means[baseline], "ci_low": math.nan, "ci_high": math.nan}
                    for m, v in scan_means.items() if m != baseline}

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
            for mdl, row in dsc_rows.items():
                gain, low = row["mean_diff"], row["ci_low"]
                if mdl not in by_model.index or not math.isfinite(gain):
                    continue
                m_cv = by_model.loc[mdl, "cv_slice_pct"]
                cvs = f"CV per slice {_fmt(m_cv, 2)} % vs {_fmt(base_cv, 2)} %"
                improves = math.isfinite(low) and low > 0  # the interval, not the mean, decides
                if improves and math.isfinite(m_cv) and math.isfinite(base_cv) and m_cv > base_cv:
                    lines.append(f"- **{mdl}** improves Dice over {baseline} (interval above 0) but is less "
                                 f"reproducible ({cvs}).")
                elif improves:
                    lines.append(f"- **{mdl}** improves Dice over {baseline} (interval above 0) and is at least as "
                                 f"reproducible ({cvs}).")
                else:
                    high = row.get("ci_high", math.nan)
                    what = ("no interval shown, so no claim of a Dice difference" if not math.isfinite(low)
                            else "Dice worse (interval below 0)" if high < 0
                            else f"no evidence of a Dice difference (CI {_fmt(low)} to {_fmt(high)})")
                    lines.append(f"- **{mdl}** vs {baseline}: {what}; mean difference {_fmt(gain)} per person; "
                                 f"{cvs}.")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
