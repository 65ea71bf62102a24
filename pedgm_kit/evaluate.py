"""Evaluate GM segmentations against manual masks: tables, figures and test-retest areas.

- :func:`evaluate_pair` -- the ten SCGM-challenge metrics (:mod:`pedgm_kit.metrics`) of one
  prediction against its manual mask, per scan or per slice, plus the GM area per slice;
- :func:`evaluate_models` -- segment every scan with every model once, save the masks under
  ``<output_dir>/pred/<model>/<scan_id>.nii.gz`` and return one tidy table
  (``model, scan, person, level, slice, metric, value``);
- :func:`write_tables` -- that table as CSV and as an ``.xlsx`` with one sheet per level;
- :func:`plot_metric_boxplots`, :func:`plot_result_summary` -- the figures;
- :func:`retest_pairs`, :func:`retest_areas` -- GM area per slice of a scan and its rescan, for
  :func:`pedgm_kit.stats.retest_cv`.

Scope of the scores
-------------------
Manual labels of the SCGM challenge data (and of most datasets) leave some slices unlabelled, e.g.
the top slices of a scan. GM predicted on such a slice is not an error, so scan-level scores are
computed on the *labelled slices* only (slices where the manual mask has a voxel,
:func:`pedgm_kit.metrics.labelled_slices`), as in the challenge; ``labelled_only=False`` scores
every slice. The scan-level metrics are those of :func:`pedgm_kit.metrics.volume_metrics` on the
stack of labelled slices (3D overlap counts and 3D surface distances). Slice-level rows are
restricted the same way.

The slice axis is the array axis closest to the superior-inferior direction of the affine (axis 2
for axial scans stored as such), spacing and pixel area come from the affine, never from header
fields by index.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel import orientations

from ._utils import atomic_path, write_json
from .datasets import DatasetIndex, Scan, mask_array
from .exceptions import GridMismatchError, ImageContentError, InputFileError, ParameterError, PedgmError
from .io import load_image, save_like
from .metrics import METRICS, labelled_slices, per_slice_metrics, volume_metrics
from .stats import HIGHER_IS_BETTER

__all__ = [
    "AREA_METRICS",
    "METRIC_LABELS",
    "SCOPE_NOTE",
    "TIDY_COLUMNS",
    "evaluate_models",
    "evaluate_pair",
    "gm_area_per_slice",
    "model_labels",
    "plot_metric_boxplots",
    "plot_result_summary",
    "plot_retest_areas",
    "prediction_path",
    "retest_areas",
    "retest_pairs",
    "slice_axis",
    "summary_table",
    "wide_table",
    "write_json",
    "write_tables",
]

AREA_METRICS: tuple[str, ...] = ("gm_area_mm2", "manual_gm_area_mm2")
"""Area columns added to the ten metrics: predicted and manual GM area per slice (mm²); at scan
level the mean over the scored slices."""

TIDY_COLUMNS: tuple[str, ...] = ("model", "scan", "person", "level", "slice", "metric", "value")
"""Columns of the tidy table of :func:`evaluate_models`. ``level`` is ``"scan"`` or ``"slice"``;
``slice`` is the index along the slice axis (missing, ``<NA>``, on scan rows)."""

SCOPE_NOTE = (
    "Scan-level scores are computed on the labelled slices only (slices where the manual GM mask "
    "has a voxel); slice-level rows are the labelled slices."
)
"""The sentence written into every table, report and JSON about which slices are scored."""

METRIC_LABELS: dict[str, str] = {
    "DSC": "DSC: Dice",
    "JI": "JI: Jaccard",
    "CC": "CC: conformity (%)",
    "TPR": "TPR: sensitivity",
    "TNR": "TNR: specificity",
    "PPV": "PPV: precision",
    "MSD": "MSD: mean surface dist. (mm)",
    "HSD": "HSD: Hausdorff dist. (mm)",
    "SHD": "SHD: skel. Hausdorff (mm)",
    "SMD": "SMD: skel. median dist. (mm)",
    "gm_area_mm2": "GM area, predicted (mm²)",
    "manual_gm_area_mm2": "GM area, manual (mm²)",
}
"""Axis labels of the figures, with units."""


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def slice_axis(img: nib.Nifti1Image) -> int:
    """Array axis closest to the superior-inferior direction of ``img``'s affine.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        Any 3D image.

    Returns
    -------
    int
        0, 1 or 2 (2 for axial scans stored slice-last, whatever their in-plane orientation).
    """
    ornt = orientations.io_orientation(img.affine)
    hits = np.flatnonzero(ornt[:, 0] == 2)
    return int(hits[0]) if hits.size else 2


def _pixel_area_mm2(affine: np.ndarray, axis: int) -> float:
    """Area in mm² of one in-plane pixel: the cross product of the two in-plane affine columns."""
    cols = [affine[:3, k] for k in range(3) if k != axis]
    return float(np.linalg.norm(np.cross(cols[0], cols[1])))


def gm_area_per_slice(mask, *, axis: int | None = None) -> np.ndarray:
    """GM area (mm²) of every slice of a binary mask.

    Parameters
    ----------
    mask : path-like or nibabel.Nifti1Image
        A 3D 0/1 mask.
    axis : int, optional
        Slice axis; default from the affine (:func:`slice_axis`).

    Returns
    -------
    numpy.ndarray of float
        One area per slice: voxels set times the in-plane pixel area from the affine.

    Raises
    ------
    InputFileError, DimensionError
        Unreadable or non-3D file.
    ImageContentError
        Values other than 0 and 1.
    """
    img = load_image(mask, what="mask", allow_constant=True)
    data = _binary(img, "mask")
    axis = slice_axis(img) if axis is None else int(axis)
    other = tuple(k for k in range(3) if k != axis)
    return np.count_nonzero(data, axis=other) * _pixel_area_mm2(img.affine, axis)


def _name(img) -> str:
    return getattr(img, "_pedgm_source", None) or "<in-memory image>"


def _binary(img: nib.Nifti1Image, what: str) -> np.ndarray:
    data = np.asanyarray(img.dataobj)
    ok = (data == 0) | (data == 1)
    if not ok.all():
        bad = np.unique(data[~ok])
        shown = ", ".join(f"{v:g}" for v in bad[:3].tolist()) + (", ..." if bad.size > 3 else "")
        raise ImageContentError(
            f"{_name(img)}: {what} must hold only 0 and 1; found {bad.size} other value(s): {shown} "
            "(a probability map? threshold it first)"
        )
    return data == 1


def _check_pair_grid(pred: nib.Nifti1Image, truth: nib.Nifti1Image, *, affine_atol: float = 1e-3) -> None:
    p, t = _name(pred), _name(truth)
    if pred.shape[:3] != truth.shape[:3]:
        raise GridMismatchError(
            f"prediction {p} and manual mask {t} are on different grids: shape {pred.shape[:3]} vs {truth.shape[:3]}"
        )
    diff = float(np.abs(pred.affine - truth.affine).max())
    if not diff <= affine_atol:
        raise GridMismatchError(
            f"prediction {p} and manual mask {t} are on different grids: affines differ by up to {diff:.3g} mm "
            f"(tolerance {affine_atol:g})"
        )


# --------------------------------------------------------------------------------------------
# One pair
# --------------------------------------------------------------------------------------------


def _score(
    p: np.ndarray, t: np.ndarray, *, affine: np.ndarray, axis: int, labelled_only: bool, name: str
) -> tuple[dict, pd.DataFrame]:
    """Scan row and per-slice frame of two bool arrays on one grid."""
    spacing = tuple(float(s) for s in nib.affines.voxel_sizes(affine))
    area = _pixel_area_mm2(affine, axis)
    other = tuple(k for k in range(3) if k != axis)
    labelled = labelled_slices(t, axis=axis)
    if labelled_only and not labelled.any():
        raise ImageContentError(
            f"{name}: manual mask is empty, so no slice is labelled; score all slices instead "
            "(labelled_only=False, --all-slices)"
        )
    scored = np.flatnonzero(labelled) if labelled_only else np.arange(p.shape[axis])
    ps, ts = np.take(p, scored, axis=axis), np.take(t, scored, axis=axis)
    area_p = np.count_nonzero(p, axis=other) * area
    area_t = np.count_nonzero(t, axis=other) * area
    row = {
        "scope": "labelled slices" if labelled_only else "all slices",
        "n_slices": int(p.shape[axis]),
        "n_scored_slices": int(scored.size),
    }
    row.update(volume_metrics(ps, ts, spacing_mm=spacing, axis=axis))
    row["gm_area_mm2"] = float(area_p[scored].mean())
    row["manual_gm_area_mm2"] = float(area_t[scored].mean())

    frame = per_slice_metrics(ps, ts, spacing_mm=spacing, axis=axis)
    frame["slice"] = scored
    frame.insert(1, "labelled", labelled[scored])
    frame["gm_area_mm2"] = area_p[scored]
    frame["manual_gm_area_mm2"] = area_t[scored]
    return row, frame


def evaluate_pair(
    pred: str | os.PathLike | nib.Nifti1Image,
    truth: str | os.PathLike | nib.Nifti1Image,
    *,
    per_slice: bool = False,
    labelled_only: bool = True,
    axis: int | None = None,
    affine_atol: float = 1e-3,
) -> pd.DataFrame:
    """The ten SCGM-challenge metrics of a predicted GM mask against the manual one.

    Parameters
    ----------
    pred : path-like or nibabel.Nifti1Image
        Predicted 3D mask (0/1), e.g. the output of ``pedgm segment``.
    truth : path-like or nibabel.Nifti1Image
        Manual 3D mask (0/1) on the same grid.
    per_slice : bool, default False
        Return one row per scored slice instead of one row for the scan.
    labelled_only : bool, default True
        Score only the slices where ``truth`` has a voxel (see the module docstring); False
        scores every slice (an unlabelled slice with predicted GM then has DSC 0).
    axis : int, optional
        Slice axis; default from the affine (:func:`slice_axis`).
    affine_atol : float, default 1e-3
        Largest element-wise affine difference (mm) accepted between the two grids.

    Returns
    -------
    pandas.DataFrame
        ``per_slice=False``: one row with ``scope`` ("labelled slices" or "all slices"),
        ``n_slices``, ``n_scored_slices``, the ten :data:`~pedgm_kit.metrics.METRICS` (3D, on the
        scored slices; distances in mm) and :data:`AREA_METRICS` (mean GM area per scored
        slice, mm²). ``per_slice=True``: one row per scored slice with ``slice``, ``labelled``,
        the ten metrics (2D) and the two areas. ``frame.attrs`` holds ``pred``, ``truth`` (file
        names), ``scope``, ``spacing_mm`` and ``axis``.

    Raises
    ------
    InputFileError
        A file is missing or not NIfTI.
    DimensionError
        A mask is not 3D.
    GridMismatchError
        Shapes or affines differ (the message names both files and both values).
    ImageContentError
        A mask holds values other than 0 and 1, or (``labelled_only``) the manual mask is empty.

    Examples
    --------
    >>> evaluate_pair("sub-01_gmseg.nii.gz", "sub-01_gmseg-manual.nii.gz")["DSC"]  # doctest: +SKIP
    """
    p_img = load_image(pred, what="prediction", allow_constant=True)
    t_img = load_image(truth, what="manual mask", allow_constant=True)
    _check_pair_grid(p_img, t_img, affine_atol=affine_atol)
    p, t = _binary(p_img, "prediction"), _binary(t_img, "manual mask")
    axis = slice_axis(t_img) if axis is None else int(axis)
    row, frame = _score(p, t, affine=t_img.affine, axis=axis, labelled_only=labelled_only, name=_name(t_img))
    out = frame if per_slice else pd.DataFrame([row])
    out.attrs.update({
        "pred": _name(p_img), "truth": _name(t_img), "scope": row["scope"], "axis": axis,
        "spacing_mm": [float(s) for s in nib.affines.voxel_sizes(t_img.affine)],
    })
    return out


# --------------------------------------------------------------------------------------------
# Many scans, many models
# --------------------------------------------------------------------------------------------

_BUILTIN = ("challenge", "large")


def model_labels(models: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike]) -> dict[str, str]:
    """Short labels of model specifications, used in tables, figures and folder names.

    Parameters
    ----------
    models : sequence or mapping
        ``"challenge"``, ``"large"`` or paths to ``.hdf5`` weights; or ``{label: spec}``.

    Returns
    -------
    dict of str to str
        ``{label: spec}`` in input order. A built-in keeps its name; a weights file gets its
        stem (``outputs/run/pretrained_aug.hdf5`` -> ``pretrained_aug``), prefixed with its
        folder name if two stems collide.

    Raises
    ------
    ParameterError
        No model, a label repeated, or a label that is not a plain folder name.
    """
    if isinstance(models, (str, os.PathLike)):
        models = [models]
    if isinstance(models, Mapping):
        out = {str(k): str(v) for k, v in models.items()}
    else:
        specs = [str(m) for m in models]
        stems = [m if m in _BUILTIN else Path(m).name.removesuffix(".hdf5").removesuffix(".h5") for m in specs]
        out = {}
        for spec, stem in zip(specs, stems):
            label = stem
            if stems.count(stem) > 1 and spec not in _BUILTIN:
                label = f"{Path(spec).parent.name}-{stem}"
            if label in out:
                raise ParameterError(
                    f"model {spec!r} gets the label {label!r} of model {out[label]!r}; pass a {{label: path}} mapping"
                )
            out[label] = spec
    if not out:
        raise ParameterError("models is empty; expected at least one of 'challenge', 'large' or a weights path")
    for label in out:
        if not label or label in (".", "..") or not re.fullmatch(r"[A-Za-z0-9._+-]+", label):
            raise ParameterError(f"model label {label!r} must be a plain name (letters, digits, . _ + -)")
    return out


def prediction_path(output_dir: str | os.PathLike, model: str, scan_id: str) -> Path:
    """Where :func:`evaluate_models` saves a prediction: ``<output_dir>/pred/<model>/<scan_id>.nii.gz``."""
    return Path(output_dir) / "pred" / model / f"{scan_id}.nii.gz"


def _progress(iterable, *, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def _truth_image(scan: Scan) -> nib.Nifti1Image:
    """The scan's manual GM mask as a 0/1 image (binarised if discovery asked for it)."""
    img = nib.load(scan.gm_mask)
    out = nib.Nifti1Image(mask_array(scan, which="gm"), img.affine)
    out._pedgm_source = str(scan.gm_mask)
    return out


