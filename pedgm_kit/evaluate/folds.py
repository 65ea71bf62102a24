"""Cross-validation results: per-fold tables and the data-efficiency curve.

- :func:`per_fold_table` -- each model's mean over persons per fold, and the mean, spread and
  range across folds (the pooled statistics of :mod:`pedgm_kit.stats` run over all persons);
- :func:`collect_curve`, :func:`curve_table`, :func:`plot_efficiency` -- held-out Dice against the
  number of training persons (nested subsets of each fold's training persons), pretrained against
  from scratch, with confidence intervals across folds: how many persons must be annotated before
  fine-tuning pays off.
"""

from __future__ import annotations

import math
import os
import textwrap

import numpy as np
import pandas as pd

from ..exceptions import ParameterError
from ..layout import TrainPlan
from .scoring import person_scores

__all__ = ["collect_curve", "curve_table", "per_fold_table", "plot_efficiency"]


def per_fold_table(tidy: pd.DataFrame, *, metric: str = "DSC") -> pd.DataFrame:
    """Mean ``metric`` over each fold's test persons, per model, then across folds.

    Each person's score is the mean over their scans (:func:`pedgm_kit.evaluate.scoring.person_scores`,
    the one aggregation behind every reported test number), so a fold's value is the mean over persons.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``fold 1 .. fold k`` (mean over the fold's test persons), ``mean``, ``sd``
        (across folds), ``min``, ``max``, ``n_persons`` and ``n_scans`` (all folds).
    """
    if "fold" not in tidy.columns:
        raise ParameterError("the table has no 'fold' column (evaluate_models with folds=...)")
    persons = person_scores(tidy, metric=metric)
    per = persons.groupby(["model", "fold"], sort=False)["value"].mean().unstack("fold")
    per.columns = [f"fold {int(c)}" if c else "all" for c in per.columns]
    values = per.to_numpy(float)
    out = per.copy()
    out["mean"] = np.nanmean(values, axis=1)
    out["sd"] = np.nanstd(values, axis=1, ddof=1) if values.shape[1] > 1 else np.nan
    out["min"], out["max"] = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
    out["n_persons"] = persons.groupby("model", sort=False)["person"].size()
    out["n_scans"] = persons.groupby("model", sort=False)["n_scans"].sum()
    return out.reset_index()


def collect_curve(train_dir: str | os.PathLike) -> pd.DataFrame:
    """Every training run's held-out Dice, by fold, variant and number of training persons.

    Enumerates the cross-validation runs of the training folder's plan
    (:meth:`pedgm_kit.layout.TrainPlan.of`: fold, variant, person subset) and reads each run's
    ``summary.json`` (all training persons, and the nested subsets). Each run's
    ``test_dice`` is its model's, at the model's own threshold, scored on the fold's full test scans
    per person (:data:`pedgm_kit.evaluate.scoring.TEST_SCORING`): the same numbers as the evaluation.

    Returns
    -------
    pandas.DataFrame
        Columns ``fold, variant, subset`` (the requested size, or ``all``), ``n_persons`` (the persons
        actually trained on), ``test_dice, baseline_test_dice`` (each model at its own threshold),
        ``threshold, threshold_rule`` (the model's, and how it was fixed: by the loss or on validation)
        and ``test_persons`` (how many persons were scored); only variants with subset runs; empty if
        there is none.
    """
    rows = []
    plan = TrainPlan.of(train_dir)
    curve_variants = {r.variant for r in plan.runs if r.fold and r.persons}
    for run, summary in plan.summaries(train_dir):
        if not run.fold or summary.variant not in curve_variants:
            continue  # no cross-validation, or trained on all persons only: not part of the curve
        rows.append({
            "fold": run.fold, "variant": summary.variant, "subset": str(run.persons) if run.persons else "all",
            "n_persons": len(summary.train_persons or []),
            "test_dice": summary.test_dice, "baseline_test_dice": summary.baseline_test_dice,
            "threshold": summary.threshold, "threshold_rule": summary.threshold_rule,
            "test_persons": len(summary.test_persons or []),
        })
    columns = ["fold", "variant", "subset", "n_persons", "test_dice", "baseline_test_dice", "threshold",
               "threshold_rule", "test_persons"]
    return pd.DataFrame(rows, columns=columns)


def _t95(n: int) -> float:
    """Two-sided 95% t quantile for n - 1 degrees of freedom."""
    if n < 2:
        return float("nan")
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def curve_table(curve: pd.DataFrame, *, column: str = "test_dice") -> pd.DataFrame:
    """Mean held-out Dice per variant and number of training persons, with a 95% CI across folds.

    The CI is the t-interval of the fold means (folds are the independent units); with one fold
    it is not defined (NaN). The untrained baseline is the row ``variant="baseline"``.
    """
    if curve.empty:
        return pd.DataFrame(columns=["variant", "subset", "n_persons", "n_folds", "mean", "ci_low", "ci_high"])
    base = curve.drop_duplicates("fold")[["fold", f"baseline_{column}"]].rename(columns={f"baseline_{column}": column})
    base = base.assign(variant="baseline", subset="0", n_persons=0)
    rows = []
    for (variant, subset), grp in pd.concat([curve, base]).groupby(["variant", "subset"], sort=False):
        v = grp[column].to_numpy(float)
        v = v[np.isfinite(v)]
        mean = float(v.mean()) if v.size else math.nan
        half = _t95(v.size) * float(v.std(ddof=1)) / math.sqrt(v.size) if v.size > 1 else math.nan
        rows.append({"variant": variant, "subset": subset, "n_persons": float(grp["n_persons"].mean()),
                     "n_folds": int(v.size), "mean": mean, "ci_low": mean - half, "ci_high": mean + half})
    return pd.DataFrame(rows).sort_values(["variant", "n_persons"], kind="stable").reset_index(drop=True)


def plot_efficiency(table: pd.DataFrame, *, title: str = "", threshold_note: str = "test Dice (each model's threshold)"):
    """Held-out Dice against training persons, one line per variant, CI bands across folds."""
    import seaborn as sns
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    variants = [v for v in dict.fromkeys(table["variant"]) if v != "baseline"]
    palette = dict(zip(variants, sns.color_palette("colorblind", len(variants))))
    for variant in variants:
        sub = table[table["variant"] == variant].sort_values("n_persons")
        ax.plot(sub["n_persons"], sub["mean"], "o-", color=palette[variant], label=variant)
        if sub["ci_low"].notna().any():
            ax.fill_between(sub["n_persons"], sub["ci_low"], sub["ci_high"], color=palette[variant], alpha=0.18)
    base = table[table["variant"] == "baseline"]
    if len(base) and np.isfinite(base["mean"].iloc[0]):
        ax.axhline(base["mean"].iloc[0], color="grey", ls="--", label="baseline (pretrained, untrained)")
    ax.set_xlabel("training persons ('all' plotted at the folds' mean count)")
    ax.set_ylabel(threshold_note)
    ax.set_ylim(0, 1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    title = title or "Data efficiency: held-out Dice vs training persons (95% CI across folds)"
    ax.set_title(textwrap.fill(title, 72), fontsize=10)  # a long title (a simulated shift's label) wraps, never cut
    return fig
