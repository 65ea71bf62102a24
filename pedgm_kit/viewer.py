"""Interactive slice viewers: predicted and manual GM masks over the image, slice by slice.

Three layers, so that everything but the wiring is testable without a kernel or a browser:

- :func:`render_slice` -- the drawing, a plain function: a 2D image slice and its masks in, an RGB
  ``uint8`` array out (overlay mode, opacity, zoom box, integer pixel scaling and orientation
  letters in a margin). :func:`to_png` encodes it for an ``ipywidgets.Image``.
- :func:`slice_readout` and :func:`orientation_labels` -- what the viewer reports: per-slice Dice of
  every mask against the manual one (:func:`pedgm_kit.metrics.dice`), GM area in mm² from the
  affine's voxel sizes, and which anatomical direction each edge of the picture faces.
- :class:`SliceViewer` -- ipywidgets controls (scan, slice, model, overlay mode, opacity, zoom)
  wired to the two functions above; no custom JavaScript, so it works in JupyterLab, the classic
  notebook and Voila. :class:`ReviewLog` records accepted / needs-correction decisions on draft
  masks in a CSV that is replaced atomically on every change.

Display convention (the one of :func:`pedgm_kit.preprocess.qc_montage`): every scan is brought to
the working orientation LAS (:class:`pedgm_kit.io.Canonical`) and axial slice ``k`` is shown as
``np.rot90(data[:, :, k])`` -- anterior up, the subject's left on the picture's right
(radiological). The letters on the picture's edges are computed from the affine of the displayed
grid, so a scan stored in any orientation is shown the same way and labelled truthfully.

Colours are in :data:`COLOURS`; overlay modes in :data:`MODES`:

=============  =====================================================================
``manual``     manual mask filled (``COLOURS["manual"]``)
``predicted``  selected model's mask filled (``COLOURS["predicted"]``)
``both``       model's mask filled, manual mask drawn as an outline on top
``agreement``  TP (both), FP (model only), FN (manual only) filled in three colours
=============  =====================================================================
"""

from __future__ import annotations

import io as _io
import math
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ._utils import atomic_path
from .exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    InputFileError,
    ParameterError,
)
from .io import Canonical, check_same_grid, load_image, open_nifti
from .metrics import dice

__all__ = [
    "COLOURS",
    "LABEL_MARGIN_PX",
    "LoadedScan",
    "MODES",
    "REVIEW_STATUSES",
    "ReviewLog",
    "SliceReadout",
    "SliceViewer",
    "ViewerScan",
    "glyph",
    "orientation_labels",
    "render_slice",
    "slice_readout",
    "to_png",
]

