"""Test-retest reproducibility: within-person CV of GM area between a scan and its rescan."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..exceptions import ParameterError
from .compare import _check_tidy

__all__ = ["retest_cv"]


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
