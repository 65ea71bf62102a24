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
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .evaluate.scoring import TIDY_COLUMNS
from .exceptions import ParameterError
from .metrics import HIGHER_IS_BETTER

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

MIN_WILCOXON_PAIRS = 6
"""Fewest non-zero paired differences for which a p-value is reported.

With 5 pairs the smallest attainable two-sided exact p-value is 2/2**5 = 0.0625, so the test can
never reject at 0.05; below 6 pairs the p-value is NaN and the ``note`` says why."""




# --------------------------------------------------------------------------------------------
# Single tests
# --------------------------------------------------------------------------------------------


def wilcoxon_signed_rank(
    differences, *, alternative: str = "two-sided", min_pairs: int = MIN_WILCOXON_PAIRS
) -> dict[str, float | int | str]:
    """Wilcoxon signed-rank test of paired differences (model minus baseline).

    Zero differences are dropped (Wilcoxon's original method, ``zero_method="wilcox"``), NaN
    differences too; the exact null distribution is used when scipy can (no ties, n <= 50),
    the normal approximation otherwise (``method="auto"``).

    Parameters
    ----------
    differences : array_like of float
        Paired differences, one per scan (or slice).
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        As in :func:`scipy.stats.wilcoxon`.
    min_pairs : int, default :data:`MIN_WILCOXON_PAIRS` (6)
        Fewest non-zero differences for which a p-value is computed.

    Returns
    -------
    dict
        ``n`` (finite differences), ``n_nonzero``, ``statistic`` (scipy's W, NaN if not
        computed), ``p_value`` (NaN if not computed) and ``note`` ("" when the test ran, else the
        reason: too few pairs, all differences zero, NaN differences dropped).

    Raises
    ------
    ParameterError
        If ``alternative`` is not one of the three values.

    Examples
    --------
    >>> wilcoxon_signed_rank([0.1, 0.2, -0.05, 0.3, 0.02, 0.04])["p_value"]
    0.15625
    >>> wilcoxon_signed_rank([0.0, 0.0, 0.0])["note"]
    'all 3 differences are zero: no test'
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ParameterError(f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}")
    d = np.asarray(differences, dtype=float).ravel()
    finite = d[np.isfinite(d)]
    nonzero = finite[finite != 0]
    out: dict[str, float | int | str] = {
        "n": int(finite.size), "n_nonzero": int(nonzero.size),
        "statistic": math.nan, "p_value": math.nan, "note": "",
    }
    notes = []
    if finite.size < d.size:
        notes.append(f"{d.size - finite.size} NaN difference(s) dropped")
    if finite.size and nonzero.size == 0:
        notes.append(f"all {finite.size} differences are zero: no test")
    elif nonzero.size < min_pairs:
        notes.append(f"{nonzero.size} non-zero pair(s) < {min_pairs}: too few for a signed-rank test")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's notes on ties/approximations: reported below
            res = sps.wilcoxon(nonzero, zero_method="wilcox", alternative=alternative, method="auto")
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
        if nonzero.size < finite.size:
            notes.append(f"{finite.size - nonzero.size} zero difference(s) dropped")
    out["note"] = "; ".join(notes)
    return out


def bootstrap_mean_diff(
    differences,
    *,
    groups,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, float | int | str]:
    """Percentile bootstrap CI of the mean paired difference, resampling groups (persons).

    Each of ``n_boot`` resamples draws as many persons as there are, with replacement, and takes
    the mean of all differences of the drawn persons (a person drawn twice counts twice). The
    point estimate is the plain mean of all differences. Vectorised: per-person sums and counts,
    one ``(n_boot, n_persons)`` index draw.

    Parameters
    ----------
    differences : array_like of float
        Paired differences (model minus baseline), one per scan or slice. NaN entries are dropped.
    groups : array_like
        Person id of each difference, same length.
    n_boot : int, default 2000
        Number of bootstrap resamples (>= 1).
    seed : int, default 0
        Seed of ``numpy.random.default_rng``: the same input and seed give the same interval.
    ci : float, default 0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    dict
        ``mean_diff``, ``ci_low``, ``ci_high``, ``n`` (differences used), ``n_persons`` and
        ``note``. With fewer than 2 persons the interval is NaN (resampling one person only
        reproduces its own mean) and the note says so.

    Raises
    ------
    ParameterError
        If the lengths differ, ``n_boot < 1`` or ``ci`` is not in (0, 1).
    """
    d = np.asarray(differences, dtype=float).ravel()
    g = np.asarray(groups, dtype=object).ravel()
    if d.shape != g.shape:
        raise ParameterError(f"differences has {d.size} values but groups has {g.size}; expected equal lengths")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ParameterError(f"n_boot must be an integer >= 1; got {n_boot!r}")
    if not 0 < ci < 1:
        raise ParameterError(f"ci must be in (0, 1); got {ci!r}")
    keep = np.isfinite(d)
    d, g = d[keep], g[keep]
    codes, uniques = pd.factorize(pd.Series(g, dtype=object), sort=True)
    out: dict[str, float | int | str] = {
        "mean_diff": float(d.mean()) if d.size else math.nan,
        "ci_low": math.nan, "ci_high": math.nan,
        "n": int(d.size), "n_persons": int(len(uniques)), "note": "",
    }
    if len(uniques) < 2:
        out["note"] = f"{len(uniques)} person(s): no bootstrap interval"
        return out
    sums = np.bincount(codes, weights=d, minlength=len(uniques))
    counts = np.bincount(codes, minlength=len(uniques)).astype(float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(uniques), size=(int(n_boot), len(uniques)))
    means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    tail = (1.0 - ci) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    out["ci_low"], out["ci_high"] = float(low), float(high)
    if len(uniques) < 5:
        out["note"] = f"only {len(uniques)} persons: the interval is rough"
    return out


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control).

    Sort the m finite p-values ascending, multiply the k-th smallest (k = 1..m) by ``m - k + 1``,
    make the sequence non-decreasing by a running maximum, clip at 1, and return in input order.
    NaN p-values (tests not run) are left NaN and do not count in m.

    Parameters
    ----------
    p_values : array_like of float
        Raw p-values, NaN allowed.

    Returns
    -------
    numpy.ndarray of float
        Adjusted p-values, same shape as the input.

    Raises
    ------
    ParameterError
        If a finite p-value is outside [0, 1].

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=float)
    flat = p.ravel()
    ok = np.isfinite(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ParameterError(f"p-values must be in [0, 1]; got {flat[ok][(flat[ok] < 0) | (flat[ok] > 1)].tolist()}")
    out = np.full(flat.shape, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size:
        order = idx[np.argsort(flat[idx], kind="stable")]
        m = idx.size
        scaled = flat[order] * (m - np.arange(m))
        out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out.reshape(p.shape)


# --------------------------------------------------------------------------------------------
# Comparisons from the tidy table
# --------------------------------------------------------------------------------------------


def _check_tidy(tidy: pd.DataFrame, needed: Sequence[str]) -> None:
    if not isinstance(tidy, pd.DataFrame):
        raise ParameterError(f"expected a pandas DataFrame (the tidy metrics table); got {type(tidy).__name__}")
    absent = [c for c in needed if c not in tidy.columns]
    if absent:
        raise ParameterError(f"tidy table lacks column(s) {absent}; has {list(tidy.columns)}")


MIN_CI_PERSONS = 3
"""Fewest persons for a bootstrap interval of a model's mean (fewer: the interval is not reported)."""