MODES: tuple[str, ...] = ("manual", "predicted", "both", "agreement")
"""Overlay modes of :func:`render_slice` and :class:`SliceViewer`."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "manual": (0, 200, 255),  # cyan
    "predicted": (255, 0, 200),  # magenta
    "tp": (255, 215, 0),  # yellow: manual and model agree
    "fp": (255, 40, 40),  # red: model only
    "fn": (40, 110, 255),  # blue: manual only (missed)
}
"""RGB colour of each overlay; agreement mode uses ``tp``, ``fp`` and ``fn``."""

REVIEW_STATUSES: tuple[str, ...] = ("needs review", "accepted", "needs correction")
"""Allowed values of the ``status`` column of a :class:`ReviewLog`."""

LABEL_MARGIN_PX = 20
"""Width (pixels) of the dark margin holding the orientation letters, on every side."""

_MARGIN_RGB = (24, 24, 24)
_TEXT_RGB = (240, 240, 240)
_GLYPH_SCALE = 2
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S", "?": "?"}
_GLYPHS_TEXT = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "?": (".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."),
}


def glyph(letter: str) -> np.ndarray:
    """The bitmap :func:`render_slice` draws for an orientation letter.

    Parameters
    ----------
    letter : {"A", "P", "L", "R", "S", "I", "?"}

    Returns
    -------
    numpy.ndarray of bool, shape (14, 10)
        True where the letter is drawn (a 5x7 font scaled by 2).
    """
    rows = _GLYPHS_TEXT.get(letter, _GLYPHS_TEXT["?"])
    bitmap = np.array([[c == "#" for c in row] for row in rows], dtype=bool)
    return np.kron(bitmap, np.ones((_GLYPH_SCALE, _GLYPH_SCALE), dtype=bool)).astype(bool)


# --------------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------------


def orientation_labels(affine, *, slice_axis: int = 2) -> dict[str, str]:
    """Anatomical direction faced by each edge of a displayed slice.

    The picture is ``np.rot90(data.take(k, axis=slice_axis))`` for data on the voxel grid of
    ``affine`` (the viewer's convention): its columns run along the first in-plane voxel axis,
    its rows against the second one.

    Parameters
    ----------
    affine : array_like, shape (4, 4)
        Voxel-to-world (RAS+) affine of the data the slice is taken from.
    slice_axis : int, default 2
        Voxel axis the slices are taken along.

    Returns
    -------
    dict of str to str
        Keys ``top``, ``bottom``, ``left``, ``right``; values one of ``A P L R S I`` (``?`` for an
        axis the affine does not orient). An LAS grid gives ``top A, bottom P, left R, right L``
        (radiological); an LPS grid shown the same way gives ``top P``, i.e. upside down.

    Raises
    ------
    ParameterError
        ``affine`` is not 4x4 or ``slice_axis`` is not 0, 1 or 2.

    Examples
    --------
    >>> orientation_labels(np.diag([-0.5, 0.5, 5.0, 1.0]))
    {'top': 'A', 'bottom': 'P', 'left': 'R', 'right': 'L'}
    """
    aff = np.asarray(affine, dtype=float)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise ParameterError(f"affine must be a finite 4x4 matrix; got shape {aff.shape}")
    if isinstance(slice_axis, bool) or slice_axis not in (0, 1, 2):
        raise ParameterError(f"slice_axis must be 0, 1 or 2; got {slice_axis!r}")
    codes = [c if c is not None else "?" for c in nib.aff2axcodes(aff)]
    first, second = (codes[a] for a in range(3) if a != slice_axis)
    return {"top": second, "bottom": _OPPOSITE[second], "left": _OPPOSITE[first], "right": first}


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def _as_mask(arr, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(arr)
    if a.shape != shape:
        raise GridMismatchError(f"{name} mask shape {a.shape} differs from image slice shape {shape}")
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iuf" or not np.isin(a, (0, 1)).all():
        raise ImageContentError(f"{name} mask must hold only 0 and 1 (or bool); got dtype {a.dtype}")
    return a.astype(bool)


def _check_scale(scale) -> tuple[int, int]:
    values = (scale, scale) if np.isscalar(scale) else tuple(scale)
    ok = len(values) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values
    )
    if not ok:
        raise ParameterError(f"scale must be a positive integer or two of them (rows, columns); got {scale!r}")
    return int(values[0]), int(values[1])


def _check_box(zoom_box, shape) -> tuple[int, int, int, int]:
    if zoom_box is None:
        return 0, shape[0], 0, shape[1]
    try:
        r0, r1, c0, c1 = (int(v) for v in zoom_box)
        ints = all(float(v) == int(v) for v in zoom_box)
    except (TypeError, ValueError):
        ints = False
    if not ints or not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
        raise ParameterError(
            f"zoom_box must be integers (row_start, row_stop, col_start, col_stop) inside the "
            f"slice shape {shape}; got {zoom_box!r}"
        )
    return r0, r1, c0, c1


def _blend(rgb: np.ndarray, where: np.ndarray, colour, opacity: float) -> None:
    if where.any():
        rgb[where] = (1.0 - opacity) * rgb[where] + opacity * np.asarray(colour, dtype=np.float64)


def render_slice(
    image,
    *,
    manual=None,
    predicted=None,
    mode: str = "both",
    opacity: float = 0.5,
    zoom_box: Sequence[int] | None = None,
    scale: int | Sequence[int] = 1,
    vmin: float | None = None,
    vmax: float | None = None,
    labels: Mapping[str, str] | None = None,
    outline_px: int = 2,
) -> np.ndarray:
    """Draw one slice with its GM masks as an RGB picture.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        The slice as it is to be shown (row 0 at the top), e.g. ``np.rot90(las[:, :, k])``.
    manual : array_like of bool or 0/1, shape (rows, cols), optional
        Manual GM mask of the slice.
    predicted : array_like of bool or 0/1, shape (rows, cols), optional
        Model (or any other) GM mask of the slice.
    mode : {"manual", "predicted", "both", "agreement"}, default "both"
        What to overlay (see the module docstring). A mask that is None is not drawn, except
        that "agreement" needs both.
    opacity : float, default 0.5
        Weight of the overlay colours, 0 (image only) to 1 (opaque); the thin manual outline of
        mode "both" is drawn with ``min(1, 2 * opacity)``.
    zoom_box : (row_start, row_stop, col_start, col_stop), optional
        Part of the slice to show, half-open pixel ranges; default the whole slice.
    scale : int or (int, int), default 1
        Each pixel becomes a ``scale`` x ``scale`` block (or rows x columns), nearest neighbour.
    vmin, vmax : float, optional
        Intensities shown as black and white; default the 0.5 and 99.5 percentiles of the slice.
    labels : mapping, optional
        Letters to draw beside the ``top``, ``bottom``, ``left`` and ``right`` edges (from
        :func:`orientation_labels`). When given, a dark margin of :data:`LABEL_MARGIN_PX` pixels is
        added on every side and the letters (:func:`glyph`) are centred in it.
    outline_px : int, default 2
        Width of the manual outline of mode "both", in output pixels.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
        ``H = (row_stop - row_start) * scale_rows`` (+ ``2 * LABEL_MARGIN_PX`` with labels),
        likewise ``W``. A pixel without overlay is grey ``g = round(255 * clip((v - vmin) / (vmax
        - vmin), 0, 1))``; an overlaid one ``round((1 - opacity) * g + opacity * colour)``.

    Raises
    ------
    DimensionError
        ``image`` is not 2D or is empty.
    GridMismatchError
        A mask's shape differs from the image's.
    ImageContentError
        The image holds NaN/infinite values or is not numeric, or a mask is not binary.
    ParameterError
        Bad ``mode``, ``opacity``, ``zoom_box``, ``scale``, ``outline_px``, or "agreement" without
        both masks.

    Examples
    --------
    >>> img = np.arange(16.0).reshape(4, 4)
    >>> truth = np.zeros((4, 4), bool); truth[1:3, 1:3] = True
    >>> rgb = render_slice(img, manual=truth, predicted=truth, mode="agreement", opacity=1.0)
    >>> tuple(rgb[1, 1]) == COLOURS["tp"]
    True
    """
    img = np.asarray(image)
    if img.ndim != 2 or 0 in img.shape:
        raise DimensionError(f"image slice must be a non-empty 2D array; got shape {img.shape}")
    if img.dtype.kind not in "iufb":
        raise ImageContentError(f"image slice has dtype {img.dtype}; expected numbers")
    img = img.astype(np.float64)
    if not np.isfinite(img).all():
        raise ImageContentError("image slice holds NaN or infinite values")
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not (isinstance(opacity, (int, float, np.number)) and 0.0 <= float(opacity) <= 1.0):
        raise ParameterError(f"opacity must be a number in [0, 1]; got {opacity!r}")
    if isinstance(outline_px, bool) or not isinstance(outline_px, (int, np.integer)) or outline_px < 1:
        raise ParameterError(f"outline_px must be a positive integer; got {outline_px!r}")
    man = None if manual is None else _as_mask(manual, "manual", img.shape)
    pred = None if predicted is None else _as_mask(predicted, "predicted", img.shape)
    if mode == "agreement" and (man is None or pred is None):
        raise ParameterError("mode 'agreement' needs both the manual and the predicted mask")
    sy, sx = _check_scale(scale)
    r0, r1, c0, c1 = _check_box(zoom_box, img.shape)

    lo = float(np.percentile(img, 0.5)) if vmin is None else float(vmin)
    hi = float(np.percentile(img, 99.5)) if vmax is None else float(vmax)
    if not hi > lo:
        hi = lo + 1.0

    def show(a):
        return np.repeat(np.repeat(a[r0:r1, c0:c1], sy, axis=0), sx, axis=1)

    grey = np.round(255.0 * np.clip((show(img) - lo) / (hi - lo), 0.0, 1.0))
    rgb = np.repeat(grey[..., None], 3, axis=2)
    a = float(opacity)
    m = None if man is None else show(man)
    p = None if pred is None else show(pred)
    if mode == "manual" and m is not None:
        _blend(rgb, m, COLOURS["manual"], a)
    elif mode == "predicted" and p is not None:
        _blend(rgb, p, COLOURS["predicted"], a)
    elif mode == "both":
        if p is not None:
            _blend(rgb, p, COLOURS["predicted"], a)
        if m is not None:
            inner = ndi.binary_erosion(m, structure=ndi.generate_binary_structure(2, 1),
                                       iterations=int(outline_px), border_value=0)
            _blend(rgb, m & ~inner, COLOURS["manual"], min(1.0, 2.0 * a))  # thin: stronger than fills
    elif mode == "agreement":
        _blend(rgb, m & p, COLOURS["tp"], a)
        _blend(rgb, p & ~m, COLOURS["fp"], a)
        _blend(rgb, m & ~p, COLOURS["fn"], a)
    out = np.round(rgb).astype(np.uint8)
    if labels is not None:
        out = _add_labels(out, labels)
    return out


def _add_labels(rgb: np.ndarray, labels: Mapping[str, str]) -> np.ndarray:
    missing = {"top", "bottom", "left", "right"} - set(labels)
    if missing:
        raise ParameterError(f"labels must give top, bottom, left and right; missing {sorted(missing)}")
    m = LABEL_MARGIN_PX
    h, w = rgb.shape[:2]
    out = np.empty((h + 2 * m, w + 2 * m, 3), dtype=np.uint8)
    out[:] = _MARGIN_RGB
    out[m:m + h, m:m + w] = rgb
    H, W = out.shape[:2]
    for side in ("top", "bottom", "left", "right"):
        g = glyph(str(labels[side]))
        gh, gw = g.shape
        if side in ("top", "bottom"):
            y = (m - gh) // 2 if side == "top" else H - m + (m - gh) // 2
            x = max(0, (W - gw) // 2)
        else:
            x = (m - gw) // 2 if side == "left" else W - m + (m - gw) // 2
            y = max(0, (H - gh) // 2)
        region = out[y:y + gh, x:x + gw]
        region[g[: region.shape[0], : region.shape[1]]] = _TEXT_RGB
    return out


def to_png(rgb) -> bytes:
    """Encode an RGB ``uint8`` array as PNG (lossless), for ``ipywidgets.Image``.

    Parameters
    ----------
    rgb : array_like of uint8, shape (H, W, 3)

    Returns
    -------
    bytes
        The PNG file's bytes (Pillow if installed, else matplotlib).

    Raises
    ------
    DimensionError
        Not an (H, W, 3) uint8 array.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise DimensionError(f"expected an (H, W, 3) uint8 array; got {arr.dtype} of shape {arr.shape}")
    buf = _io.BytesIO()
    try:
        from PIL import Image as _PILImage
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        from matplotlib import image as mpimg

        mpimg.imsave(buf, arr, format="png")
    else:
        _PILImage.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Readout
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceReadout:
    """What the viewer reports about one slice.

    Attributes
    ----------
    slice_index : int
        Slice number along the scan's S axis (working orientation LAS).
    labelled : bool
        The manual mask has GM on this slice. Raters label a subset of slices; on an unlabelled
        slice (or without a manual mask) Dice is not defined here (NaN), as in
        :func:`pedgm_kit.metrics.labelled_slices`.
    area_mm2 : dict of str to float
        GM area of each mask on this slice in mm²: ``"manual"`` (when there is a manual mask) and
        every named mask.
    dice : dict of str to float
        Dice of each named mask against the manual one (:func:`pedgm_kit.metrics.dice`); NaN when
        not ``labelled``.
    labels : dict of str to str
        Orientation letters of the picture's edges (:func:`orientation_labels`).
    """

    slice_index: int
    labelled: bool
    area_mm2: dict[str, float]
    dice: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)


