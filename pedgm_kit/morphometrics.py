"""GM morphometrics per slice, per vertebral level and per scan, as a long table for statistics.

After a cohort is segmented, what a study takes into its statistics is the GM area -- and, when a
spinal cord mask is at hand, the WM area and the GM/cord ratio -- slice by slice, averaged per
vertebral level (as SCT's ``sct_process_segmentation -vert``), and per scan:

- :func:`scan_morphometrics` -- one scan's GM mask (+ optional cord mask and level labels) to the
  long table :data:`COLUMNS` (``scan, person, slice, level, metric, value``) that pandas, R and
  seaborn read directly;
- :func:`slice_levels` -- the vertebral level of every slice from a label image in SCT's
  convention (see below);
- :func:`match_mask` -- a scan's cord mask / level labels in a folder or a BIDS derivative;
- :func:`write_table` -- the table as ``.csv`` or ``.tsv`` (BIDS), atomically;
- :func:`cohort_morphometrics` -- every scan of a cohort segmentation, one table, one file per scan.

Rows of the long table
----------------------
- slice rows: ``slice`` = index along the slice axis (the stored axis closest to
  superior-inferior), ``level`` = that slice's vertebral level or empty;
- level rows: ``slice`` empty, ``level`` = n: the mean over the slices of level n;
- scan rows: ``slice`` and ``level`` empty: the mean over the scan's covered slices (slices where
  the cord mask has a voxel; without a cord mask, slices where the GM mask has one).

Metrics: ``gm_area_mm2``; with a cord mask also ``cord_area_mm2``, ``wm_area_mm2`` (cord voxels
that are not GM) and ``gm_cord_ratio`` (GM area / cord area; empty where the cord mask is).
Areas come from the affine (:func:`pedgm_kit.metrics.area_per_slice_mm2`: right on sheared,
oblique and LPS grids).

Level labels
------------
SCT's convention: an image on the scan's grid whose voxel values are vertebral level numbers
(``sct_label_vertebrae``'s labelled cord, e.g. 2 = C2 ... 8 = T1); a slice's level is the most
frequent non-zero value on it. Disc labels (``*_labels-disc*``: one point per intervertebral disc,
value n for the disc at the top of vertebra n, e.g. 3 = C2/C3) are recognised when every label value
sits on a single slice; the slices from disc n down to, not including, disc n+1 are level n.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .exceptions import ImageContentError
from .geometry import slice_axis
from .io import check_binary, check_choice, check_same_grid, load_image, source_name
from .metrics import area_per_slice_mm2

__all__ = [
    "COLUMNS",
    "CORD_SUFFIXES",
    "LEVEL_SUFFIXES",
    "METRICS",
    "bids_companion",
    "check_companions",
    "cohort_morphometrics",
    "match_mask",
    "morphometrics_path",
    "scan_keys",
    "scan_morphometrics",
    "scan_stem",
    "slice_levels",
    "write_table",
]

COLUMNS: tuple[str, ...] = ("scan", "person", "slice", "level", "metric", "value")
"""Columns of the long table (``slice`` and ``level`` are nullable integers)."""

METRICS: tuple[str, ...] = ("gm_area_mm2", "cord_area_mm2", "wm_area_mm2", "gm_cord_ratio")
"""Metric names (the last three only with a cord mask)."""

CORD_SUFFIXES: tuple[str, ...] = ("_seg-manual", "_seg")
"""Suffixes of a scan's cord mask (BIDS derivatives, SCT's ``sct_deepseg_sc`` output), in order."""

LEVEL_SUFFIXES: tuple[str, ...] = ("_labels-manual", "_labels", "_seg_labeled", "_labels-disc-manual", "_labels-disc")
"""Suffixes of a scan's level label image, in order."""

LEVEL_KINDS = ("auto", "vertebral", "disc")
_NII = (".nii.gz", ".nii")


def scan_stem(path: Path) -> str:
    """A NIfTI file's name without ``.nii``/``.nii.gz``: how morphometrics and the QC page name a scan."""
    for ext in _NII:
        if path.name.endswith(ext):
            return path.name[: -len(ext)]
    return path.stem


