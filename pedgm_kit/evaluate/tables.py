"""The tidy table as wide tables, descriptive statistics, CSV and Excel files."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import atomic_path
from ..exceptions import ParameterError
from ..layout import METRICS_PREFIX, evaluation_path
from ..metrics import HIGHER_IS_BETTER, METRICS
from .scoring import AREA_METRICS, SCOPE_NOTE

__all__ = ["pivot", "summary_table", "wide_table", "write_tables"]


def _metric_order(metrics: Iterable[str]) -> list[str]:
    known = list(METRICS) + list(AREA_METRICS)
    present = list(dict.fromkeys(metrics))
    return [m for m in known if m in present] + [m for m in present if m not in known]


def wide_table(tidy: pd.DataFrame, *, level: str = "scan") -> pd.DataFrame:
    """One row per (model, scan) or (model, scan, slice), one column per metric.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`evaluate_models`.
    level : {"scan", "slice"}, default "scan"

    Returns
    -------
    pandas.DataFrame
        Columns ``model, scan, person[, slice]`` then the metrics in :data:`METRICS` order and
        the areas. Models, scans and slices keep their order of appearance.
    """
    if level not in ("scan", "slice"):
        raise ParameterError(f"level must be 'scan' or 'slice'; got {level!r}")
    sub = tidy[tidy["level"] == level]
    keys = ["model", "scan", "person"] + (["slice"] if level == "slice" else [])
    wide = pivot(sub, keys)
    wide = wide[_metric_order(wide.columns)].reset_index()
    wide.columns.name = None
    return wide


def pivot(sub: pd.DataFrame, keys: list[str], *, columns: str = "metric") -> pd.DataFrame:
    """``sub`` pivoted to one row per ``keys`` (in order of first appearance), one column per ``columns``."""
    wide = sub.pivot(index=keys, columns=columns, values="value")
    order = pd.MultiIndex.from_frame(sub[keys].drop_duplicates()) if len(keys) > 1 else pd.Index(sub[keys[0]].unique())
    return wide.reindex(order)


def summary_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Descriptive statistics per level, model and metric.

    Returns
    -------
    pandas.DataFrame
        Columns ``level, model, metric, n, n_nan, mean, std, median, q1, q3, min, max``
        (``n`` counts finite values; NaN marks undefined metrics, e.g. distances on an empty
        prediction, and is counted in ``n_nan``).
    """
    rows = []
    models = list(dict.fromkeys(tidy["model"]))
    for level in ("scan", "slice"):
        sub = tidy[tidy["level"] == level]
        for model in models:
            for metric in _metric_order(sub["metric"]):
                v = sub[(sub["model"] == model) & (sub["metric"] == metric)]["value"].to_numpy(float)
                f = v[np.isfinite(v)]
                stats = dict.fromkeys(("mean", "std", "median", "q1", "q3", "min", "max"), math.nan)
                if f.size:
                    q1, med, q3 = np.quantile(f, [0.25, 0.5, 0.75])
                    stats = dict(mean=f.mean(), std=f.std(ddof=1) if f.size > 1 else math.nan, median=med,
                                 q1=q1, q3=q3, min=f.min(), max=f.max())
                rows.append({"level": level, "model": model, "metric": metric, "n": int(f.size),
                             "n_nan": int(v.size - f.size), **{k: float(x) for k, x in stats.items()}})
    return pd.DataFrame(rows)


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(Path(tmp))
    return path


def save_table(frame: pd.DataFrame, evaluation_dir: str | os.PathLike, key: str) -> Path:
    """Write ``frame`` as notebook 05's CSV ``key`` (:data:`pedgm_kit.layout.EVALUATION_FILES`), atomically.

    Returns the path written. Examples: ``save_table(failures, eval_dir, "failures")`` writes
    ``<eval_dir>/failures.csv``.
    """
    return _atomic(evaluation_path(evaluation_dir, key), lambda p: frame.to_csv(p, index=False))


def write_tables(tidy: pd.DataFrame, output_dir: str | os.PathLike, *, prefix: str = METRICS_PREFIX) -> dict[str, Path]:
    """Write the metrics as CSV and Excel, readable without Jupyter.

    Files (each written atomically, replacing an older one):

    - ``<prefix>_tidy.csv``: the tidy table;
    - ``<prefix>_scan.csv``, ``<prefix>_slice.csv``: the wide tables (:func:`wide_table`);
    - ``<prefix>_summary.csv``: :func:`summary_table`;
    - ``<prefix>.xlsx``: sheets ``slice``, ``scan``, ``summary`` and ``notes`` (scope of the
      scores, units, metric directions).

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`evaluate_models`.
    output_dir : path-like
        Folder (created if needed).
    prefix : str, default "metrics"
        File name prefix.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"tidy", "scan", "slice", "summary", "xlsx"}`` to the written files.
    """
    output_dir = Path(output_dir)
    scan, slc, summary = wide_table(tidy, level="scan"), wide_table(tidy, level="slice"), summary_table(tidy)
    notes = pd.DataFrame({"note": [
        tidy.attrs.get("scope", SCOPE_NOTE),
        "Distances (MSD, HSD, SHD, SMD) in mm; CC in percent; DSC, JI, TPR, TNR, PPV fractions (0..1).",
        "Higher is better: " + ", ".join(m for m, up in HIGHER_IS_BETTER.items() if up)
        + "; lower is better: " + ", ".join(m for m, up in HIGHER_IS_BETTER.items() if not up) + ".",
        "gm_area_mm2 / manual_gm_area_mm2: predicted / manual GM area per slice (scan level: mean over scored slices).",
        "NaN: metric undefined (e.g. distances when a mask is empty), see pedgm_kit.metrics.",
    ]})
    out = {
        "tidy": _atomic(output_dir / f"{prefix}_tidy.csv", lambda p: tidy.to_csv(p, index=False)),
        "scan": _atomic(output_dir / f"{prefix}_scan.csv", lambda p: scan.to_csv(p, index=False)),
        "slice": _atomic(output_dir / f"{prefix}_slice.csv", lambda p: slc.to_csv(p, index=False)),
        "summary": _atomic(output_dir / f"{prefix}_summary.csv", lambda p: summary.to_csv(p, index=False)),
    }

    def _xlsx(path: Path) -> None:
        with pd.ExcelWriter(path, engine="openpyxl") as xw:
            for name, frame in (("slice", slc), ("scan", scan), ("summary", summary), ("notes", notes)):
                frame.to_excel(xw, sheet_name=name, index=False)

    out["xlsx"] = _atomic(output_dir / f"{prefix}.xlsx", _xlsx)
    return out
