"""Model comparisons from the tidy metrics table: headline means with CIs and paired tests vs a baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..evaluate.scoring import TIDY_COLUMNS, person_scores
from ..exceptions import ParameterError
from ..metrics import HIGHER_IS_BETTER
from .failures import FAILURE_PENALTY_MM, _failed_units, penalise_failures
from .intervals import TABULATED_N, person_interval
from .paired import holm, wilcoxon_signed_rank
from .wording import verdict

__all__ = ["MIN_CI_PERSONS", "headline_table", "paired_comparison", "person_means"]


# --------------------------------------------------------------------------------------------
# Comparisons from the tidy table
# --------------------------------------------------------------------------------------------


def _check_tidy(tidy: pd.DataFrame, needed: Sequence[str]) -> None:
    if not isinstance(tidy, pd.DataFrame):
        raise ParameterError(f"expected a pandas DataFrame (the tidy metrics table); got {type(tidy).__name__}")
    absent = [c for c in needed if c not in tidy.columns]
    if absent:
        raise ParameterError(f"tidy table lacks column(s) {absent}; has {list(tidy.columns)}")


MIN_CI_PERSONS = min(TABULATED_N)
"""Fewest persons for which interval coverage was measured (fewer: never an interval)."""


def person_means(tidy: pd.DataFrame, *, metric: str = "DSC", models: Sequence[str] | None = None) -> pd.DataFrame:
    """Scan-level ``metric`` averaged per person: one row per person, one column per model.

    Only scans scored (finite) for every model in ``models`` are used, so each person's mean of
    every model is over the same scans; the means are
    :func:`pedgm_kit.evaluate.scoring.person_scores` (the toolkit's one per-person aggregation) in
    wide form. Person order: order of appearance.
    """
    _check_tidy(tidy, TIDY_COLUMNS)
    sub = tidy[(tidy["level"] == "scan") & (tidy["metric"] == metric)]
    models = list(dict.fromkeys(sub["model"])) if models is None else list(models)
    wide = sub.pivot_table(index=["person", "scan"], columns="model", values="value", aggfunc="first", sort=False)
    wide = wide.reindex(columns=models).dropna()
    common = sub[sub["model"].isin(models) & pd.MultiIndex.from_frame(sub[["person", "scan"]]).isin(wide.index)]
    # the one per-person aggregation of the toolkit (a person in one row whatever fold tested them)
    per = person_scores(common.drop(columns="fold", errors="ignore"), metric=metric)
    persons = list(dict.fromkeys(wide.index.get_level_values("person")))
    means = per.pivot(index="person", columns="model", values="value").reindex(index=persons, columns=models)
    means.index.name, means.columns.name = "person", None
    return means


def _failed_persons(tidy: pd.DataFrame, models: Sequence[str]) -> set[str]:
    units = _failed_units(tidy)
    if units.empty:
        return set()
    units = units[(units["level"] == "scan") & units["model"].isin(list(models))]
    return set(units["person"].astype(str))


def headline_table(
    tidy: pd.DataFrame,
    *,
    baseline: str,
    metric: str = "DSC",
    n_boot: int = 2000,
    seed: int = 0,
    tests: pd.DataFrame | None = None,
    penalty_mm: float = FAILURE_PENALTY_MM,
) -> pd.DataFrame:
    """Each model's mean per-person ``metric`` on the evaluated persons, with the measured-rule interval.

    Each person's scans are averaged first; the mean and interval are over persons
    (:func:`~pedgm_kit.stats.intervals.person_interval`: an interval only where its coverage was
    measured to hold; ``interval_note`` says which or why none; the coverage of a mean over persons
    depends on the shape of the per-person values, not on whether they are differences, so the rule
    measured on paired differences applies). With ``tests`` (the table of
    :func:`paired_comparison`), the difference to the baseline, its interval, the Holm-adjusted
    p-value and the verdict sentence are joined.

    Returns
    -------
    pandas.DataFrame
        ``model, n_scans, n_persons, failed_scans, mean, ci_low, ci_high, ci_method, interval_note``
        (+ ``mean_diff, diff_ci_low, diff_ci_high, p_holm, verdict``), the baseline first.
    """
    _check_tidy(tidy, TIDY_COLUMNS)
    scored = penalise_failures(tidy, penalty_mm=penalty_mm)
    sub = scored[(scored["level"] == "scan") & (scored["metric"] == metric)]
    models = list(dict.fromkeys(sub["model"]))
    if baseline in models:
        models.remove(baseline)
        models.insert(0, baseline)
    units = _failed_units(tidy)
    rows = []
    for model in models:
        part = sub[(sub["model"] == model) & np.isfinite(sub["value"].astype(float))]
        per_person = person_scores(part.drop(columns="fold", errors="ignore"), metric=metric)["value"].to_numpy(float)
        failed = units[(units["model"] == model) & (units["level"] == "scan")] if len(units) else units
        inter = person_interval(per_person, with_failures=len(failed) > 0, n_boot=n_boot, seed=seed)
        rows.append({"model": model, "n_scans": int(len(part)), "n_persons": inter["n_persons"],
                     "failed_scans": int(len(failed)), "mean": inter["mean"], "ci_low": inter["ci_low"],
                     "ci_high": inter["ci_high"], "ci_method": inter["method"] or "",
                     "interval_note": inter["interval_note"]})
    out = pd.DataFrame(rows)
    if tests is not None and len(tests):
        chosen = tests[(tests["level"] == "scan") & (tests["metric"] == metric)]
        chosen = chosen[["model", "mean_diff", "ci_low", "ci_high", "p_holm", "verdict"]].rename(
            columns={"ci_low": "diff_ci_low", "ci_high": "diff_ci_high"})
        out = out.merge(chosen, on="model", how="left")
    return out


_COLUMNS = [
    "level", "metric", "model", "baseline", "higher_is_better", "n_scans", "n_persons", "failed_persons",
    "mean_baseline", "mean_model", "mean_diff", "median_diff", "ci_low", "ci_high", "ci_method", "interval_note",
    "wilcoxon_W", "p_value", "p_holm", "significant", "inference", "verdict", "note",
]


def paired_comparison(
    tidy: pd.DataFrame,
    *,
    baseline: str,
    metrics: Sequence[str] = ("DSC",),
    level: str = "scan",
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    penalty_mm: float = FAILURE_PENALTY_MM,
) -> pd.DataFrame:
    """Every model against the baseline, one pair per person: Wilcoxon, measured-rule interval, Holm.

    At ``level="scan"`` each person's scans (those scored for both models) are averaged per model,
    and the pairs are persons: two sessions of one person make one pair. Differences are model minus
    baseline (positive = higher value for the model; for distances that is worse, see
    :data:`HIGHER_IS_BETTER`). Failed predictions are kept: their undefined distances are
    ``penalty_mm`` (:func:`~pedgm_kit.stats.failures.penalise_failures`). The interval of the mean
    per-person difference follows :func:`~pedgm_kit.stats.intervals.person_interval` (none where no
    method's coverage was measured to hold for that many persons). Holm's adjustment runs over the
    tested rows of the result.

    At ``level="slice"`` the rows are *descriptive*: mean and median difference over slices, no
    p-value, no interval, no ``significant`` (slices of one person are not independent).

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
        ``"scan"``: inference over persons; ``"slice"``: descriptive.
    n_boot : int, default 2000
        Bootstrap resamples, where the rule picks a bootstrap interval.
    seed : int, default 0
        Seed of the bootstrap.
    alpha : float, default 0.05
        Level at which ``significant`` is decided on the Holm-adjusted p-value.
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        Of the Wilcoxon test.
    penalty_mm : float, default :data:`~pedgm_kit.stats.failures.FAILURE_PENALTY_MM`
        Distance given to a failed (empty) prediction.

    Returns
    -------
    pandas.DataFrame
        One row per (model, metric): ``level, metric, model, baseline, higher_is_better, n_scans,
        n_persons, failed_persons, mean_baseline, mean_model, mean_diff, median_diff, ci_low,
        ci_high, ci_method, interval_note, wilcoxon_W, p_value, p_holm, significant, inference,
        verdict, note``. Empty (with these columns) when there is no other model.

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
    scored = penalise_failures(tidy, penalty_mm=penalty_mm)
    rows = []
    for metric in metrics:
        for model in models:
            if model == baseline:
                continue
            if level == "scan":
                rows.append(_person_row(scored, tidy, metric, model, baseline, n_boot, seed, alternative))
            else:
                rows.append(_slice_row(scored, metric, model, baseline))
    frame = pd.DataFrame(rows, columns=[c for c in _COLUMNS if c not in ("p_holm", "significant", "verdict")])
    frame["p_holm"] = holm(frame["p_value"].to_numpy(dtype=float)) if len(frame) else []
    significant = frame["p_holm"].to_numpy(dtype=float) < alpha if len(frame) else []
    frame["significant"] = pd.array(significant, dtype="boolean") if len(frame) else []
    if level == "slice" and len(frame):
        frame["significant"] = pd.array([pd.NA] * len(frame), dtype="boolean")
    frame["verdict"] = [verdict(row) for row in frame.to_dict("records")] if len(frame) else []
    return frame[_COLUMNS]


def _person_row(scored, tidy, metric, model, baseline, n_boot, seed, alternative) -> dict:
    means = person_means(scored, metric=metric, models=[baseline, model]) if model in set(
        scored["model"]) else pd.DataFrame(columns=[baseline, model])
    diff = (means[model] - means[baseline]).to_numpy(dtype=float)
    sub = scored[(scored["level"] == "scan") & (scored["metric"] == metric)]
    wide = sub.pivot_table(index=["person", "scan"], columns="model", values="value", aggfunc="first")
    n_scans = int(wide.reindex(columns=[baseline, model]).dropna().shape[0]) if len(wide) else 0
    failed = _failed_persons(tidy, [baseline, model]) & set(means.index.astype(str))
    test = wilcoxon_signed_rank(diff, alternative=alternative)
    inter = person_interval(diff, with_failures=bool(failed), n_boot=n_boot, seed=seed)
    notes = [n for n in (test["note"],) if n]
    if failed:
        notes.append(f"{len(failed)} person(s) with a failed (empty) prediction, distances penalised")
    return {
        "level": "scan", "metric": metric, "model": model, "baseline": baseline,
        "higher_is_better": HIGHER_IS_BETTER.get(metric, True), "n_scans": n_scans,
        "n_persons": int(len(means)), "failed_persons": len(failed),
        "mean_baseline": float(means[baseline].mean()) if len(means) else math.nan,
        "mean_model": float(means[model].mean()) if len(means) else math.nan,
        "mean_diff": inter["mean"], "median_diff": float(np.median(diff)) if diff.size else math.nan,
        "ci_low": inter["ci_low"], "ci_high": inter["ci_high"], "ci_method": inter["method"] or "",
        "interval_note": inter["interval_note"], "wilcoxon_W": test["statistic"], "p_value": test["p_value"],
        "inference": "persons (each person's scans averaged first)", "note": "; ".join(notes),
    }


def _slice_row(scored, metric, model, baseline) -> dict:
    sub = scored[(scored["level"] == "slice") & (scored["metric"] == metric)]
    wide = sub.pivot_table(index=["person", "scan", "slice"], columns="model", values="value", aggfunc="first")
    pair = wide.reindex(columns=[baseline, model]).dropna() if len(wide) else pd.DataFrame(columns=[baseline, model])
    diff = (pair[model] - pair[baseline]).to_numpy(dtype=float)
    persons = pair.index.get_level_values("person").nunique() if len(pair) else 0
    return {
        "level": "slice", "metric": metric, "model": model, "baseline": baseline,
        "higher_is_better": HIGHER_IS_BETTER.get(metric, True), "n_scans": int(len(pair)),
        "n_persons": int(persons), "failed_persons": 0,
        "mean_baseline": float(pair[baseline].mean()) if len(pair) else math.nan,
        "mean_model": float(pair[model].mean()) if len(pair) else math.nan,
        "mean_diff": float(diff.mean()) if diff.size else math.nan,
        "median_diff": float(np.median(diff)) if diff.size else math.nan,
        "ci_low": math.nan, "ci_high": math.nan, "ci_method": "",
        "interval_note": "descriptive: slices of one person are not independent, no interval",
        "wilcoxon_W": math.nan, "p_value": math.nan,
        "inference": "descriptive (slices are not independent)",
        "note": f"{len(pair)} slice pairs of {persons} person(s); descriptive only, no test",
    }