def scan_keys(files: Sequence[str | os.PathLike]) -> list[str]:
    """One key per scan of a cohort, unique within it: how the long table and the QC page name scans.

    A scan's key is its file stem (:func:`scan_stem`) when no other scan of the cohort has that
    stem; otherwise its parent folders' names are prefixed, ``_``-joined, one at a time until the
    keys differ (the original study's layout ``<person>/mFFE_crop_r.nii.gz`` gives
    ``<person>_mFFE_crop_r``). The same file listed twice gets ``-2``, ``-3`` ... The keys also name
    per-scan files (``<key>_morphometrics.csv``, ``qc/scans/<key>.png``), so two scans never write
    one file.
    """
    paths = [Path(f) for f in files]
    stems = [scan_stem(p) for p in paths]
    folders = [[part for part in p.parent.parts if part not in (p.anchor, "", ".")] for p in paths]
    keys = list(stems)
    depth = 0
    while len(set(keys)) < len(keys) and depth < max((len(f) for f in folders), default=0):
        depth += 1
        counts = pd.Series(keys).value_counts()
        keys = ["_".join([*f[-depth:], stem]) if counts[key] > 1 else key
                for key, stem, f in zip(keys, stems, folders)]
    seen: dict[str, int] = {}
    unique = []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        unique.append(key if seen[key] == 1 else f"{key}-{seen[key]}")
    return unique


def _person(name: str) -> str:
    """BIDS subject of a file name, sessions folded (``sub-9709Ses1`` -> ``sub-9709``); else the stem."""
    found = re.search(r"sub-[A-Za-z0-9]+", name)
    return re.sub(r"Ses\d+$", "", found.group(0)) if found else name


def _load_on_grid(spec, gm: nib.Nifti1Image, *, what: str, gm_name: str) -> tuple[nib.Nifti1Image, str]:
    name = source_name(spec, f"<in-memory {what}>")
    img = load_image(spec, what=what, allow_constant=True, name=name)
    check_same_grid(gm, img, what=what, image_name=gm_name, other_name=name)
    return img, name


def slice_levels(labels, *, axis: int | None = None, kind: str = "auto") -> np.ndarray:
    """The vertebral level of every slice of a label image (0 where none), SCT's convention.

    Parameters
    ----------
    labels : path-like or nibabel.Nifti1Image
        Label image: voxel values are level numbers (see the module docstring), 0 elsewhere.
    axis : int, optional
        Slice axis; default from the affine.
    kind : {"auto", "vertebral", "disc"}, default "auto"
        ``vertebral``: a slice's level is its most frequent non-zero label (ties: the lower);
        ``disc``: point labels at the discs, levels filled between them; ``auto``: ``disc`` when
        every label value lies on one slice and there are at least two, else ``vertebral``.

    Returns
    -------
    numpy.ndarray of int, shape (n_slices,)

    Raises
    ------
    InputFileError, DimensionError
        Unreadable or not 3D.
    ImageContentError
        Values that are not non-negative integers.
    """
    check_choice(kind, LEVEL_KINDS, name="kind")
    name = source_name(labels, "<in-memory level labels>")
    img = load_image(labels, what="level labels", allow_constant=True, name=name)
    data = np.asanyarray(img.dataobj)
    if data.dtype.kind not in "iuf" or not np.all(np.isfinite(data)) or (data < 0).any() or (data % 1).any():
        raise ImageContentError(f"{name}: level labels must be non-negative integers (vertebral level numbers)")
    data = data.astype(np.int64)
    axis = slice_axis(img.affine) if axis is None else int(axis)
    planes = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
    values = np.unique(data[data > 0])
    on_slices = {int(v): np.flatnonzero((planes == v).any(axis=1)) for v in values}
    if kind == "auto":
        kind = "disc" if len(values) >= 2 and all(s.size == 1 for s in on_slices.values()) else "vertebral"
    levels = np.zeros(data.shape[axis], dtype=np.int64)
    if kind == "vertebral":
        for k, plane in enumerate(planes):
            found = plane[plane > 0]
            if found.size:
                counts = np.bincount(found)
                levels[k] = int(np.argmax(counts))
        return levels
    discs = {v: int(s[0]) for v, s in on_slices.items() if s.size}
    for v, z in discs.items():
        if v + 1 in discs:
            z_next = discs[v + 1]
            step = 1 if z_next > z else -1
            levels[np.arange(z, z_next, step)] = v
    return levels