def _select(index: DatasetIndex, scans: Iterable[str] | None) -> list[Scan]:
    if scans is None:
        chosen = list(index.scans)
    else:
        by_id = {s.scan_id: s for s in index.scans}
        chosen = []
        for scan_id in scans:
            if scan_id not in by_id:
                raise ParameterError(f"scan {scan_id!r} is not a labelled scan of the index of {index.root}")
            chosen.append(by_id[scan_id])
    unlabelled = [s.scan_id for s in chosen if s.gm_mask is None]
    if unlabelled:
        raise ParameterError(f"scan(s) {unlabelled} have no manual GM mask to evaluate against")
    if not chosen:
        raise ParameterError(f"no scan to evaluate in the index of {index.root}")
    return chosen


def _segmenter(spec: str):
    from .segment import Segmenter

    return Segmenter(spec)


def evaluate_models(
    index: DatasetIndex,
    models: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    scans: Iterable[str] | None = None,
    output_dir: str | os.PathLike,
    seed: int,
    progress: bool = True,
    tta: bool = False,
    labelled_only: bool = True,
) -> pd.DataFrame:
    """Segment each scan with each model once, save the masks, and score them.

    Each model is loaded once (:class:`~pedgm_kit.segment.Segmenter`); each scan is segmented
    with the defaults of ``pedgm segment`` (cord-centred windows, the model's threshold) and
    saved (atomically, replacing an older file) as
    ``<output_dir>/pred/<model>/<scan_id>.nii.gz`` (:func:`prediction_path`), so the scores
    can be reproduced with ``pedgm evaluate``.

    Parameters
    ----------
    index : DatasetIndex
        Scans with manual GM masks, from :func:`pedgm_kit.datasets.discover_bids` or
        :func:`~pedgm_kit.datasets.discover_folders`.
    models : sequence or mapping
        Model specifications (``"challenge"``, ``"large"``, paths to ``.hdf5`` weights) or
        ``{label: spec}``; labels from :func:`model_labels`.
    scans : iterable of str, optional
        Scan ids to evaluate (e.g. the test split); default all labelled scans of ``index``.
    output_dir : path-like
        Folder for the predictions (created if needed).
    seed : int
        Seed of the test-time augmentation offsets (used only with ``tta=True``).
    progress : bool, default True
        Show a tqdm progress bar per model.
    tta : bool, default False
        Test-time augmentation, as ``pedgm segment --tta``.
    labelled_only : bool, default True
        Score the labelled slices only (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        Tidy: columns :data:`TIDY_COLUMNS`. Per model and scan: ``level="scan"`` rows (slice
        ``<NA>``) for the ten metrics and :data:`AREA_METRICS`, and ``level="slice"`` rows for
        every scored slice. ``attrs["predictions"]`` maps ``(model, scan_id)`` to the saved
        file, ``attrs["models"]`` the labels to their specifications, ``attrs["scope"]`` states
        which slices were scored.

    Raises
    ------
    ParameterError
        Unknown or unlabelled scan ids, bad model list.
    PedgmError
        Any error of segmentation or scoring (weights, grids, masks), naming the file.
    """
    labels = model_labels(models)
    chosen = _select(index, scans)
    output_dir = Path(output_dir)
    truths = {s.scan_id: _truth_image(s) for s in chosen}
    frames, predictions = [], {}
    for label, spec in labels.items():
        segmenter = _segmenter(spec)
        folder = prediction_path(output_dir, label, "x").parent
        folder.mkdir(parents=True, exist_ok=True)
        for scan in _progress(chosen, enabled=progress, desc=f"segment+score {label}"):
            seg = segmenter.segment(scan.image, tta=tta, seed=seed)
            path = save_like(
                np.asanyarray(seg.dataobj), seg, prediction_path(output_dir, label, scan.scan_id),
                overwrite=True, dtype=np.uint8,
            )
            predictions[(label, scan.scan_id)] = path
            p_img = load_image(path, what="prediction", allow_constant=True)
            t_img = truths[scan.scan_id]
            _check_pair_grid(p_img, t_img)
            axis = slice_axis(t_img)
            row, per_slice = _score(
                _binary(p_img, "prediction"), _binary(t_img, "manual mask"),
                affine=t_img.affine, axis=axis, labelled_only=labelled_only, name=str(scan.gm_mask),
            )
            frames.append(_tidy_rows(label, scan, row, per_slice))
    tidy = pd.concat(frames, ignore_index=True)
    tidy.attrs.update({
        "predictions": predictions, "models": labels,
        "scope": SCOPE_NOTE if labelled_only else "All slices are scored.",
    })
    return tidy