def slice_readout(
    manual,
    *,
    masks: Mapping[str, Any],
    pixel_mm: Sequence[float],
    slice_index: int = 0,
    labels: Mapping[str, str] | None = None,
) -> SliceReadout:
    """Dice and GM areas of one slice's masks.

    Parameters
    ----------
    manual : array_like of bool or 0/1, shape (rows, cols), or None
        Manual GM mask of the slice; None when the scan has none (e.g. a draft under review).
    masks : mapping of str to array_like
        Other masks of the slice by name (baseline model, trained variants, draft ...), same shape.
    pixel_mm : sequence of 2 floats
        In-plane voxel sizes in mm (from the affine, e.g. ``Canonical(img).spacing_mm[:2]``).
    slice_index : int, default 0
        Recorded in the result.
    labels : mapping, optional
        Orientation letters, recorded in the result.

    Returns
    -------
    SliceReadout
        ``area_mm2[name] = count_nonzero(mask) * pixel_mm[0] * pixel_mm[1]``.

    Raises
    ------
    ParameterError
        ``pixel_mm`` is not two positive finite numbers.
    DimensionError, GridMismatchError, ImageContentError
        Masks not 2D, of different shapes, or not binary.

    Examples
    --------
    >>> truth = np.zeros((8, 8), bool); truth[2:6, 2:6] = True
    >>> r = slice_readout(truth, masks={"model": truth[::-1]}, pixel_mm=(0.5, 0.5))
    >>> r.area_mm2["manual"], r.dice["model"]
    (4.0, 1.0)
    """
    px = np.asarray(pixel_mm, dtype=float) if not isinstance(pixel_mm, (str, bytes)) else np.array([])
    if px.shape != (2,) or not np.all(np.isfinite(px) & (px > 0)):
        raise ParameterError(f"pixel_mm must be 2 positive finite voxel sizes in mm; got {pixel_mm!r}")
    pixel_area = float(px[0] * px[1])
    arrays = {name: np.asarray(m) for name, m in masks.items()}
    shapes = {a.shape for a in arrays.values()} | ({np.shape(manual)} if manual is not None else set())
    if len(shapes) > 1:
        raise GridMismatchError(f"slice masks have different shapes: {sorted(shapes)}")
    ref_shape = next(iter(shapes)) if shapes else (1, 1)
    if len(ref_shape) != 2:
        raise DimensionError(f"slice masks must be 2D; got shape {ref_shape}")
    area: dict[str, float] = {}
    man = None
    if manual is not None:
        man = _as_mask(manual, "manual", ref_shape)
        area["manual"] = float(np.count_nonzero(man) * pixel_area)
    labelled = bool(man is not None and man.any())
    scores: dict[str, float] = {}
    for name, arr in arrays.items():
        mask = _as_mask(arr, str(name), ref_shape)
        area[name] = float(np.count_nonzero(mask) * pixel_area)
        scores[name] = float(dice(mask, man)) if labelled else math.nan
    return SliceReadout(int(slice_index), labelled, area, scores, dict(labels or {}))


# --------------------------------------------------------------------------------------------
# Review log
# --------------------------------------------------------------------------------------------