def scan_morphometrics(
    gm,
    *,
    cord=None,
    levels=None,
    levels_kind: str = "auto",
    scan: str | None = None,
    person: str | None = None,
) -> pd.DataFrame:
    """GM (and WM) morphometrics of one scan: slice, level and scan rows of the long table.

    Parameters
    ----------
    gm : path-like or nibabel.Nifti1Image
        3D binary GM mask (e.g. ``pedgm segment``'s output).
    cord : path-like or nibabel.Nifti1Image, optional
        Binary spinal cord mask on the same grid: adds ``cord_area_mm2``, ``wm_area_mm2`` and
        ``gm_cord_ratio``.
    levels : path-like or nibabel.Nifti1Image, optional
        Level label image on the same grid (:func:`slice_levels`): adds the level rows.
    levels_kind : {"auto", "vertebral", "disc"}, default "auto"
        See :func:`slice_levels`.
    scan, person : str, optional
        Written into the table; default the GM mask's file name (without ``_gmseg`` and extension)
        and its BIDS subject (sessions folded: ``sub-9709Ses1`` -> ``sub-9709``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`; row kinds in the module docstring.

    Raises
    ------
    InputFileError, DimensionError, ImageContentError, GridMismatchError
        A mask or label image unreadable, not 3D, not binary / not integer, or on another grid.

    Examples
    --------
    >>> table = scan_morphometrics("sub-01_T2starw_gmseg.nii.gz", cord="sub-01_T2starw_seg.nii.gz")  # doctest: +SKIP
    >>> table.query("slice.isna() and level.isna()")  # doctest: +SKIP
    """
    gm_name = source_name(gm, "<in-memory GM mask>")
    gm_img = load_image(gm, what="GM mask", allow_constant=True, name=gm_name)
    gm_data = check_binary(np.asanyarray(gm_img.dataobj), name=gm_name, what="GM mask")
    axis = slice_axis(gm_img.affine)
    columns = {"gm_area_mm2": area_per_slice_mm2(gm_data, gm_img.affine, axis=axis)}
    covered = columns["gm_area_mm2"] > 0
    if cord is not None:
        cord_img, cord_name = _load_on_grid(cord, gm_img, what="cord mask", gm_name=gm_name)
        cord_data = check_binary(np.asanyarray(cord_img.dataobj), name=cord_name, what="cord mask")
        cord_area = area_per_slice_mm2(cord_data, gm_img.affine, axis=axis)
        columns["cord_area_mm2"] = cord_area
        columns["wm_area_mm2"] = area_per_slice_mm2(cord_data & ~gm_data, gm_img.affine, axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["gm_cord_ratio"] = np.where(cord_area > 0, columns["gm_area_mm2"] / cord_area, np.nan)
        covered = cord_area > 0
    n = gm_data.shape[axis]
    level = np.zeros(n, dtype=np.int64)
    if levels is not None:
        lab_img, _ = _load_on_grid(levels, gm_img, what="level labels", gm_name=gm_name)
        level = slice_levels(lab_img, axis=axis, kind=levels_kind)
    wide = pd.DataFrame(columns)
    level_col = pd.array(level, dtype="Int64")
    level_col[level == 0] = pd.NA
    wide.insert(0, "level", level_col)
    wide.insert(0, "slice", pd.array(np.arange(n), dtype="Int64"))
    metric_names = list(columns)
    parts = [wide.melt(id_vars=["slice", "level"], value_vars=metric_names, var_name="metric")]
    if levels is not None and wide["level"].notna().any():
        per_level = wide.dropna(subset=["level"]).groupby("level", sort=True)[metric_names].mean().reset_index()
        per_level.insert(0, "slice", pd.array([pd.NA] * len(per_level), dtype="Int64"))
        parts.append(per_level.melt(id_vars=["slice", "level"], value_vars=metric_names, var_name="metric"))
    summary = wide.loc[covered, metric_names].mean() if covered.any() else pd.Series(np.nan, index=metric_names)
    parts.append(pd.DataFrame({"slice": pd.array([pd.NA] * len(metric_names), dtype="Int64"),
                               "level": pd.array([pd.NA] * len(metric_names), dtype="Int64"),
                               "metric": metric_names, "value": summary.to_numpy(float)}))
    table = pd.concat(parts, ignore_index=True)
    stem = scan_stem(Path(gm_name))
    scan = scan or re.sub(r"_gmseg(-[A-Za-z0-9]+)?$", "", stem)
    table.insert(0, "person", person or _person(scan))
    table.insert(0, "scan", scan)
    table["slice"] = table["slice"].astype("Int64")
    table["level"] = table["level"].astype("Int64")
    table["value"] = table["value"].astype(float)
    return table[list(COLUMNS)]


def check_companions(image: str | os.PathLike, *, cord=None, levels=None) -> None:
    """Check, before any work, that a scan's cord mask and level labels are usable: readable, 3D, on
    the scan's grid, a 0/1 cord mask and integer labels.

    Raises
    ------
    InputFileError, DimensionError, GridMismatchError, ImageContentError
        One line naming the file and the problem.
    """
    from .io import open_nifti

    if cord is None and levels is None:
        return
    img = open_nifti(image, what="image")
    if cord is not None:
        cord_img, cord_name = _load_on_grid(cord, img, what="cord mask", gm_name=str(image))
        check_binary(np.asanyarray(cord_img.dataobj), name=cord_name, what="cord mask")
    if levels is not None:
        slice_levels(_load_on_grid(levels, img, what="level labels", gm_name=str(image))[0])


def match_mask(image: str | os.PathLike, where, *, suffixes: Sequence[str]) -> Path | None:
    """A scan's companion file (cord mask, level labels) in a folder, or the file itself.

    ``where`` is a file (returned as it is), a folder (looked for as ``<image stem><suffix>.nii[.gz]``
    for each suffix in order, then under the image's own file name), or None.
    """
    if where is None:
        return None
    where = Path(where)
    if not where.is_dir():
        return where
    stem = scan_stem(Path(image))
    for name in [stem + s for s in suffixes] + [stem]:
        for ext in _NII:
            if (where / (name + ext)).is_file():
                return where / (name + ext)
    return None


def bids_companion(root: str | os.PathLike, image: str | os.PathLike, *, suffixes: Sequence[str],
                   skip: Sequence[str] = ()) -> Path | None:
    """A BIDS image's derivative (``<root>/derivatives/*/<same folders>/<stem><suffix>.nii[.gz]``).

    Derivative pipelines are searched in name order, ``skip`` (e.g. the pipeline being written)
    left out; for each, the suffixes in order.
    """
    root, image = Path(root), Path(image)
    relative = image.parent.relative_to(root)
    pipelines = sorted(p for p in (root / "derivatives").glob("*") if p.is_dir() and p.name not in skip)
    for suffix in suffixes:
        for pipeline in pipelines:
            found = match_mask(image, pipeline / relative, suffixes=(suffix,))
            if found is not None and found.name != image.name:
                return found
    return None


def morphometrics_path(output: str | os.PathLike, *, ext: str = ".csv") -> Path:
    """``<mask stem>_morphometrics<ext>`` beside a GM mask output (BIDS: ``ext=".tsv"``)."""
    output = Path(output)
    return output.with_name(scan_stem(output) + "_morphometrics" + ext)


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically: tab-separated for ``.tsv`` (BIDS, ``n/a`` for missing), else CSV."""
    from ._utils import atomic_path

    path = Path(path)
    tsv = path.suffix == ".tsv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, sep="\t" if tsv else ",", na_rep="n/a" if tsv else "")
    return path


def cohort_morphometrics(
    summary: pd.DataFrame,
    *,
    cord_masks: Sequence | None = None,
    levels: Sequence | None = None,
    per_scan_dir: str | os.PathLike | None = None,
    per_scan_ext: str = ".csv",
    table_path: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Morphometrics of every segmented scan of a cohort (the table of ``segment_files``).

    Parameters
    ----------
    summary : pandas.DataFrame
        Columns ``file``, ``output``, ``status``; rows with status ``ok`` or ``skipped`` (an
        existing output) are measured.
    cord_masks, levels : sequence, optional
        One entry per row (path or None).
    per_scan_dir : path-like, optional
        Folder of the per-scan tables (``<scan>_morphometrics<ext>``); default beside each output.
    per_scan_ext : {".csv", ".tsv"}
    table_path : path-like, optional
        The cohort's long table (CSV), written atomically.

    Returns
    -------
    pandas.DataFrame
        The long table of all scans; ``attrs["errors"]`` lists ``(file, message)`` of scans whose
        morphometrics failed (a mask on another grid ...): reported, not fatal.
    """
    from .exceptions import PedgmError

    n = len(summary)
    cord_masks = list(cord_masks) if cord_masks is not None else [None] * n
    levels = list(levels) if levels is not None else [None] * n
    tables, errors = [], []
    keys = scan_keys(summary["file"].astype(str))  # unique per scan (two folders' mFFE_crop_r never collide)
    for (_, row), cord, lab, key in zip(summary.iterrows(), cord_masks, levels, keys):
        if row["status"] not in ("ok", "skipped") or not Path(row["output"]).is_file():
            continue
        try:
            table = scan_morphometrics(row["output"], cord=cord, levels=lab, scan=key)
        except PedgmError as err:
            errors.append((str(row["file"]), str(err)))
            continue
        target = (Path(per_scan_dir) / (key + "_morphometrics" + per_scan_ext)
                  if per_scan_dir is not None else morphometrics_path(row["output"], ext=per_scan_ext))
        target.parent.mkdir(parents=True, exist_ok=True)
        write_table(table, target)
        tables.append(table)
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(COLUMNS))
    out.attrs["errors"] = errors
    if table_path is not None:
        write_table(out, table_path)
    return out
