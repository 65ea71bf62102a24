"""How well does the uncertainty score find bad slices? AUROC, rank correlation and the scatter plot.

A slice "fails" when its Dice is below ``dice_below`` (default 0.8). The per-slice score of
:func:`pedgm_kit.segment.slice_scores` should rank failed slices above good ones: the area under the
ROC curve of the score for finding failures (0.5 = chance) and Spearman's correlation of score and
Dice (negative is good) measure that.

The AUROC is reported within one condition at a time (one evaluation = one condition; the benchmark
keeps its conditions apart): pooling scans as acquired with scans under a simulated shift rewards a
score for telling the conditions apart, not bad slices within one. Its interval resamples *persons*
(:func:`clustered_auroc`: the person is the unit; slices of one scan, and the scans of one person --
sessions, rescans -- are not independent); its coverage was not measured by
``benchmarks/ci_coverage.py``, so it is labelled descriptive.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..exceptions import ParameterError

__all__ = ["UNCERTAINTY_METRIC", "auroc", "clustered_auroc", "plot_uncertainty", "uncertainty_table"]

UNCERTAINTY_METRIC = "uncertainty"
"""Metric name of the per-slice uncertainty score in the tidy table of :func:`evaluate_models`."""


def auroc(scores, positives) -> float:
    """Area under the ROC curve of ``scores`` for finding ``positives`` (Mann-Whitney; ties count half).

    NaN when there are no positives or no negatives.
    """
    scores = np.asarray(scores, float)
    positives = np.asarray(positives, bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = sps.rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def clustered_auroc(scores, positives, persons, *, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """AUROC with a percentile interval that resamples persons, not slices or scans.

    The person is the unit: each of ``n_boot`` resamples draws as many persons as there are, with
    replacement, and computes the AUROC over all slices of all scans of the drawn persons (two
    sessions of one person travel together); resamples without a positive or a negative are left out
    (counted in ``n_boot_used``). Descriptive: the coverage of this interval was not measured.

    Parameters
    ----------
    scores, positives, persons : array_like, same length
        Per-slice score, whether the slice failed, and the person the slice's scan belongs to.
    n_boot : int, default 2000
    seed : int, default 0
    level : float, default 0.95

    Returns
    -------
    dict
        ``auroc, ci_low, ci_high, n_clusters`` (persons), ``n_boot_used`` (NaN interval with fewer
        than 2 persons).
    """
    scores = np.asarray(scores, float)
    positives = np.asarray(positives, bool)
    codes, uniques = pd.factorize(pd.Series(np.asarray(persons, dtype=object)))
    out = {"auroc": auroc(scores, positives), "ci_low": math.nan, "ci_high": math.nan,
           "n_clusters": int(len(uniques)), "n_boot_used": 0}
    if len(uniques) < 2 or not math.isfinite(out["auroc"]):
        return out
    members = [np.flatnonzero(codes == k) for k in range(len(uniques))]
    rng = np.random.default_rng(seed)
    values = []
    for draw in rng.integers(0, len(uniques), size=(int(n_boot), len(uniques))):
        idx = np.concatenate([members[k] for k in draw])
        value = auroc(scores[idx], positives[idx])
        if math.isfinite(value):
            values.append(value)
    if values:
        tail = (1 - level) / 2
        out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(values, [tail, 1 - tail]))
    out["n_boot_used"] = len(values)
    return out


def _pairs(tidy: pd.DataFrame) -> pd.DataFrame:
    if "person" not in tidy.columns:
        raise ParameterError(f"the tidy table has no 'person' column (persons are the unit); has {list(tidy.columns)}")
    sub = tidy[(tidy["level"] == "slice") & tidy["metric"].isin(["DSC", UNCERTAINTY_METRIC])]
    wide = sub.pivot_table(index=["model", "person", "scan", "slice"], columns="metric", values="value",
                           aggfunc="first")
    if UNCERTAINTY_METRIC not in wide.columns or "DSC" not in wide.columns:
        return pd.DataFrame(columns=["model", "person", "scan", "slice", "DSC", UNCERTAINTY_METRIC])
    return wide.dropna(subset=["DSC", UNCERTAINTY_METRIC]).reset_index()


def uncertainty_table(tidy: pd.DataFrame, *, dice_below: float = 0.8, n_boot: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Per model: slices, scans, persons, failed slices (Dice < ``dice_below``), AUROC with a
    person-clustered interval (:func:`clustered_auroc`, descriptive), Spearman rho.

    The tidy table is one condition (one evaluation); do not pool conditions into one table.
    """
    pairs = _pairs(tidy)
    rows = []
    for model, grp in pairs.groupby("model", sort=False):
        failed = grp["DSC"].to_numpy(float) < dice_below
        score = grp[UNCERTAINTY_METRIC].to_numpy(float)
        rho = sps.spearmanr(score, grp["DSC"].to_numpy(float)).statistic if len(grp) > 2 else math.nan
        clustered = clustered_auroc(score, failed, grp["person"].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({"model": model, "slices": len(grp), "scans": int(grp["scan"].nunique()),
                     "persons": clustered["n_clusters"],
                     "failed": int(failed.sum()), "auroc": clustered["auroc"],
                     "auroc_ci_low": clustered["ci_low"], "auroc_ci_high": clustered["ci_high"],
                     "spearman": float(rho)})
    return pd.DataFrame(rows, columns=["model", "slices", "scans", "persons", "failed", "auroc", "auroc_ci_low",
                                       "auroc_ci_high", "spearman"])


def plot_uncertainty(tidy: pd.DataFrame, *, dice_below: float = 0.8, title: str = ""):
    """Score against Dice, one panel per model, with the AUROC and Spearman rho in each title."""
    from matplotlib.figure import Figure

    pairs = _pairs(tidy)
    table = uncertainty_table(tidy, dice_below=dice_below).set_index("model")
    models = list(dict.fromkeys(pairs["model"]))
    ncols = max(1, min(3, len(models)))
    nrows = max(1, math.ceil(len(models) / ncols))
    fig = Figure(figsize=(max(3.4 * ncols, 6.0), 3.2 * nrows + 0.6), layout="constrained")
    for i, model in enumerate(models or ["(no model with an uncertainty score)"]):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        grp = pairs[pairs["model"] == model]
        failed = grp["DSC"] < dice_below
        ax.scatter(grp.loc[~failed, UNCERTAINTY_METRIC], grp.loc[~failed, "DSC"], s=10, alpha=0.6, label="Dice >= 0.8")
        ax.scatter(grp.loc[failed, UNCERTAINTY_METRIC], grp.loc[failed, "DSC"], s=12, alpha=0.8, color="firebrick",
                   label=f"Dice < {dice_below:g}")
        ax.axhline(dice_below, color="grey", lw=0.8, ls=":")
        if model in table.index:
            row = table.loc[model]
            ci = (f" [{row['auroc_ci_low']:.2f}, {row['auroc_ci_high']:.2f}]"
                  if math.isfinite(row["auroc_ci_low"]) else "")
            ax.set_title(f"{model}\nAUROC {row['auroc']:.2f}{ci}, rho {row['spearman']:.2f}", fontsize=9)
        ax.set_xlabel("uncertainty score (per slice)", fontsize=8)
        ax.set_ylabel("Dice", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=8)
        if i == 0:
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title or "Does the uncertainty score find bad slices? (AUROC for Dice < 0.8)", fontsize=10)
    return fig