class ReviewLog:
    """Accepted / needs-correction decisions on draft masks, kept in a CSV.

    The CSV has one row per scan with columns ``scan_id``, ``status`` (one of
    :data:`REVIEW_STATUSES`), ``note`` and ``reviewed_at`` (UTC, ISO 8601); other columns of an
    existing file (notebook 01's ``review.csv`` has ``image`` and ``draft``) are kept. Every change
    rewrites the whole file to a temporary name in the same folder and renames it into place, so
    the file on disk is always complete (the old version or the new one).

    Parameters
    ----------
    path : path-like
        The CSV. Read if it exists; otherwise created on the first :meth:`mark` or :meth:`save`.
    scan_ids : sequence of str, optional
        Scans to list; those not yet in the file get status ``"needs review"`` (in memory until
        the next write).

    Raises
    ------
    InputFileError
        The folder does not exist, or the file cannot be read, lacks a ``scan_id`` column, lists a
        scan twice or holds an unknown status.

    Examples
    --------
    >>> log = ReviewLog("outputs/run/drafts/review.csv", scan_ids=["sub-01"])  # doctest: +SKIP
    >>> log.mark("sub-01", "accepted", note="horn tips fine")  # doctest: +SKIP
    """

    COLUMNS = ("scan_id", "status", "note", "reviewed_at")

    def __init__(self, path: str | os.PathLike, *, scan_ids: Sequence[str] | None = None):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputFileError(f"Review log folder does not exist: '{self.path.parent}' (for '{self.path}')")
        if self.path.exists():
            try:
                frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
            except (OSError, ValueError, pd.errors.ParserError) as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise InputFileError(f"Cannot read review log '{self.path}': {reason}") from None
            if "scan_id" not in frame.columns:
                raise InputFileError(f"Review log '{self.path}' has no scan_id column; columns: {list(frame.columns)}")
            dup = frame["scan_id"][frame["scan_id"].duplicated()].tolist()
            if dup:
                raise InputFileError(f"Review log '{self.path}' lists scan '{dup[0]}' twice")
            for col in self.COLUMNS:
                if col not in frame.columns:
                    frame[col] = "needs review" if col == "status" else ""
            bad = frame.loc[~frame["status"].isin(REVIEW_STATUSES), ["scan_id", "status"]]
            if len(bad):
                sid, status = bad.iloc[0]
                raise InputFileError(
                    f"Review log '{self.path}': scan '{sid}' has status {status!r}; expected one of "
                    f"{', '.join(REVIEW_STATUSES)}"
                )
        else:
            frame = pd.DataFrame({c: pd.Series(dtype=str) for c in self.COLUMNS})
        self._frame = frame.reset_index(drop=True)
        self.add(scan_ids or ())

    def add(self, scan_ids: Sequence[str]) -> None:
        """List scans not yet in the log, with status ``"needs review"`` (nothing is written)."""
        new = [str(s) for s in dict.fromkeys(scan_ids) if str(s) not in set(self._frame["scan_id"])]
        if new:
            rows = pd.DataFrame({c: [""] * len(new) for c in self._frame.columns})
            rows["scan_id"] = new
            rows["status"] = "needs review"
            self._frame = pd.concat([self._frame, rows], ignore_index=True)

    def status(self, scan_id: str) -> str:
        """Status of a scan (``"needs review"`` for a scan not in the log)."""
        hit = self._frame.loc[self._frame["scan_id"] == str(scan_id), "status"]
        return str(hit.iloc[0]) if len(hit) else "needs review"

    def mark(self, scan_id: str, status: str, *, note: str = "") -> Path:
        """Record a decision and rewrite the CSV atomically.

        Parameters
        ----------
        scan_id : str
            The scan (added to the log if absent).
        status : {"needs review", "accepted", "needs correction"}
        note : str, default ""
            Free text, e.g. what needs correcting.

        Returns
        -------
        pathlib.Path
            The CSV written.

        Raises
        ------
        ParameterError
            Unknown status.
        """
        if status not in REVIEW_STATUSES:
            raise ParameterError(f"status must be one of {', '.join(REVIEW_STATUSES)}; got {status!r}")
        self.add([scan_id])
        row = self._frame.index[self._frame["scan_id"] == str(scan_id)][0]
        self._frame.loc[row, "status"] = status
        self._frame.loc[row, "note"] = str(note)
        self._frame.loc[row, "reviewed_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return self.save()

    def to_frame(self) -> pd.DataFrame:
        """A copy of the log as a DataFrame (all columns are strings)."""
        return self._frame.copy()

    def save(self) -> Path:
        """Write the CSV to a temporary file beside it and rename it into place.

        Returns
        -------
        pathlib.Path
        """
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            self._frame.to_csv(handle, index=False)
            handle.flush()
            os.fsync(handle.fileno())
        return self.path


# --------------------------------------------------------------------------------------------
# Scans and their masks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewerScan:
    """One scan for :class:`SliceViewer`: the image and any number of named GM masks.

    Parameters
    ----------
    scan_id : str
        Shown in the scan dropdown.
    image : path-like or nibabel.Nifti1Image
        The 3D scan, any stored orientation.
    manual : path-like or nibabel.Nifti1Image, optional
        Manual GM mask on the image's grid.
    masks : mapping of str to path-like or nibabel.Nifti1Image, default {}
        Other GM masks on the image's grid by name (baseline model, trained variants, a draft);
        the names fill the model dropdown. ``"manual"`` is reserved.
    cord_mask : path-like or nibabel.Nifti1Image, optional
        Spinal cord mask; the "cord window" zoom is fitted to it when given.

    Raises
    ------
    ParameterError
        Empty ``scan_id`` or a mask name that is empty or ``"manual"``.
    """

    scan_id: str
    image: Any
    manual: Any = None
    masks: Mapping[str, Any] = field(default_factory=dict)
    cord_mask: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.scan_id, str) or not self.scan_id:
            raise ParameterError(f"scan_id must be a non-empty string; got {self.scan_id!r}")
        for name in self.masks:
            if not isinstance(name, str) or not name or name == "manual":
                raise ParameterError(f"{self.scan_id}: mask name must be a non-empty string other than 'manual'; got {name!r}")
        object.__setattr__(self, "masks", dict(self.masks))


def _source(spec, label: str) -> str:
    """How error messages name a file, or an in-memory image (``label``)."""
    if isinstance(spec, (str, os.PathLike)):
        return str(spec)
    return getattr(spec, "get_filename", lambda: None)() or f"<in-memory {label}>"


def _header(spec, what: str, label: str):
    """The spec's grid (shape, affine) without reading voxel data, tagged with its source."""
    if isinstance(spec, (str, os.PathLike)):
        img = open_nifti(spec, what=what)
    elif isinstance(spec, nib.spatialimages.SpatialImage):
        img = spec
    else:
        raise ParameterError(f"{label}: expected a NIfTI path or nibabel image; got {type(spec).__name__}")

    # a tagged view of the grid: never sets attributes on the caller's image
    return SimpleNamespace(shape=img.shape, affine=img.affine, _pedgm_source=_source(spec, label))


