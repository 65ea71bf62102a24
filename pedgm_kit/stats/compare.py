"""Model comparisons from the tidy metrics table: headline means with CIs and paired tests vs a baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..evaluate.scoring import TIDY_COLUMNS
from ..exceptions import ParameterError
from ..metrics import HIGHER_IS_BETTER
from .paired import bootstrap_mean_diff, holm, wilcoxon_signed_rank

__all__ = ["MIN_CI_PERSONS", "headline_table", "paired_comparison"]


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
