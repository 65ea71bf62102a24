"""Results broken down by site or by any participant covariate (``participants.tsv`` column).

Splits are balanced on site, but a mean over all persons can hide a site where a variant fails.
:func:`group_table` gives, per value of a covariate and per model, the mean per-person metric with
the number of persons in the row and the interval the measured rule allows for that many persons
(:func:`~pedgm_kit.stats.intervals.person_interval`; usually none: a site has few persons).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ..exceptions import ParameterError
from .compare import _check_tidy, person_means
from .failures import FAILURE_PENALTY_MM, _failed_units, penalise_failures
from .intervals import person_interval

__all__ = ["check_covariates", "group_table"]

_MISSING = "(not recorded)"


def check_covariates(covariates: pd.DataFrame, by: Sequence[str]) -> str:
    """Check that every ``by`` column is a participant column; returns the person column's name.

    Called by :func:`group_table` and by notebook 05 before any work.

    Raises
    ------
    ParameterError
        ``by`` is not a list of names, a column is missing (the message lists the columns there
        are), or ``covariates`` has no ``person_id`` / ``person`` column.
    """
    if isinstance(by, str) or not all(isinstance(c, str) for c in by):
        raise ParameterError(f"by must be a list of participants.tsv column names, e.g. ['Site']; got {by!r}")
    person_col = next((c for c in ("person_id", "person") if c in covariates.columns), None)
    if person_col is None:
        raise ParameterError(f"covariates need a 'person_id' or 'person' column; got {list(covariates.columns)}")
    missing = [c for c in by if c not in covariates.columns]
    if missing:
        known = [c for c in covariates.columns if c != person_col]
        raise ParameterError(f"by: column(s) {missing} not among the participant columns {known}")
    return person_col


def group_table(
    tidy: pd.DataFrame,
    covariates: pd.DataFrame,
    *,
    by: Sequence[str],
    baseline: str | None = None,
    metric: str = "DSC",
    n_boot: int = 2000,
    seed: int = 0,
    penalty_mm: float = FAILURE_PENALTY_MM,
) -> pd.DataFrame:
    """Mean per-person ``metric`` per covariate value and model, with n persons per row.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`pedgm_kit.evaluate.evaluate_models`.
    covariates : pandas.DataFrame
        One row per scan or per person with a ``person_id`` (or ``person``) column and the
        covariate columns, e.g. ``DatasetIndex.to_frame()`` (``participants.tsv`` columns).
    by : sequence of str
        Covariate columns to break the results down by, e.g. ``["Site"]``.
    baseline : str, optional
        Listed first; also gives ``mean_diff`` (model minus baseline, per person) per row.
    metric : str, default "DSC"
    n_boot, seed : int
        Of a bootstrap interval, should the rule pick one.
    penalty_mm : float
        Distance given to failed predictions (distance metrics only).

    Returns
    -------
    pandas.DataFrame
        ``covariate, group, model, n_persons, mean, ci_low, ci_high, ci_method, interval_note,
        mean_diff`` (NaN ``mean_diff`` for the baseline or without one). A person without a value
        is in group "(not recorded)".

    Raises
    ------
    ParameterError
        A ``by`` column not in ``covariates`` (the message lists the columns there are), or no
        person column.
    """
    _check_tidy(tidy, ("model", "scan", "person", "level", "metric", "value"))
    person_col = check_covariates(covariates, by)
    scored = penalise_failures(tidy, penalty_mm=penalty_mm)
    models = list(dict.fromkeys(scored.loc[scored["level"] == "scan", "model"]))
    if baseline is not None and baseline in models:
        models.remove(baseline)
        models.insert(0, baseline)
    units = _failed_units(tidy)
    failed = {} if units.empty else {
        m: set(g["person"].astype(str)) for m, g in units[units["level"] == "scan"].groupby("model")}
    per_person = covariates.drop_duplicates(person_col).set_index(person_col)
    rows = []
    for column in by:
        value_of: Mapping[str, str] = {
            str(p): (_MISSING if pd.isna(v) else str(v)) for p, v in per_person[column].items()}
        for model in models:
            cols = [model] if baseline is None or model == baseline else [baseline, model]
            means = person_means(scored, metric=metric, models=cols)
            groups = pd.Series([value_of.get(str(p), _MISSING) for p in means.index], index=means.index)
            for group in sorted(groups.unique(), key=lambda g: (g == _MISSING, g)):
                who = groups.index[groups == group]
                vals = means.loc[who, model].to_numpy(float)
                bad = bool(failed.get(model, set()) & {str(p) for p in who})
                inter = person_interval(vals, with_failures=bad, n_boot=n_boot, seed=seed)
                diff = (means.loc[who, model] - means.loc[who, baseline]).mean() if len(cols) == 2 else float("nan")
                rows.append({"covariate": column, "group": group, "model": model, "n_persons": inter["n_persons"],
                             "mean": inter["mean"], "ci_low": inter["ci_low"], "ci_high": inter["ci_high"],
                             "ci_method": inter["method"] or "", "interval_note": inter["interval_note"],
                             "mean_diff": float(diff)})
    out = pd.DataFrame(rows, columns=["covariate", "group", "model", "n_persons", "mean", "ci_low", "ci_high",
                                      "ci_method", "interval_note", "mean_diff"])
    # rows of one group together (groups sorted, "(not recorded)" last), models in their order
    out["_g"] = [(g == _MISSING, g) for g in out["group"]]
    out["_c"] = out["covariate"].map({c: k for k, c in enumerate(by)})
    out["_m"] = out["model"].map({m: k for k, m in enumerate(models)})
    out = out.sort_values(["_c", "_g", "_m"], kind="stable").drop(columns=["_c", "_g", "_m"])
    return out.reset_index(drop=True)