@dataclass
class LoadedScan:
    """A scan as the viewer holds it: arrays in the working orientation LAS.

    Attributes
    ----------
    scan_id : str
    image : numpy.ndarray
        (L, A, S) float32 image.
    manual : numpy.ndarray or None
        (L, A, S) bool manual GM mask.
    masks : dict of str to numpy.ndarray
        (L, A, S) bool named masks.
    spacing_mm : numpy.ndarray
        Voxel sizes (mm) along L, A, S, from the affine.
    labels : dict of str to str
        Orientation letters of the displayed slices (:func:`orientation_labels`).
    stored_axcodes : tuple of str
        Orientation the image file is stored in, e.g. ``("L", "P", "S")``.
    vmin, vmax : float
        Intensity window (0.5 and 99.5 percentiles of the whole scan), the same for every slice.
    box : tuple of 4 int or None
        The cord window in picture coordinates (``zoom_box`` of :func:`render_slice`); None when
        the scan has no mask voxel.
    """

    scan_id: str
    image: np.ndarray
    manual: np.ndarray | None
    masks: dict[str, np.ndarray]
    spacing_mm: np.ndarray
    labels: dict[str, str]
    stored_axcodes: tuple[str, ...]
    vmin: float
    vmax: float
    box: tuple[int, int, int, int] | None


def _load_mask(spec, image: nib.Nifti1Image, what: str, label: str) -> np.ndarray:
    mask = load_image(spec, what=what, allow_constant=True)
    if not isinstance(spec, (str, os.PathLike)):
        mask._pedgm_source = _source(spec, label)
    check_same_grid(image, mask, what=what)
    data = Canonical(mask).data
    ok = (data == 0) | (data == 1)
    if not ok.all():
        bad = np.unique(data[~ok])[:3]
        raise ImageContentError(
            f"{mask._pedgm_source}: {what} must hold only 0 and 1; {int((~ok).sum())} voxels hold other values "
            f"(e.g. {', '.join(f'{v:g}' for v in bad)})"
        )
    return data == 1


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(i0, i1, j0, j1) half-open bounds of a LAS volume's mask over all slices, axes 0 and 1."""
    plane = mask.any(axis=2)
    if not plane.any():
        return None
    ii, jj = np.nonzero(plane.any(axis=1))[0], np.nonzero(plane.any(axis=0))[0]
    return int(ii[0]), int(ii[-1]) + 1, int(jj[0]), int(jj[-1]) + 1


def _load_scan(scan: ViewerScan, *, cord_margin_mm: float) -> LoadedScan:
    img = load_image(scan.image, what="image")
    if not isinstance(scan.image, (str, os.PathLike)):
        img._pedgm_source = _source(scan.image, f"image of scan '{scan.scan_id}'")
    canon = Canonical(img)
    manual = None
    if scan.manual is not None:
        manual = _load_mask(scan.manual, img, "manual GM mask", f"manual GM mask of scan '{scan.scan_id}'")
    masks = {
        name: _load_mask(spec, img, f"'{name}' GM mask", f"'{name}' mask of scan '{scan.scan_id}'")
        for name, spec in scan.masks.items()
    }
    cord = None
    if scan.cord_mask is not None:
        cord = _load_mask(scan.cord_mask, img, "cord mask", f"cord mask of scan '{scan.scan_id}'")
    # the cord window: cord mask, else manual GM, else every named mask together
    extent = cord if cord is not None and cord.any() else manual if manual is not None and manual.any() else None
    if extent is None and masks:
        extent = np.logical_or.reduce(list(masks.values()))
    box = None
    bounds = None if extent is None else _bbox(extent)
    if bounds is not None:
        n0, n1 = canon.data.shape[:2]
        pad = np.ceil(cord_margin_mm / canon.spacing_mm[:2]).astype(int)
        i0, i1 = max(0, bounds[0] - pad[0]), min(n0, bounds[1] + pad[0])
        j0, j1 = max(0, bounds[2] - pad[1]), min(n1, bounds[3] + pad[1])
        box = (int(n1 - j1), int(n1 - j0), int(i0), int(i1))  # rot90: rows run against axis 1, columns along axis 0
    vmin, vmax = (float(v) for v in np.percentile(canon.data, (0.5, 99.5)))
    return LoadedScan(
        scan_id=scan.scan_id, image=canon.data, manual=manual, masks=masks,
        spacing_mm=np.asarray(canon.spacing_mm, dtype=float), labels=orientation_labels(canon.affine),
        stored_axcodes=tuple(canon.axcodes), vmin=vmin, vmax=vmax, box=box,
    )