def headline_table(
    tidy: pd.DataFrame,
    *,
    baseline: str,
    metric: str = "DSC",
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    tests: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each model's mean scan-level ``metric`` on the evaluated (held-out) persons, with its CI.

    The interval resamples persons (:func:`bootstrap_mean_diff` on the values themselves) and is
    given only with at least :data:`MIN_CI_PERSONS` persons. With ``tests`` (the table of
    :func:`paired_comparison`), the difference to the baseline, its CI and Holm-adjusted p-value
    are joined.

    Returns
    -------
    pandas.DataFrame
        ``model, n_scans, n_persons, mean, ci_low, ci_high`` (+ ``mean_diff, diff_ci_low,
        diff_ci_high, p_holm``), models in table order, the baseline first.
    """
    _check_tidy(tidy, TIDY_COLUMNS)
    sub = tidy[(tidy["level"] == "scan") & (tidy["metric"] == metric)]
    models = list(dict.fromkeys(sub["model"]))
    if baseline in models:
        models.remove(baseline)
        models.insert(0, baseline)
    rows = []
    for model in models:
        part = sub[sub["model"] == model]
        values, persons = part["value"].to_numpy(float), part["person"].astype(str).to_numpy()
        n_persons = len(set(persons))
        row = {"model": model, "n_scans": int(np.isfinite(values).sum()), "n_persons": n_persons,
               "mean": float(np.nanmean(values)) if np.isfinite(values).any() else math.nan,
               "ci_low": math.nan, "ci_high": math.nan}
        if n_persons >= MIN_CI_PERSONS:
            boot = bootstrap_mean_diff(values, groups=persons, n_boot=n_boot, seed=seed, ci=ci)
            row.update(ci_low=boot["ci_low"], ci_high=boot["ci_high"])
        rows.append(row)
    out = pd.DataFrame(rows)
    if tests is not None and len(tests):
        chosen = tests[(tests["level"] == "scan") & (tests["metric"] == metric)]
        chosen = chosen[["model", "mean_diff", "ci_low", "ci_high", "p_holm"]].rename(
            columns={"ci_low": "diff_ci_low", "ci_high": "diff_ci_high"})
        out = out.merge(chosen, on="model", how="left")
    return out


def paired_comparison(
    tidy: pd.DataFrame,
    *,
    baseline: str,
    metrics: Sequence[str] = ("DSC",),
    level: str = "scan",
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> pd.DataFrame:
    """Every model against the baseline: paired Wilcoxon test, person bootstrap CI, Holm.

    Pairs are the units (scans at ``level="scan"``, (scan, slice) at ``level="slice"``) scored by
    both models; a unit where either value is NaN is left out of that comparison. Differences are
    model minus baseline (positive = higher value for the model; for distances that is worse, see
    :data:`HIGHER_IS_BETTER`). Holm's adjustment runs over all rows of the result (all models x
    metrics of this level): one family of comparisons.

    Parameters
    ----------
    tidy : pandas.DataFrame
        Columns ``model, scan, person, level, slice, metric, value`` as written by
        :func:`pedgm_kit.evaluate.evaluate_models`.
    baseline : str
        Model label every other model is compared with.
    metrics : sequence of str, default ("DSC",)
        Metrics to compare.
    level : {"scan", "slice"}, default "scan"
        Unit of the pairs. Slice-level p-values are optimistic (slices of one person are not
        independent); the ``note`` column says so.
    n_boot : int, default 2000
        Bootstrap resamples of persons.
    seed : int, default 0
        Seed of the bootstrap (each comparison uses this same seed, so adding a model does not
        change the others' intervals).
    ci : float, default 0.95
        Coverage of the bootstrap interval.
    alpha : float, default 0.05
        Level at which ``significant`` is decided on the Holm-adjusted p-value.
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        Of the Wilcoxon test.

    Returns
    -------
    pandas.DataFrame
        One row per (model, metric): ``level, metric, model, baseline, higher_is_better, n_pairs,
        n_persons, mean_baseline, mean_model, mean_diff, median_diff, ci_low, ci_high,
        wilcoxon_W, p_value, p_holm, significant, note``. Empty (with these columns) when there is
        no other model.

    Raises
    ------
    ParameterError
        Missing columns, unknown baseline, metric or level.
    """
    _check_tidy(tidy, TIDY_COLUMNS)
    if level not in ("scan", "slice"):
        raise ParameterError(f"level must be 'scan' or 'slice'; got {level!r}")
    models = list(dict.fromkeys(tidy["model"]))
    if baseline not in models:
        raise ParameterError(f"baseline {baseline!r} is not a model of the table; models: {models}")
    known = set(tidy["metric"])
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ParameterError(f"metric(s) {unknown} not in the table; metrics: {sorted(known)}")
    columns = [
        "level", "metric", "model", "baseline", "higher_is_better", "n_pairs", "n_persons",
        "mean_baseline", "mean_model", "mean_diff", "median_diff", "ci_low", "ci_high",
        "wilcoxon_W", "p_value", "p_holm", "significant", "note",
    ]
    sub = tidy[tidy["level"] == level]
    keys = ["scan", "person"] if level == "scan" else ["scan", "person", "slice"]
    rows = []
    for metric in metrics:
        wide = sub[sub["metric"] == metric].pivot(index=keys, columns="model", values="value")
        for model in models:
            if model == baseline:
                continue
            if model not in wide.columns or baseline not in wide.columns:
                pair = pd.DataFrame(columns=[baseline, model])
            else:
                pair = wide[[baseline, model]].dropna()
            diff = (pair[model] - pair[baseline]).to_numpy(dtype=float)
            persons = pair.index.get_level_values("person").to_numpy() if len(pair) else np.array([])
            test = wilcoxon_signed_rank(diff, alternative=alternative)
            boot = bootstrap_mean_diff(diff, groups=persons, n_boot=n_boot, seed=seed, ci=ci)
            notes = [n for n in (test["note"], boot["note"]) if n]
            if level == "slice":
                notes.append("slices are not independent: p-values optimistic")
            rows.append({
                "level": level, "metric": metric, "model": model, "baseline": baseline,
                "higher_is_better": HIGHER_IS_BETTER.get(metric, True),
                "n_pairs": int(len(pair)), "n_persons": boot["n_persons"],
                "mean_baseline": float(pair[baseline].mean()) if len(pair) else math.nan,
                "mean_model": float(pair[model].mean()) if len(pair) else math.nan,
                "mean_diff": boot["mean_diff"],
                "median_diff": float(np.median(diff)) if diff.size else math.nan,
                "ci_low": boot["ci_low"], "ci_high": boot["ci_high"],
                "wilcoxon_W": test["statistic"], "p_value": test["p_value"],
                "note": "; ".join(notes),
            })
    frame = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "significant")])
    frame["p_holm"] = holm(frame["p_value"].to_numpy(dtype=float)) if len(frame) else []
    frame["significant"] = frame["p_holm"].to_numpy(dtype=float) < alpha if len(frame) else []
    return frame[columns]


# --------------------------------------------------------------------------------------------
# Test-retest reproducibility
# --------------------------------------------------------------------------------------------


def retest_cv(
    areas: pd.DataFrame,
    *,
    value: str = "gm_area_mm2",
    pair: str = "pair",
    run: str = "run",
    slice_col: str = "slice",
    model: str = "model",
    person: str = "person",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test-retest coefficient of variation (CV) of GM area, per model.

    For each model, scan pair (a scan and its rescan, e.g. run-1 and run-2 of one session) and
    slice position, the within-pair CV is ``SD / mean`` of the two areas, ``SD`` with ``ddof=1``
    (for two values ``|a - b| / sqrt(2)``), in percent. Slices where both runs have no GM are
    left out (CV undefined); a slice with GM in one run only has CV ``100 * sqrt(2)`` (141 %), a
    real failure to reproduce. Two summaries per model:

    - ``cv_slice_pct``: mean over pairs of the mean over slice positions of the slice-wise CV
      (persons/levels weighted equally per pair);
    - ``cv_mean_area_pct``: mean over pairs of the CV of the pair's mean GM area over the scanned
      levels (the classic test-retest CV of a scan-level measure).

    Rescans without repositioning put the same slice index at the same cord level, so slices are
    matched by index; with repositioning this CV also measures the positioning.

    Parameters
    ----------
    areas : pandas.DataFrame
        One row per (model, pair, run, slice) with columns ``model``, ``person``, ``pair``,
        ``run`` and ``slice`` and the area column ``value``, e.g. from
        :func:`pedgm_kit.evaluate.retest_areas` (restrict it to the slices that should count
        first). Each pair must have exactly two runs.
    value, pair, run, slice_col, model, person : str
        Column names.

    Returns
    -------
    summary : pandas.DataFrame
        One row per model: ``model, n_pairs, n_persons, n_slices, cv_slice_pct,
        cv_mean_area_pct, mean_area_mm2``.
    per_pair : pandas.DataFrame
        One row per (model, pair): ``model, person, pair, n_slices, area_run_a_mm2,
        area_run_b_mm2`` (mean area over the slices used, per run; runs in sorted order),
        ``cv_slice_pct, cv_mean_area_pct``.

    Raises
    ------
    ParameterError
        Missing columns, or a pair without exactly two runs.
    """
    _check_tidy(areas, [value, pair, run, slice_col, model, person])
    per_pair_rows = []
    for (mdl, pr), grp in areas.groupby([model, pair], sort=False):
        runs = sorted(grp[run].unique(), key=str)
        if len(runs) != 2:
            raise ParameterError(
                f"pair {pr!r} (model {mdl!r}) has {len(runs)} run(s) {runs}; expected exactly 2 (a scan and its rescan)"
            )
        wide = grp.pivot_table(index=slice_col, columns=run, values=value, aggfunc="first")
        wide = wide[runs].dropna()
        a, b = wide[runs[0]].to_numpy(float), wide[runs[1]].to_numpy(float)
        used = (a > 0) | (b > 0)
        a, b = a[used], b[used]
        if a.size:
            m = (a + b) / 2.0
            cv_slices = np.abs(a - b) / math.sqrt(2.0) / m * 100.0
            ma, mb = a.mean(), b.mean()
            cv_mean = abs(ma - mb) / math.sqrt(2.0) / ((ma + mb) / 2.0) * 100.0
            cv_slice = float(cv_slices.mean())
        else:
            ma = mb = cv_slice = cv_mean = math.nan
        per_pair_rows.append({
            "model": mdl, "person": grp[person].iloc[0], "pair": pr, "n_slices": int(a.size),
            "area_run_a_mm2": float(ma), "area_run_b_mm2": float(mb),
            "cv_slice_pct": cv_slice, "cv_mean_area_pct": float(cv_mean),
        })
    per_pair = pd.DataFrame(per_pair_rows, columns=[
        "model", "person", "pair", "n_slices", "area_run_a_mm2", "area_run_b_mm2",
        "cv_slice_pct", "cv_mean_area_pct",
    ])
    summary_rows = []
    for mdl, grp in per_pair.groupby("model", sort=False):
        summary_rows.append({
            "model": mdl, "n_pairs": int(len(grp)), "n_persons": int(grp["person"].nunique()),
            "n_slices": int(grp["n_slices"].sum()),
            "cv_slice_pct": float(grp["cv_slice_pct"].mean()),
            "cv_mean_area_pct": float(grp["cv_mean_area_pct"].mean()),
            "mean_area_mm2": float(((grp["area_run_a_mm2"] + grp["area_run_b_mm2"]) / 2).mean()),
        })
    summary = pd.DataFrame(summary_rows, columns=[
        "model", "n_pairs", "n_persons", "n_slices", "cv_slice_pct", "cv_mean_area_pct", "mean_area_mm2",
    ])
    return summary, per_pair


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
