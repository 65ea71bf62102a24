"""Failed predictions count: list them, and give their undefined distances a stated penalty.

A prediction that is empty on the scored slices of a scan (the manual mask has GM there) has Dice 0
and *undefined* surface distances (MSD, HSD, SHD, SMD are NaN). Dropping those pairs would make a
model that fails look better on distances than one that always tries. So:

- :func:`failure_table` lists every failed scan (and slice) per model;
- :func:`penalise_failures` replaces the undefined distances of a failed unit by
  :data:`FAILURE_PENALTY_MM` -- the diagonal of the network's input window (200 px x 0.25 mm:
  70.7 mm), the largest distance a prediction inside the window can be from a mask inside it -- so
  every comparison includes the failures. CC and PPV of an empty prediction stay undefined (NaN) and
  those pairs are left out of comparisons of CC and PPV, as the notes say.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..metrics import METRICS
from ..weights import DEFAULT_METADATA

__all__ = ["DISTANCE_METRICS", "FAILURE_PENALTY_MM", "failure_table", "penalise_failures"]

DISTANCE_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m in ("MSD", "HSD", "SHD", "SMD"))
"""Surface distances (mm), undefined on an empty prediction."""

FAILURE_PENALTY_MM: float = float(DEFAULT_METADATA["input_size"] * DEFAULT_METADATA["spacing_mm"] * math.sqrt(2.0))
"""Distance (mm) given to a failed prediction: the diagonal of the 200 x 200 px, 0.25 mm window (70.7 mm)."""

_KEYS = ["model", "scan", "person", "level", "slice"]


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with scan rows' missing slice index as -1 (so that they can be grouped on)."""
    frame = frame.copy()
    if "slice" in frame.columns:
        frame["slice"] = pd.to_numeric(frame["slice"], errors="coerce").fillna(-1).astype(int)
    return frame


def _failed_units(tidy: pd.DataFrame) -> pd.DataFrame:
    """Units (model, scan, person, level, slice) with a defined Dice of 0 and an undefined distance."""
    keys = [k for k in _KEYS if k in tidy.columns]
    sub = _keyed(tidy[tidy["metric"].isin(("DSC",) + DISTANCE_METRICS)])
    if sub.empty:
        return pd.DataFrame(columns=keys)
    wide = sub.pivot_table(index=keys, columns="metric", values="value", aggfunc="first", dropna=False)
    dist = [m for m in DISTANCE_METRICS if m in wide.columns]
    if "DSC" not in wide.columns or not dist:
        return pd.DataFrame(columns=keys)
    dsc = wide["DSC"].to_numpy(float)
    undefined = wide[dist].isna().any(axis=1).to_numpy()
    failed = np.isfinite(dsc) & (dsc == 0) & undefined
    return wide.index[failed].to_frame(index=False)


def failure_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Failures per model: how many scans (and slices) had an empty prediction, and which scans.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`pedgm_kit.evaluate.evaluate_models`.

    Returns
    -------
    pandas.DataFrame
        One row per model (every model of the table, failures or not): ``model, n_scans,
        failed_scans, failed_persons, n_slices, failed_slices, scans`` (``scans``: the failed scan
        ids joined by ", ", "" when none).
    """
    units = _failed_units(tidy)
    rows = []
    for model in dict.fromkeys(tidy["model"]):
        mine = tidy[tidy["model"] == model]
        scans = mine.loc[mine["level"] == "scan", "scan"].unique()
        slices = mine.loc[(mine["level"] == "slice") & (mine["metric"] == "DSC")]
        failed = units[units["model"] == model] if len(units) else units
        failed_scans = failed.loc[failed["level"] == "scan"] if len(failed) else failed
        rows.append({
            "model": model, "n_scans": int(len(scans)), "failed_scans": int(len(failed_scans)),
            "failed_persons": int(failed_scans["person"].nunique()) if len(failed_scans) else 0,
            "n_slices": int(len(slices)),
            "failed_slices": int((failed["level"] == "slice").sum()) if len(failed) else 0,
            "scans": ", ".join(str(s) for s in failed_scans["scan"]) if len(failed_scans) else "",
        })
    return pd.DataFrame(rows, columns=["model", "n_scans", "failed_scans", "failed_persons", "n_slices",
                                       "failed_slices", "scans"])


def penalise_failures(tidy: pd.DataFrame, *, penalty_mm: float = FAILURE_PENALTY_MM) -> pd.DataFrame:
    """A copy of ``tidy`` where each failed unit's undefined distances are ``penalty_mm``.

    A failed unit is a (model, scan[, slice]) whose Dice is 0 and whose distances are undefined
    (empty prediction, manual GM present). Other NaN values are left as they are; the input is not
    modified. The copy's ``attrs["failure_penalty_mm"]`` records the penalty.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`pedgm_kit.evaluate.evaluate_models`.
    penalty_mm : float, default :data:`FAILURE_PENALTY_MM` (70.7 mm)
        Distance given to a failed prediction.

    Returns
    -------
    pandas.DataFrame
    """
    out = tidy.copy()
    out.attrs = dict(tidy.attrs, failure_penalty_mm=float(penalty_mm))
    units = _failed_units(tidy)
    if units.empty:
        return out
    keys = list(units.columns)
    marked = _keyed(out[keys]).merge(units.assign(_failed=True), on=keys, how="left")["_failed"]
    marked = marked.astype("boolean").fillna(False).to_numpy(bool)
    hit = marked & out["metric"].isin(DISTANCE_METRICS).to_numpy() & out["value"].isna().to_numpy()
    out.loc[hit, "value"] = float(penalty_mm)
    return out