def _default_slice(loaded: LoadedScan) -> int:
    for vol in [loaded.manual, *loaded.masks.values()]:
        if vol is not None and vol.any():
            idx = np.nonzero(vol.any(axis=(0, 1)))[0]
            return int(idx[len(idx) // 2])
    return loaded.image.shape[2] // 2


def _fmt(value: float, digits: int) -> str:
    return "&ndash;" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------------


class SliceViewer:
    """Browse scans slice by slice with their manual and predicted GM masks overlaid.

    Controls: scan dropdown, slice slider, model dropdown (the named masks of the current scan),
    overlay mode (:data:`MODES`), opacity slider, zoom (cord window / full field of view) and,
    with a :class:`ReviewLog`, buttons that mark the scan accepted or needing correction. The
    picture is an ``ipywidgets.Image`` (PNG from :func:`render_slice`) and the readout an
    ``ipywidgets.HTML`` table: per-slice GM area (mm²) of every mask, Dice of every mask against
    the manual one, the orientation letters and the stored orientation. Display it by leaving the
    viewer as a cell's last expression or with ``display(viewer.widget)``.

    Parameters
    ----------
    scans : sequence of ViewerScan
        The scans, in dropdown order. Scan ids must be unique.
    review : ReviewLog, optional
        Add review buttons; decisions are written to this log.
    model : str, optional
        Mask name selected first (kept while scans that have it are browsed); default the first
        name of the first scan.
    mode : {"manual", "predicted", "both", "agreement"}, default "both"
    opacity : float, default 0.5
    zoom : {"cord", "full"}, default "cord"
        "cord": the window around the cord mask (else the manual GM, else every mask) plus
        ``cord_margin_mm``, fixed per scan; "full": the whole field of view.
    slice_index : int, optional
        First slice shown; default the middle labelled slice (of the manual mask, else of a mask).
    cord_margin_mm : float, default 6.0
        Margin around the cord window, mm.
    display_px : int, default 480
        Picture size (longest side, before the label margin) that the automatic scale aims at.
    scale : int, optional
        Fixed pixel repeat factor instead of the automatic one (kept the same along rows and
        columns, so non-square pixels are shown as square).
    validate : bool, default True
        Check every file's grid (shape and affine, headers only) against its image now.
    cache_size : int, default 4
        Scans kept in memory.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The whole viewer.
    scan_dropdown, slice_slider, model_dropdown, mode_buttons, opacity_slider, zoom_buttons
        The controls; setting their ``value`` updates the picture and the readout.
    image : ipywidgets.Image
    readout : ipywidgets.HTML
    accept_button, correction_button, note_text
        Review controls (only with ``review``).
    current_readout : SliceReadout
        The readout of what is shown.
    rendered : numpy.ndarray
        The RGB picture shown (the PNG in ``image.value`` decodes to it).

    Raises
    ------
    ParameterError
        No scans, duplicate scan ids, or a bad control value.
    InputFileError, GridMismatchError, ImageContentError, DimensionError
        A file is missing or unreadable, a mask is on another grid than its image (the message
        names the mask file), a mask is not binary, an image is not 3D.

    Examples
    --------
    >>> viewer = SliceViewer([ViewerScan("t2s", "t2s.nii.gz", manual="t2s_gmseg_manual.nii.gz",
    ...                                  masks={"challenge": "t2s_gmseg.nii.gz"})])  # doctest: +SKIP
    >>> viewer  # doctest: +SKIP
    """

    def __init__(
        self,
        scans: Sequence[ViewerScan],
        *,
        review: ReviewLog | None = None,
        model: str | None = None,
        mode: str = "both",
        opacity: float = 0.5,
        zoom: str = "cord",
        slice_index: int | None = None,
        cord_margin_mm: float = 6.0,
        display_px: int = 480,
        scale: int | None = None,
        validate: bool = True,
        cache_size: int = 4,
    ):
        import ipywidgets as w

        scans = list(scans)
        if not scans:
            raise ParameterError("SliceViewer needs at least one scan")
        for scan in scans:
            if not isinstance(scan, ViewerScan):
                raise ParameterError(f"scans must be ViewerScan records; got {type(scan).__name__}")
        ids = [s.scan_id for s in scans]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ParameterError(f"duplicate scan id '{dup[0]}' among the viewer's scans")
        if mode not in MODES:
            raise ParameterError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if zoom not in ("cord", "full"):
            raise ParameterError(f"zoom must be 'cord' or 'full'; got {zoom!r}")
        if not (isinstance(opacity, (int, float)) and 0.0 <= opacity <= 1.0):
            raise ParameterError(f"opacity must be a number in [0, 1]; got {opacity!r}")
        if not (isinstance(cord_margin_mm, (int, float)) and cord_margin_mm >= 0 and math.isfinite(cord_margin_mm)):
            raise ParameterError(f"cord_margin_mm must be a finite number >= 0 (mm); got {cord_margin_mm!r}")
        if isinstance(display_px, bool) or not isinstance(display_px, int) or display_px < 1:
            raise ParameterError(f"display_px must be a positive integer (pixels); got {display_px!r}")
        if scale is not None:
            _check_scale(scale)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ParameterError(f"cache_size must be a positive integer; got {cache_size!r}")
        if validate:
            for scan in scans:
                self._check_grids(scan)

        self._scans = {s.scan_id: s for s in scans}
        self._cache: OrderedDict[str, LoadedScan] = OrderedDict()
        self._cache_size = cache_size
        self._cord_margin_mm = float(cord_margin_mm)
        self._display_px = display_px
        self._scale = scale
        self.review = review
        if review is not None:
            review.add(ids)
        self._quiet = False
        self.rendered: np.ndarray | None = None
        self.current_readout: SliceReadout | None = None

        every = list(dict.fromkeys(name for s in scans for name in s.masks))
        if model is not None and model not in every:
            raise ParameterError(f"model {model!r} is not the name of any scan's mask; names: {every}")
        first = self._loaded(ids[0])
        names = list(first.masks)
        n = first.image.shape[2]
        start = _default_slice(first) if slice_index is None else slice_index
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < n:
            raise ParameterError(f"slice_index must be an integer in [0, {n - 1}] for scan '{ids[0]}'; got {slice_index!r}")

        wide = {"description_width": "initial"}
        self.scan_dropdown = w.Dropdown(options=ids, value=ids[0], description="scan", style=wide)
        self.model_dropdown = w.Dropdown(options=names, value=model if model in names else (names[0] if names else None),
                                         description="mask", style=wide)
        self.slice_slider = w.IntSlider(value=int(start), min=0, max=n - 1, step=1, description="slice",
                                        style=wide, layout=w.Layout(width="420px"))
        self.slice_slider.add_class("pedgm-slice-slider")
        self.mode_buttons = w.ToggleButtons(
            options=[("manual", "manual"), ("predicted", "predicted"), ("both", "both"),
                     ("agreement TP/FP/FN", "agreement")],
            value=mode, description="overlay", style={"description_width": "initial", "button_width": "auto"},
        )
        self.zoom_buttons = w.ToggleButtons(options=[("cord window", "cord"), ("full FOV", "full")], value=zoom,
                                            description="zoom", style={"description_width": "initial", "button_width": "auto"})
        self.opacity_slider = w.FloatSlider(value=float(opacity), min=0.0, max=1.0, step=0.05, description="opacity",
                                            readout_format=".2f", style=wide)
        self.image = w.Image(format="png")
        self.image.add_class("pedgm-image")
        self.readout = w.HTML()
        self.readout.add_class("pedgm-readout-box")
        rows = [
            w.HBox([self.scan_dropdown, self.model_dropdown]),
            self.slice_slider,
            self.mode_buttons,
            w.HBox([self.zoom_buttons, self.opacity_slider]),
            w.HBox([self.image, self.readout], layout=w.Layout(align_items="flex-start")),
        ]
        if review is not None:
            self.note_text = w.Text(description="note", placeholder="what needs correcting", style=wide)
            self.accept_button = w.Button(description="accept", button_style="success", icon="check")
            self.correction_button = w.Button(description="needs correction", button_style="warning", icon="pencil")
            self.accept_button.on_click(lambda _b: self._mark("accepted"))
            self.correction_button.on_click(lambda _b: self._mark("needs correction"))
            rows.append(w.HBox([self.accept_button, self.correction_button, self.note_text]))
        self._preferred = self.model_dropdown.value
        self.widget = w.VBox(rows)
        self.widget.add_class("pedgm-viewer")

        self.scan_dropdown.observe(self._on_scan, names="value")
        for control in (self.slice_slider, self.model_dropdown, self.mode_buttons, self.zoom_buttons, self.opacity_slider):
            control.observe(self._on_control, names="value")
        self.update()

    # ---------------------------------------------------------------------------- constructors

    @classmethod
    def from_index(
        cls,
        index,
        *,
        masks: Mapping[str, Mapping[str, str | os.PathLike]] | None = None,
        **kwargs,
    ) -> SliceViewer:
        """A viewer over a :class:`~pedgm_kit.datasets.DatasetIndex` and named mask files.

        Parameters
        ----------
        index : pedgm_kit.datasets.DatasetIndex
            Its labelled scans are shown with their manual GM mask (and cord mask, for the zoom
            window); its unlabelled images are shown when ``masks`` has a mask for them (drafts).
        masks : mapping, optional
            ``{model_name: {scan_id: mask path}}``; a model need not cover every scan.
        **kwargs
            Passed to :class:`SliceViewer` (``review``, ``mode``, ...).

        Returns
        -------
        SliceViewer

        Raises
        ------
        ParameterError
            A scan id in ``masks`` is not in the index, or no scan is left to show.

        Examples
        --------
        >>> viewer = SliceViewer.from_index(index, masks={"baseline": {"sub-9418_run-1_T2starw":
        ...                                 "outputs/run/sub-9418_gmseg.nii.gz"}})  # doctest: +SKIP
        """
        masks = {str(k): dict(v) for k, v in (masks or {}).items()}
        known = {s.scan_id for s in tuple(index.scans) + tuple(index.unlabelled)}
        for name, per_scan in masks.items():
            unknown = sorted(set(per_scan) - known)
            if unknown:
                raise ParameterError(f"masks['{name}'] names scan '{unknown[0]}', which is not in the index of {index.root}")
        with_masks = {sid for per_scan in masks.values() for sid in per_scan}
        chosen = list(index.scans) + [s for s in index.unlabelled if s.scan_id in with_masks]
        if not chosen:
            raise ParameterError(f"nothing to show: the index of {index.root} has no labelled scan and masks name none")
        scans = [
            ViewerScan(
                s.scan_id, s.image, manual=s.gm_mask, cord_mask=s.cord_mask,
                masks={name: per_scan[s.scan_id] for name, per_scan in masks.items() if s.scan_id in per_scan},
            )
            for s in chosen
        ]
        return cls(scans, **kwargs)

    @classmethod
    def from_arrays(
        cls,
        image,
        *,
        manual=None,
        masks: Mapping[str, Any] | None = None,
        affine=None,
        spacing_mm: Sequence[float] | None = None,
        slice_axis: int = 2,
        scan_id: str = "scan",
        **kwargs,
    ) -> SliceViewer:
        """A viewer over in-memory arrays (augmented samples, test predictions ...).

        Parameters
        ----------
        image : array_like (3D, or 2D for one slice), or mapping of scan id to array
            The image(s). A mapping gives one scan per key (dropdown order = key order).
        manual : array_like or mapping, optional
            Manual GM mask(s), same shape(s) as the image(s).
        masks : mapping, optional
            ``{name: array}``, or ``{name: {scan_id: array}}`` when ``image`` is a mapping.
        affine : array_like (4, 4), optional
            Voxel-to-world affine of the arrays (after moving ``slice_axis`` last). Default: the
            working orientation LAS with ``spacing_mm`` voxels.
        spacing_mm : sequence of 3 floats, optional
            Voxel sizes (mm) of the default affine; default (1, 1, 1). Ignored with ``affine``.
        slice_axis : int, default 2
            Axis of the arrays that indexes slices; 0 for ``(N, rows, cols)`` stacks such as the
            arrays of :mod:`pedgm_kit.data_creation`.
        scan_id : str, default "scan"
            Id of the scan when ``image`` is a single array.
        **kwargs
            Passed to :class:`SliceViewer`.

        Returns
        -------
        SliceViewer

        Raises
        ------
        ParameterError
            Bad ``spacing_mm``, ``affine`` or ``slice_axis``, or mapping keys that do not match.
        GridMismatchError, ImageContentError, DimensionError
            As for files (the message names the array).

        Examples
        --------
        >>> data = np.load("train.npz")  # doctest: +SKIP
        >>> SliceViewer.from_arrays(data["images"], manual=data["masks"], slice_axis=0,
        ...                         spacing_mm=(0.25, 0.25, 1.0))  # doctest: +SKIP
        """
        if affine is None:
            sp = (1.0, 1.0, 1.0) if spacing_mm is None else spacing_mm
            values = np.asarray(sp, dtype=float) if not isinstance(sp, (str, bytes)) else np.array([])
            if values.shape != (3,) or not np.all(np.isfinite(values) & (values > 0)):
                raise ParameterError(f"spacing_mm must be 3 positive finite voxel sizes in mm; got {spacing_mm!r}")
            affine = np.diag([-values[0], values[1], values[2], 1.0])
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise ParameterError(f"affine must be a finite 4x4 matrix; got shape {affine.shape}")
        if isinstance(slice_axis, bool) or slice_axis not in (0, 1, 2):
            raise ParameterError(f"slice_axis must be 0, 1 or 2; got {slice_axis!r}")

        multi = isinstance(image, Mapping)
        images = dict(image) if multi else {scan_id: image}
        manuals = (dict(manual) if isinstance(manual, Mapping) else {}) if multi else {scan_id: manual}
        per_model: dict[str, dict[str, Any]] = {}
        for name, value in (masks or {}).items():
            if multi and not isinstance(value, Mapping):
                raise ParameterError(f"masks['{name}'] must map scan ids to arrays when image is a mapping")
            per_model[name] = dict(value) if multi else {scan_id: value}
        for what, keys in [("manual", manuals)] + [(f"masks['{n}']", v) for n, v in per_model.items()]:
            extra = sorted(set(keys) - set(images))
            if extra:
                raise ParameterError(f"{what} names scan '{extra[0]}', which is not a key of image")

        def nifti(arr, label):
            a = np.asarray(arr)
            if a.ndim == 2:
                a = a[..., None] if slice_axis == 2 else a[None]
            if a.ndim != 3:
                raise DimensionError(f"{label}: expected a 2D or 3D array; got shape {a.shape}")
            if a.dtype == bool:
                a = a.astype(np.uint8)
            return nib.Nifti1Image(np.ascontiguousarray(np.moveaxis(a, slice_axis, 2)), affine)

        scans = []
        for sid, arr in images.items():
            sid = str(sid)
            man = manuals.get(sid)
            scans.append(ViewerScan(
                sid, nifti(arr, f"image array of scan '{sid}'"),
                manual=None if man is None else nifti(man, f"manual array of scan '{sid}'"),
                masks={n: nifti(v[sid], f"'{n}' array of scan '{sid}'") for n, v in per_model.items() if sid in v},
            ))
        return cls(scans, **kwargs)

    # ---------------------------------------------------------------------------- behaviour

    @staticmethod
    def _check_grids(scan: ViewerScan) -> None:
        ref = _header(scan.image, "image", f"image of scan '{scan.scan_id}'")
        others = [("manual GM mask", scan.manual), ("cord mask", scan.cord_mask)]
        others += [(f"'{name}' GM mask", spec) for name, spec in scan.masks.items()]
        for what, spec in others:
            if spec is not None:
                check_same_grid(ref, _header(spec, what, f"{what} of scan '{scan.scan_id}'"), what=what)

    def _loaded(self, scan_id: str) -> LoadedScan:
        if scan_id in self._cache:
            self._cache.move_to_end(scan_id)
            return self._cache[scan_id]
        loaded = _load_scan(self._scans[scan_id], cord_margin_mm=self._cord_margin_mm)
        self._cache[scan_id] = loaded
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return loaded

    @property
    def current(self) -> LoadedScan:
        """The loaded current scan (LAS arrays, spacing, orientation letters)."""
        return self._loaded(self.scan_dropdown.value)

    def _on_scan(self, change) -> None:
        loaded = self._loaded(change["new"])
        names = list(loaded.masks)
        self._quiet = True
        try:
            self.model_dropdown.options = names
            self.model_dropdown.value = self._preferred if self._preferred in names else (names[0] if names else None)
            self.slice_slider.max = loaded.image.shape[2] - 1  # clamps the value if needed
            self.slice_slider.value = _default_slice(loaded)
        finally:
            self._quiet = False
        self.update()

    def _on_control(self, change) -> None:
        if self._quiet:
            return
        if change["owner"] is self.model_dropdown and change["new"] is not None:
            self._preferred = change["new"]  # the user's choice, kept across scans that have it
        self.update()

    def _mark(self, status: str) -> None:
        self.review.mark(self.scan_dropdown.value, status, note=self.note_text.value)
        self.update()

    def _scale_for(self, shape, pixel_mm) -> tuple[int, int]:
        if self._scale is not None:
            return _check_scale(self._scale)
        dy, dx = pixel_mm
        fy, fx = dy / min(dy, dx), dx / min(dy, dx)
        k = max(1, int(self._display_px // max(shape[0] * fy, shape[1] * fx)))
        return max(1, round(k * fy)), max(1, round(k * fx))

    def render(self) -> np.ndarray:
        """Draw the current state; also updates :attr:`current_readout`.

        Returns
        -------
        numpy.ndarray of uint8, shape (H, W, 3)
        """
        loaded = self.current
        z = int(self.slice_slider.value)
        name = self.model_dropdown.value
        manual = None if loaded.manual is None else np.rot90(loaded.manual[:, :, z])
        pred = loaded.masks[name][:, :, z] if name in loaded.masks else None
        pred = None if pred is None else np.rot90(pred)
        mode = self.mode_buttons.value
        if mode == "agreement" and (manual is None or pred is None):
            mode = "both"
        box = loaded.box if self.zoom_buttons.value == "cord" else None
        picture = np.rot90(loaded.image[:, :, z])
        r0, r1, c0, c1 = box if box is not None else (0, picture.shape[0], 0, picture.shape[1])
        pixel_mm = (loaded.spacing_mm[1], loaded.spacing_mm[0])  # picture rows run along axis 1
        self.rendered = render_slice(
            picture, manual=manual, predicted=pred, mode=mode, opacity=float(self.opacity_slider.value),
            zoom_box=box, scale=self._scale_for((r1 - r0, c1 - c0), pixel_mm),
            vmin=loaded.vmin, vmax=loaded.vmax, labels=loaded.labels,
        )
        self.current_readout = slice_readout(
            None if loaded.manual is None else loaded.manual[:, :, z],
            masks={n: m[:, :, z] for n, m in loaded.masks.items()},
            pixel_mm=loaded.spacing_mm[:2], slice_index=z, labels=loaded.labels,
        )
        self._shown_mode = mode
        return self.rendered

    def update(self) -> None:
        """Redraw the picture and the readout from the controls' values."""
        self.image.value = to_png(self.render())
        self.readout.value = self._readout_html()

    def _readout_html(self) -> str:
        loaded, r = self.current, self.current_readout
        selected = self.model_dropdown.value
        n = loaded.image.shape[2]
        lab = r.labels
        rows = []
        if "manual" in r.area_mm2:
            rows.append(f"<tr><td>manual</td><td class='pedgm-area-manual'>{_fmt(r.area_mm2['manual'], 2)}</td><td>&ndash;</td></tr>")
        for name in loaded.masks:
            sel = name == selected
            tr = "<tr class='pedgm-selected' style='font-weight:bold'>" if sel else "<tr>"
            rows.append(
                f"{tr}"
                f"<td>{escape(name)}</td><td class='pedgm-area{'-selected' if sel else ''}'>{_fmt(r.area_mm2[name], 2)}</td>"
                f"<td><span class='{'pedgm-dice' if sel else 'pedgm-dice-other'}' data-model='{escape(name, quote=True)}'>"
                f"{_fmt(r.dice[name], 4)}</span></td></tr>"
            )
        if loaded.manual is None:
            note = "no manual mask: Dice not available"
        elif not r.labelled:
            note = "slice not labelled in the manual mask: Dice not defined"
        else:
            note = "labelled slice"
        if selected is None and self.mode_buttons.value in ("predicted", "both", "agreement"):
            note += "; no model mask for this scan"
        if self._shown_mode != self.mode_buttons.value:
            note += f"; shown as '{self._shown_mode}' (agreement needs both masks)"
        legend = {
            "manual": [("manual", "manual")],
            "predicted": [("predicted", "model")],
            "both": [("predicted", "model (fill)"), ("manual", "manual (outline)")],
            "agreement": [("tp", "TP both"), ("fp", "FP model only"), ("fn", "FN manual only")],
        }[self._shown_mode]
        swatches = " ".join(
            f"<span style='display:inline-block;width:0.9em;height:0.9em;background:rgb{COLOURS[key]}'></span> {text}"
            for key, text in legend
        )
        review = ""
        if self.review is not None:
            review = f"<div>review: <b class='pedgm-review-status'>{escape(self.review.status(loaded.scan_id))}</b></div>"
        return (
            "<div class='pedgm-readout' style='font-family:sans-serif;font-size:13px;padding-left:12px'>"
            f"<div><b class='pedgm-scan'>{escape(loaded.scan_id)}</b> &middot; slice "
            f"<span class='pedgm-slice'>{r.slice_index}</span> of 0&ndash;{n - 1}</div>"
            f"<div><i>{escape(note)}</i></div>"
            "<table style='border-collapse:collapse'><tr><th style='text-align:left'>mask</th>"
            "<th>GM area (mm&sup2;)</th><th>Dice vs manual</th></tr>" + "".join(rows) + "</table>"
            f"<div>{swatches}</div>"
            f"<div class='pedgm-orientation'>edges: top {lab['top']}, bottom {lab['bottom']}, "
            f"left {lab['left']}, right {lab['right']} (stored {''.join(loaded.stored_axcodes)}, "
            f"shown as LAS, radiological)</div>"
            f"<div>voxel {' x '.join(f'{v:.3g}' for v in loaded.spacing_mm)} mm</div>"
            f"{review}</div>"
        )

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