def _tidy_rows(label: str, scan: Scan, row: Mapping, per_slice: pd.DataFrame) -> pd.DataFrame:
    names = list(METRICS) + list(AREA_METRICS)
    scan_part = pd.DataFrame({"metric": names, "value": [float(row[m]) for m in names]})
    scan_part["level"], scan_part["slice"] = "scan", pd.NA
    slice_part = per_slice.melt(id_vars=["slice"], value_vars=names, var_name="metric", value_name="value")
    slice_part["level"] = "slice"
    out = pd.concat([scan_part, slice_part], ignore_index=True)
    out["model"], out["scan"], out["person"] = label, scan.scan_id, scan.person_id
    out["slice"] = out["slice"].astype("Int64")
    out["value"] = out["value"].astype(float)
    return out[list(TIDY_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


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
    wide = _pivot(sub, keys)
    wide = wide[_metric_order(wide.columns)].reset_index()
    wide.columns.name = None
    return wide


def _pivot(sub: pd.DataFrame, keys: list[str], *, columns: str = "metric") -> pd.DataFrame:
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


def write_tables(tidy: pd.DataFrame, output_dir: str | os.PathLike, *, prefix: str = "metrics") -> dict[str, Path]:
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



# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_metric_boxplots(
    tidy: pd.DataFrame,
    *,
    level: str = "slice",
    metrics: Sequence[str] = METRICS,
    order: Sequence[str] | None = None,
    ncols: int = 5,
    points: bool = True,
):
    """Boxplots of every metric by model in one grid, mean and median marked.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`evaluate_models`.
    level : {"slice", "scan"}, default "slice"
        Which rows to plot.
    metrics : sequence of str, default :data:`~pedgm_kit.metrics.METRICS`
        One panel each.
    order : sequence of str, optional
        Model order on the x axes; default order of appearance.
    ncols : int, default 5
        Panels per row.
    points : bool, default True
        Overlay the individual values (jittered, translucent).

    Notes
    -----
    So that one failed slice (e.g. a stray manual voxel 28 mm away) does not squash a panel, the
    y range stops 3 IQR beyond the quartiles (but includes at least the central 90% of the
    values) when values lie further out; those values are counted in a note at the panel edge
    ("3 above, max 28.6"). The boxes, means and medians
    always use every value.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot (safe with the Agg backend); save with ``fig.savefig(path)``.
        Boxes: quartiles, whiskers 1.5 IQR; black line = median, white diamond = mean; the
        number of values per box is printed under it.
    """
    import seaborn as sns
    from matplotlib.lines import Line2D

    if level not in ("scan", "slice"):
        raise ParameterError(f"level must be 'scan' or 'slice'; got {level!r}")
    sub = tidy[(tidy["level"] == level) & np.isfinite(tidy["value"].astype(float))]
    order = list(order) if order is not None else list(dict.fromkeys(tidy["model"]))
    nrows = max(1, math.ceil(len(metrics) / ncols))
    fig = _new_figure(3.3 * min(ncols, len(metrics)), 3.4 * nrows + 0.6)
    palette = dict(zip(order, sns.color_palette("colorblind", len(order))))
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(nrows, min(ncols, len(metrics)), k + 1)
        data = sub[sub["metric"] == metric]
        if len(data):
            with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated `vert`: not ours to fix
                warnings.filterwarnings("ignore", message=".*vert.*", category=DeprecationWarning)
                sns.boxplot(
                    data=data, x="model", y="value", order=order, hue="model", hue_order=order, palette=palette,
                    legend=False, ax=ax, width=0.6, fliersize=0 if points else 3, linewidth=1.1,
                    showmeans=True, medianprops={"color": "black", "linewidth": 2.0},
                    meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black", "markersize": 6},
                )
            if points:
                sns.stripplot(data=data, x="model", y="value", order=order, color="0.25", size=2.5,
                              alpha=0.45 if len(data) > 60 else 0.7, jitter=0.18, ax=ax, zorder=3)
            _clip_far_outliers(ax, data, order)
            counts = data.groupby("model")["value"].size()
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels([f"{m}\nn={int(counts.get(m, 0))}" for m in order], fontsize=9)
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        arrow = "↑ better" if HIGHER_IS_BETTER.get(metric, True) else "↓ better"
        ax.set_title(f"{METRIC_LABELS.get(metric, metric)} {arrow}", fontsize=9.5)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.grid(axis="y", alpha=0.3)
        if len(order) > 3:
            for label in ax.get_xticklabels():
                label.set_rotation(30)
                label.set_ha("right")
    handles = [
        Line2D([], [], color="black", linewidth=2, label="median"),
        Line2D([], [], marker="D", linestyle="", markerfacecolor="white", markeredgecolor="black", label="mean"),
    ]
    fig.legend(handles=handles, loc="outside upper right", ncols=2, frameon=False)
    what = "slice (labelled slices only)" if level == "slice" else "scan (scored on labelled slices)"
    fig.suptitle(f"SCGM metrics per {what}, by model", fontsize=12)
    return fig


def _clip_far_outliers(ax, data: pd.DataFrame, order: Sequence[str], *, k: float = 3.0) -> None:
    """Limit the y range to ``k`` IQR beyond the quartiles and note the values left out of view."""
    v = data["value"].to_numpy(float)
    lows, highs = [], []
    for _, grp in data.groupby("model"):
        q1, q3 = np.quantile(grp["value"].to_numpy(float), [0.25, 0.75])
        iqr = max(q3 - q1, 1e-12)
        lows.append(q1 - k * iqr)
        highs.append(q3 + k * iqr)
    # never tighter than the central 90% of all values (an IQR of 0 must not hide real spread)
    q05, q95 = np.quantile(v, [0.05, 0.95])
    lo, hi = max(min(min(lows), q05), v.min()), min(max(max(highs), q95), v.max())
    means = data.groupby("model")["value"].mean().to_numpy(float)  # the mean markers stay in view
    lo, hi = min(lo, means.min()), max(hi, means.max())
    if lo <= v.min() and hi >= v.max():
        return
    pad = 0.06 * max(hi - lo, 1e-9)
    ax.set_ylim(lo - pad, hi + pad)
    for i, model in enumerate(order):
        mv = data.loc[data["model"] == model, "value"].to_numpy(float)
        above, below = mv[mv > hi + pad], mv[mv < lo - pad]
        if above.size:
            ax.annotate(f"{above.size} above\nmax {above.max():.3g}", (i, hi + pad), xytext=(0, -2),
                        textcoords="offset points", ha="center", va="top", fontsize=7, color="firebrick")
        if below.size:
            ax.annotate(f"{below.size} below\nmin {below.min():.3g}", (i, lo - pad), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7, color="firebrick")


def _oriented(data: np.ndarray, affine: np.ndarray, axis: int, k: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Slice ``k`` along ``axis`` for display, and its (row, column) pixel size in mm.

    Rows run posterior -> anterior (drawn with ``origin="lower"``: anterior up), columns run
    from the patient's right to left (radiological view, as fsleyes shows it).
    """
    ornt = orientations.io_orientation(affine)
    vox = nib.affines.voxel_sizes(affine)
    plane = np.take(data, k, axis=axis)
    in_plane = [a for a in range(3) if a != axis]
    if int(ornt[in_plane[0], 0]) == 0:  # rows run along L-R: transpose so rows are A-P
        plane, in_plane = plane.T, in_plane[::-1]
    row_ax, col_ax = in_plane
    if ornt[row_ax, 1] < 0:  # rows increase towards posterior
        plane = plane[::-1]
    if ornt[col_ax, 1] > 0:  # columns increase towards the right
        plane = plane[:, ::-1]
    return plane, (float(vox[row_ax]), float(vox[col_ax]))


def plot_result_summary(
    tidy: pd.DataFrame,
    *,
    index: DatasetIndex,
    output_dir: str | os.PathLike,
    baseline: str,
    variant: str | None = None,
    slices: Sequence[tuple[str, int]] | None = None,
    n_slices: int = 3,
    half_width_mm: float = 12.0,
):
    """Image / baseline / best variant / manual for chosen slices, with Dice per panel.

    Like the original study's ``result_summary`` figure. Predictions are read from
    :func:`prediction_path` (as written by :func:`evaluate_models`).

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`evaluate_models`.
    index : DatasetIndex
        Index holding the scans (images and manual masks).
    output_dir : path-like
        The ``output_dir`` given to :func:`evaluate_models`.
    baseline : str
        Baseline model label.
    variant : str, optional
        Model shown beside the baseline; default the model with the highest mean scan-level DSC
        other than the baseline (none when there is only the baseline).
    slices : sequence of (scan_id, slice index), optional
        Rows of the figure. Default: ``n_slices`` scored slices spread over the slice-level Dice
        difference variant minus baseline (largest gain, median, largest loss); without a
        variant, over the baseline's Dice (best, median, worst).
    n_slices : int, default 3
        Rows when ``slices`` is not given.
    half_width_mm : float, default 12.0
        Half width (mm) of the square crop around the manual GM.

    Returns
    -------
    matplotlib.figure.Figure
        Rows = slices, columns = image, baseline, variant (if any), manual. Display: anterior up,
        patient's left on the right (radiological view, as fsleyes shows it). Masks drawn in colour over the image; the
        manual outline in dashed white on the prediction panels.
    """
    models = list(dict.fromkeys(tidy["model"]))
    if baseline not in models:
        raise ParameterError(f"baseline {baseline!r} is not a model of the table; models: {models}")
    if variant is None:
        scan_dsc = tidy[(tidy["level"] == "scan") & (tidy["metric"] == "DSC")]
        means = scan_dsc.groupby("model")["value"].mean().drop(baseline, errors="ignore")
        variant = str(means.idxmax()) if len(means) else None
    elif variant not in models:
        raise ParameterError(f"variant {variant!r} is not a model of the table; models: {models}")
    dsc = tidy[(tidy["level"] == "slice") & (tidy["metric"] == "DSC")]
    wide = _pivot(dsc, ["scan", "slice"], columns="model")
    if slices is None:
        if variant is not None:
            score = (wide[variant] - wide[baseline]).dropna().sort_values(ascending=False)
        else:
            score = wide[baseline].dropna().sort_values(ascending=False)
        if score.empty:
            raise PedgmError("no scored slice to show in the result summary")
        picks = np.unique(np.round(np.linspace(0, len(score) - 1, min(n_slices, len(score)))).astype(int))
        slices = [tuple(score.index[i]) for i in picks]
    slices = [(str(s), int(k)) for s, k in slices]

    columns = ["image", baseline] + ([variant] if variant else []) + ["manual"]
    fig = _new_figure(2.6 * len(columns), 2.7 * len(slices) + 0.4)
    axes = fig.subplots(len(slices), len(columns), squeeze=False)
    colours = {baseline: "tab:orange", variant: "tab:blue", "manual": "tab:green"}
    by_id = {s.scan_id: s for s in index.scans}
    for r, (scan_id, k) in enumerate(slices):
        if scan_id not in by_id:
            raise ParameterError(f"scan {scan_id!r} is not a labelled scan of the index of {index.root}")
        scan = by_id[scan_id]
        img = nib.load(scan.image)
        axis = slice_axis(img)
        image, pixel_mm = _oriented(np.asanyarray(img.dataobj, dtype=np.float32), img.affine, axis, k)
        manual = _oriented(mask_array(scan), img.affine, axis, k)[0] > 0
        preds = {}
        for m in columns[1:-1]:
            path = prediction_path(output_dir, m, scan_id)
            if not path.is_file():
                raise InputFileError(
                    f"No such file or no access: '{path}' (prediction of {m} for {scan_id}; run evaluate_models first)"
                )
            preds[m] = _oriented(np.asanyarray(nib.load(path).dataobj), img.affine, axis, k)[0] > 0
        # square crop around the manual GM (or the image centre when the slice has none)
        centre = np.argwhere(manual).mean(axis=0) if manual.any() else np.array(image.shape) / 2
        half = [max(4, int(round(half_width_mm / s))) for s in pixel_mm]
        box = tuple(slice(max(0, int(c) - h), int(c) + h + 1) for c, h in zip(centre, half))
        lo, hi = np.percentile(image[box], [1, 99.5])
        for c, name in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(image[box], cmap="gray", vmin=lo, vmax=hi, origin="lower", interpolation="nearest")
            if name == "image":
                ax.set_title(f"{scan_id}\nslice {k}", fontsize=8)
            else:
                mask = manual if name == "manual" else preds[name]
                overlay = np.zeros(mask[box].shape + (4,))
                overlay[mask[box]] = _rgba(colours[name], 0.55)
                ax.imshow(overlay, origin="lower", interpolation="nearest")
                if name == "manual":
                    ax.set_title(f"manual\nGM {mask.sum() * pixel_mm[0] * pixel_mm[1]:.1f} mm²", fontsize=9)
                else:
                    ax.contour(manual[box].astype(float), levels=[0.5], colors="white", linewidths=0.8,
                               linestyles="dashed", origin="lower")
                    value = wide.loc[(scan_id, k), name] if (scan_id, k) in wide.index else math.nan
                    shown = f"{value:.3f}" if math.isfinite(value) else "n/a"
                    ax.set_title(f"{name}\nDice {shown}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Result summary (anterior up, patient's left on the right); dashed = manual outline", fontsize=10)
    return fig


def plot_retest_areas(areas: pd.DataFrame, *, only_labelled: bool = False):
    """GM area per slice of each scan (solid) and its rescan (dashed), one panel per pair.

    Parameters
    ----------
    areas : pandas.DataFrame
        The table of :func:`retest_areas`.
    only_labelled : bool, default False
        Plot only the slices labelled in the first run's manual mask.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per pair, one colour per model; x = slice index, y = GM area (mm²).
    """
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    data = areas[areas["labelled"]] if only_labelled else areas
    pairs = list(dict.fromkeys(data["pair"]))
    models = list(dict.fromkeys(data["model"]))
    ncols = min(3, max(1, len(pairs)))
    nrows = max(1, math.ceil(len(pairs) / ncols))
    fig = _new_figure(4.2 * ncols, 3.0 * nrows + 0.5)
    palette = dict(zip(models, sns.color_palette("colorblind", len(models))))
    for i, pair in enumerate(pairs):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        sub = data[data["pair"] == pair]
        runs = sorted(sub["run"].unique())
        for model in models:
            for run, style in zip(runs, ("-", "--")):
                part = sub[(sub["model"] == model) & (sub["run"] == run)].set_index("slice")["gm_area_mm2"]
                if part.empty:
                    continue
                part = part.sort_index().reindex(range(int(part.index.min()), int(part.index.max()) + 1))
                ax.plot(part.index, part.to_numpy(float), style, marker=".", color=palette[model],
                        label=f"{model} run-{run}")  # NaN (slices left out) breaks the line
        ax.set_title(str(pair), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("slice")
        ax.set_ylabel("GM area (mm²)")
        ax.grid(alpha=0.3)
    if not pairs:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no scan/rescan pair", ha="center", va="center", transform=ax.transAxes)
    else:
        handles, labels = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), frameon=False, fontsize=8)
    fig.suptitle("Test-retest: GM area per slice, run-1 (solid) vs run-2 (dashed)", fontsize=11)
    return fig


def _rgba(name: str, alpha: float) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    r, g, b, _ = to_rgba(name)
    return (r, g, b, alpha)


# --------------------------------------------------------------------------------------------
# Test-retest
# --------------------------------------------------------------------------------------------


def retest_pairs(index: DatasetIndex, *, persons: Iterable[str] | None = None) -> list[tuple[Scan, Scan]]:
    """Scans paired with their rescans: same subject and session, runs 1 and 2.

    Parameters
    ----------
    index : DatasetIndex
        Labelled and unlabelled scans (e.g. gm-challenge-data: run-1 labelled, run-2 rescans
        without repositioning). Scans need ``subject`` and ``run`` metadata (BIDS entities);
        others are ignored.
    persons : iterable of str, optional
        Keep only pairs of these persons.

    Returns
    -------
    list of (Scan, Scan)
        ``(first run, second run)`` per subject/session with at least two runs (the two lowest
        run numbers), in index order of the first run.
    """
    wanted = None if persons is None else set(persons)
    groups: dict[tuple, list[Scan]] = {}
    for scan in index.scans + index.unlabelled:
        md = scan.metadata
        if md.get("subject") is None or md.get("run") is None:
            continue
        if wanted is not None and scan.person_id not in wanted:
            continue
        key = (md["subject"], md.get("session"))
        if all(s.scan_id != scan.scan_id for s in groups.get(key, [])):
            groups.setdefault(key, []).append(scan)
    pairs = []
    for members in groups.values():
        if len(members) >= 2:
            members = sorted(members, key=lambda s: int(s.metadata["run"]))
            pairs.append((members[0], members[1]))
    order = {s.scan_id: i for i, s in enumerate(index.scans + index.unlabelled)}
    return sorted(pairs, key=lambda pr: order[pr[0].scan_id])


def retest_areas(
    index: DatasetIndex,
    models: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    persons: Iterable[str] | None = None,
    output_dir: str | os.PathLike,
    seed: int,
    predicted: Mapping[tuple[str, str], str | os.PathLike] | None = None,
    progress: bool = True,
    tta: bool = False,
) -> pd.DataFrame:
    """GM area per slice of each scan and its rescan, per model.

    Every scan of :func:`retest_pairs` is segmented with every model (saved like
    :func:`evaluate_models` does, under ``<output_dir>/pred/<model>/``), unless ``predicted``
    already holds its mask from this run.

    Parameters
    ----------
    index : DatasetIndex
        Scans and rescans.
    models : sequence or mapping
        As in :func:`evaluate_models`.
    persons : iterable of str, optional
        Only these persons (e.g. those of the test split).
    output_dir : path-like
        Folder of the predictions.
    seed : int
        TTA seed (used only with ``tta=True``).
    predicted : mapping, optional
        ``{(model label, scan_id): path}`` of masks already segmented in this run with the same
        settings (``tidy.attrs["predictions"]`` of :func:`evaluate_models`); reused, not
        recomputed.
    progress : bool, default True
        tqdm progress bar per model.
    tta : bool, default False
        Test-time augmentation.

    Returns
    -------
    pandas.DataFrame
        One row per (model, pair, run, slice): ``model, person, pair`` (the first run's scan
        id), ``run, scan, slice, gm_area_mm2`` and ``labelled`` (the first run's manual mask has
        GM on this slice; False when it has no mask). Empty if there is no pair.

    Warns
    -----
    UserWarning
        A pair whose two scans have different shapes (slices cannot be matched) is skipped.
    """
    labels = model_labels(models)
    predicted = dict(predicted or {})
    pairs = []
    for first, second in retest_pairs(index, persons=persons):
        a, b = nib.load(first.image), nib.load(second.image)
        if a.shape[:3] != b.shape[:3]:
            warnings.warn(
                f"rescan {second.image} has shape {b.shape[:3]} but {first.image} has {a.shape[:3]}; pair skipped",
                stacklevel=2,
            )
            continue
        pairs.append((first, second))
    columns = ["model", "person", "pair", "run", "scan", "slice", "gm_area_mm2", "labelled"]
    rows = []
    for label, spec in labels.items():
        segmenter = None
        todo = [(first, scan) for first, second in pairs for scan in (first, second)]
        for first, scan in _progress(todo, enabled=progress, desc=f"retest {label}"):
            path = predicted.get((label, scan.scan_id))
            if path is None:
                segmenter = segmenter or _segmenter(spec)
                seg = segmenter.segment(scan.image, tta=tta, seed=seed)
                target = prediction_path(output_dir, label, scan.scan_id)
                target.parent.mkdir(parents=True, exist_ok=True)
                path = save_like(np.asanyarray(seg.dataobj), seg, target, overwrite=True, dtype=np.uint8)
                predicted[(label, scan.scan_id)] = path
            img = nib.load(first.image)
            axis = slice_axis(img)
            area = gm_area_per_slice(path, axis=axis)
            if first.gm_mask is not None:
                lab = labelled_slices(mask_array(first), axis=axis)
            else:
                lab = np.zeros(area.size, dtype=bool)
            for k, value in enumerate(area):
                rows.append((label, scan.person_id, first.scan_id, int(scan.metadata["run"]), scan.scan_id, k,
                             float(value), bool(lab[k])))
    return pd.DataFrame(rows, columns=columns)
