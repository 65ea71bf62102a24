"""Segmentation metrics of the spinal cord grey matter (SCGM) segmentation challenge.

The ten metrics of Prados et al. 2017 ("Spinal cord grey matter segmentation challenge",
NeuroImage 152:312-329), in the order of :data:`METRICS` and as listed in Perone et al. 2018
(Sci. Rep. 8:5966, Table 7), computed for binary masks on a grid with physical spacing.
Distances are in mm; ``spacing_mm[k]`` is the voxel size along array axis ``k``.

Let TP, FP, FN, TN be the voxel counts of the confusion matrix of ``pred`` against ``truth``.

=====  ==================================  ==========================================  =====
Name   Metric                              Definition                                  Range
=====  ==================================  ==========================================  =====
DSC    Dice similarity coefficient         2 TP / (2 TP + FP + FN)                     0..1
JI     Jaccard index                       TP / (TP + FP + FN)                         0..1
CC     Conformity coefficient (percent)    (1 - (FP + FN) / TP) * 100                  < 100
TPR    True positive rate, sensitivity     TP / (TP + FN)                              0..1
TNR    True negative rate, specificity     TN / (TN + FP)                              0..1
PPV    Positive predictive value           TP / (TP + FP)                              0..1
MSD    Symmetric mean surface distance     mean of the pooled distances B_p->B_t and   >= 0
                                           B_t->B_p (mm)
HSD    Hausdorff surface distance          max of the same pooled distances (mm)       >= 0
SHD    Skeletonised Hausdorff distance     max of the pooled distances S_p->B_t and    >= 0
                                           S_t->B_p (mm)
SMD    Skeletonised median distance        median of the same pooled distances (mm)    >= 0
=====  ==================================  ==========================================  =====

TPR, TNR and PPV are fractions here; the challenge result tables print them as percentages, so
multiply by 100 to compare. CC is a percentage, as in the challenge.

Surfaces, skeletons and distances
---------------------------------
* **Boundary** ``B`` of a mask ``M``: ``M XOR binary_erosion(M)``, the erosion using face
  connectivity (4-connectivity in 2D, 6-connectivity in 3D; ``generate_binary_structure(ndim, 1)``)
  and treating everything outside the array as background. A boundary voxel is therefore a mask
  voxel with at least one face neighbour outside the mask.
* **Point-to-set distance** ``d(x, B)``: Euclidean distance in mm from the centre of voxel ``x``
  to the centre of the nearest voxel of ``B``, from
  ``scipy.ndimage.distance_transform_edt(~B, sampling=spacing_mm)``.
* ``X -> B`` below is the set ``{d(x, B) : x in X}``, one value per voxel of ``X``.
* **MSD / HSD**: the two directed sets ``B_p -> B_t`` and ``B_t -> B_p`` are pooled; MSD is their
  mean (the "average symmetric surface distance": every boundary voxel of both masks counts
  once) and HSD their maximum (the symmetric Hausdorff distance between the two boundaries).
* **Skeleton** ``S`` of a mask: in 2D, the Guo & Hall (1989, Comm. ACM 32:359, algorithm A1)
  parallel thinning of the mask -- an 8-connected, one-pixel-wide, topology-preserving medial
  line that keeps the end points of every branch -- as implemented by scikit-image
  (:func:`skimage.morphology.thin`: subiteration G3 before G3', parallel deletion, the outside of
  the array is background). It replaced a hand-written implementation of the same published
  algorithm after both were shown to give identical skeletons on every labelled slice of the sample
  masks, on thousands of random masks and on all 65,536 4x4 masks (``tests/metrics/test_metrics_crosscheck.py``).
  ``skimage.morphology.skeletonize`` is a different algorithm (Zhang-Suen style) and is not used:
  it already differs on a 3-pixel L. The skeleton is a property of the pixel grid and does not
  depend on the spacing. A non-empty mask always has a non-empty skeleton. In 3D
  (:func:`volume_metrics`) the skeleton is the stack of the 2D skeletons of the slices along
  ``axis`` (the GM "butterfly" is a thin planar shape in each axial slice, and challenge data have
  slices 5-7.5 mm thick, so a 3D medial surface would be dominated by the slab faces).
* **SHD / SMD** (challenge definition, symmetric form): distances from the skeleton of one mask to
  the boundary of the other, in both directions, pooled: ``S_p -> B_t`` and ``S_t -> B_p``. SHD is
  the maximum ("indicator of maximal local error") and SMD the median ("indicator of global
  errors") of the pooled set. For thin structures such as the GM horns these are much less driven
  by small boundary wiggles than HSD and MSD. Caveats of this definition: they do not vanish for
  identical masks (they then equal the largest / median distance from the skeleton to the mask's
  own boundary, about half the local thickness: 0 for structures up to 2 pixels wide), and they
  are not monotone in the error (a skeleton lying exactly on the other boundary scores 0).
  Provenance: the definition follows the challenge's description of these metrics (Prados et al.
  2017; Perone et al. 2018, Table 7); the paper's own evaluation code was not available to check
  it against. On synthetic GM at 0.25 mm it gives values of the magnitude published for the
  challenge entries (``benchmarks/bench_metrics.py``).

Empty masks
-----------
"Empty" means no voxel set in the slice (for :func:`slice_metrics` and the rows of
:func:`per_slice_metrics`) or in the whole scan (:func:`volume_metrics`). The rules avoid every
0/0 and x/0, so no ``RuntimeWarning`` is emitted, and the value is ``NaN`` wherever the metric is
undefined (``NaN`` drops out of ``pandas`` means; count it explicitly if it matters).

=======================  ====  ====  ====  ====  ====  ====  =====================
Case                     DSC   JI    CC    TPR   PPV   TNR   MSD, HSD, SHD, SMD
=======================  ====  ====  ====  ====  ====  ====  =====================
both empty               1     1     100   1     1     1     NaN
truth empty, pred not    0     0     NaN   NaN   0     <1    NaN
pred empty, truth not    0     0     NaN   0     NaN   1     NaN
both set, no overlap     0     0     NaN   0     0     <=1   finite
=======================  ====  ====  ====  ====  ====  ====  =====================

* Both empty is perfect agreement: every overlap ratio is 1 (CC 100). Distances between two
  absent surfaces are undefined: ``NaN``.
* TPR is ``NaN`` when only the truth is empty (no positive to find), PPV is ``NaN`` when only the
  prediction is empty (no positive claimed).
* CC is ``NaN`` whenever TP = 0 and a mask is set: the formula tends to minus infinity, which would
  swamp any average; DSC = 0 already records the failure.
* TNR is defined as TPR of the complements: if the truth covers the whole array (no negatives) it
  is 1 when the prediction does too and ``NaN`` otherwise.
* Distances need both surfaces: ``NaN`` unless both masks are non-empty.

Inputs
------
Masks are ``bool`` arrays or integer/float arrays holding only 0 and 1; they are never modified.
``pred`` and ``truth`` must have the same shape. Errors are raised before any work:
:class:`~pedgm_kit.exceptions.DimensionError` (wrong number of dimensions or an empty axis),
:class:`~pedgm_kit.exceptions.GridMismatchError` (shapes differ),
:class:`~pedgm_kit.exceptions.ImageContentError` (values other than 0/1, non-numeric dtype) and
``ValueError`` (spacing not positive finite numbers, one per axis; bad ``axis``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .exceptions import (
    DimensionError,
    GridMismatchError,
    ParameterError,
)
from .io import check_binary

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "METRIC_LABELS",
    "area_per_slice_mm2",
    "dice",
    "labelled_slices",
    "per_slice_metrics",
    "pixel_area_mm2",
    "slice_metrics",
    "volume_metrics",
]

METRICS: tuple[str, ...] = ("DSC", "JI", "CC", "TPR", "TNR", "PPV", "MSD", "HSD", "SHD", "SMD")
"""Metric names, in the order used for dict keys and DataFrame columns."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "DSC": True, "JI": True, "CC": True, "TPR": True, "TNR": True, "PPV": True,
    "MSD": False, "HSD": False, "SHD": False, "SMD": False,
}
"""Direction of each metric (distances: lower is better)."""

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
"""Axis labels of the figures, with units (the ten metrics and the GM areas of evaluation)."""

_DISTANCE = METRICS[6:]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_shape(arr: np.ndarray, name: str, ndim: int | None) -> None:
    if ndim is not None and arr.ndim != ndim:
        raise DimensionError(f"{name}: expected a {ndim}D mask, got {arr.ndim}D data of shape {arr.shape}")
    if arr.ndim == 0 or 0 in arr.shape:
        raise DimensionError(f"{name}: mask has no voxels (shape {arr.shape})")


def _validate_pair(pred, truth, ndim: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Cheap checks first (dimensions, shapes), then the values."""
    p, t = np.asarray(pred), np.asarray(truth)
    _check_shape(p, "pred", ndim)
    _check_shape(t, "truth", ndim)
    if p.shape != t.shape:
        raise GridMismatchError(f"pred shape {p.shape} differs from truth shape {t.shape}")
    return check_binary(p, name="pred"), check_binary(t, name="truth")


def _validate_spacing(spacing_mm, ndim: int) -> tuple[float, ...]:
    values = None
    if isinstance(spacing_mm, (Sequence, np.ndarray)) and not isinstance(spacing_mm, (str, bytes)):
        try:
            values = np.asarray(spacing_mm, dtype=float)
        except (TypeError, ValueError):
            values = None
    if values is None or values.shape != (ndim,) or not np.all(np.isfinite(values) & (values > 0)):
        raise ParameterError(
            f"spacing_mm must be {ndim} positive finite voxel sizes in mm (one per array axis); got {spacing_mm!r}"
        )
    return tuple(float(v) for v in values)


def _validate_axis(axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ParameterError(f"axis must be an integer in [{-ndim}, {ndim - 1}]; got {axis!r}")
    return int(axis) % ndim


# --------------------------------------------------------------------------------------------
# Overlap metrics (vectorised over any leading axis)
# --------------------------------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray, both_empty: np.ndarray) -> np.ndarray:
    """``num / den``; 1 where ``both_empty``, NaN where otherwise ``den == 0``. No warnings."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    out[both_empty] = 1.0
    return out


def _overlap_metrics(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    tp, fp, fn, tn = (np.atleast_1d(np.asarray(c, dtype=np.float64)) for c in (tp, fp, fn, tn))
    both_empty = (tp + fp + fn) == 0
    cc = np.full(tp.shape, np.nan)
    np.divide(fp + fn, tp, out=cc, where=tp > 0)
    cc = (1.0 - cc) * 100.0  # NaN stays NaN
    cc[both_empty] = 100.0
    return {
        "DSC": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "JI": _ratio(tp, tp + fp + fn, both_empty),
        "CC": cc,
        "TPR": _ratio(tp, tp + fn, both_empty),
        # TPR of the complements: "both empty" there means pred and truth both cover everything.
        "TNR": _ratio(tn, tn + fp, (tn + fp + fn) == 0),
        "PPV": _ratio(tp, tp + fp, both_empty),
    }


def _confusion(p: np.ndarray, t: np.ndarray, axis=None):
    """TP, FP, FN, TN counts summed over ``axis`` (all axes when None)."""
    tp = np.count_nonzero(p & t, axis=axis)
    n_p = np.count_nonzero(p, axis=axis)
    n_t = np.count_nonzero(t, axis=axis)
    size = p.size if axis is None else np.prod([p.shape[a] for a in np.atleast_1d(axis)])
    fp, fn = n_p - tp, n_t - tp
    return tp, fp, fn, size - tp - fp - fn


# --------------------------------------------------------------------------------------------
# Skeletons: scikit-image's Guo & Hall (1989) thinning, all slices in one call
# --------------------------------------------------------------------------------------------

_TILE_WIDTH = 2048  # width (pixels) of the rows the slice crops are packed into


def _skeletonize_stack(masks: np.ndarray) -> np.ndarray:
    """2D skeletons of every slice of a ``(n, rows, cols)`` bool stack (:func:`skimage.morphology.thin`).

    Thinning only ever looks at a pixel's 8 neighbours and treats the outside as background, so
    each slice is cropped to its mask's bounding box and the crops are packed, one pixel of
    background apart, into one image: a single ``thin`` call then does every slice, its passes
    run over the masks' boxes instead of whole slices, and the result is pixel for pixel that of
    ``thin`` on each slice alone.
    """
    from skimage.morphology import thin

    out = np.zeros(masks.shape, dtype=bool)
    rows_hit, cols_hit = masks.any(axis=2), masks.any(axis=1)  # (n, rows), (n, cols): one pass each
    crops = []
    for k in np.flatnonzero(rows_hit.any(axis=1)):
        r, c = np.flatnonzero(rows_hit[k]), np.flatnonzero(cols_hit[k])
        crops.append((k, (slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1))))
    if not crops:
        return out
    # shelf packing, tallest first: rows of crops side by side, 1-pixel gaps everywhere
    crops.sort(key=lambda kb: kb[1][0].stop - kb[1][0].start, reverse=True)
    places, x, y, row_h, width = [], 1, 1, 0, 1
    for k, (rs, cs) in crops:
        h, w = rs.stop - rs.start, cs.stop - cs.start
        if x > 1 and x + w + 1 > _TILE_WIDTH:
            x, y, row_h = 1, y + row_h + 1, 0
        places.append((k, rs, cs, y, x))
        x, row_h, width = x + w + 1, max(row_h, h), max(width, x + w + 1)
    tiled = np.zeros((y + row_h + 1, width), dtype=bool)
    for k, rs, cs, y0, x0 in places:
        tiled[y0 : y0 + rs.stop - rs.start, x0 : x0 + cs.stop - cs.start] = masks[k, rs, cs]
    skeleton = thin(tiled)
    for k, rs, cs, y0, x0 in places:
        out[k, rs, cs] = skeleton[y0 : y0 + rs.stop - rs.start, x0 : x0 + cs.stop - cs.start]
    return out


# --------------------------------------------------------------------------------------------
# Surface distances
# --------------------------------------------------------------------------------------------


def _boundary(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, structure=structure, border_value=0)


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    """Tight bounding box of a non-empty mask."""
    box = []
    for ax in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))
        box.append(slice(hit[0], hit[-1] + 1))
    return tuple(box)


def _distance_metrics(b_p, b_t, s_p, s_t, spacing) -> tuple[float, float, float, float]:
    """(MSD, HSD, SHD, SMD) from boundaries ``b_*`` and skeletons ``s_*`` of two non-empty masks.

    Arrays may be any crop that contains all four point sets: distances only look at boundary
    voxels, so cropping to the union of the masks is exact.
    """
    to_t = ndi.distance_transform_edt(~b_t, sampling=spacing)
    to_p = ndi.distance_transform_edt(~b_p, sampling=spacing)
    surf = np.concatenate((to_t[b_p], to_p[b_t]))
    skel = np.concatenate((to_t[s_p], to_p[s_t]))
    return float(surf.mean()), float(surf.max()), float(skel.max()), float(np.median(skel))


def _stack_metrics(p: np.ndarray, t: np.ndarray, spacing: tuple[float, float]) -> dict[str, np.ndarray]:
    """All metrics for every slice of two ``(n, rows, cols)`` bool stacks."""
    tp, fp, fn, tn = _confusion(p, t, axis=(1, 2))
    out = _overlap_metrics(tp, fp, fn, tn)
    for name in _DISTANCE:
        out[name] = np.full(p.shape[0], np.nan)
    keep = np.flatnonzero((tp + fp > 0) & (tp + fn > 0))  # distances need both masks
    if keep.size == 0:
        return out
    union = p[keep] | t[keep]
    box = (slice(None),) + _bbox(union)[1:]  # crop in-plane to the union over the kept slices
    p, t, union = p[keep][box], t[keep][box], union[box]
    cross = ndi.generate_binary_structure(2, 1)[None]  # in-plane face connectivity, per slice
    b_p, b_t = _boundary(p, cross), _boundary(t, cross)
    s_p, s_t = _skeletonize_stack(p), _skeletonize_stack(t)
    for j, i in enumerate(keep):
        crop = _bbox(union[j])  # each slice's own union box: smaller distance transforms
        sl = (j,) + crop
        values = _distance_metrics(b_p[sl], b_t[sl], s_p[sl], s_t[sl], spacing)
        for name, value in zip(_DISTANCE, values):
            out[name][i] = value
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def dice(pred, truth) -> float:
    """Dice similarity coefficient of two binary masks of any (equal) shape.

    Parameters
    ----------
    pred, truth : array_like
        Binary masks (bool, or integers/floats holding only 0 and 1) of the same shape.

    Returns
    -------
    float
        ``2 |pred & truth| / (|pred| + |truth|)``; 1.0 when both masks are empty.

    Raises
    ------
    DimensionError
        A mask is a scalar or has no voxels.
    GridMismatchError
        The shapes differ.
    ImageContentError
        A mask holds values other than 0 and 1.
    """
    p, t = _validate_pair(pred, truth, None)
    tp = np.count_nonzero(p & t)
    total = np.count_nonzero(p) + np.count_nonzero(t)
    return 1.0 if total == 0 else 2.0 * tp / total


def labelled_slices(truth, *, axis: int = 2) -> np.ndarray:
    """Boolean index of the slices along ``axis`` where the manual mask has any voxel.

    Raters of the SCGM challenge data and SCT's test data label a subset of slices; GM predicted on
    an unlabelled slice is not an error, so scan-level scores are computed on labelled slices, as in
    the challenge. ``dice(pred[..., idx], truth[..., idx])`` with ``idx = labelled_slices(truth)``.
    """
    t = np.asarray(truth)
    axis = _validate_axis(axis, t.ndim)
    other = tuple(a for a in range(t.ndim) if a != axis)
    return np.asarray(t != 0).any(axis=other)


# --------------------------------------------------------------------------------------------
# Areas (the one place the toolkit turns voxel counts into mm²)
# --------------------------------------------------------------------------------------------


def pixel_area_mm2(affine, *, axis: int | None = None) -> float:
    """Area (mm²) of one in-plane voxel of a grid: ``|a × b|`` of the two in-plane affine columns.

    Measured in the world, so it is right on sheared and oblique grids and in any stored
    orientation (LPS, RAS, permuted axes): the product of the voxel sizes is not, when the two
    in-plane columns are not orthogonal.

    Parameters
    ----------
    affine : array_like, shape (4, 4)
        Voxel-to-world affine (mm).
    axis : int, optional
        The slice axis (the other two span the plane); default
        :func:`pedgm_kit.geometry.slice_axis` of ``affine`` (closest to superior-inferior).

    Returns
    -------
    float

    Raises
    ------
    ParameterError
        Not a finite 4x4 affine, a bad ``axis``, or a degenerate plane (area 0).

    Examples
    --------
    >>> pixel_area_mm2(np.diag([0.5, 0.5, 5.0, 1.0]))
    0.25
    """
    from .geometry import slice_axis

    try:
        aff = np.asarray(affine, dtype=float)
    except (TypeError, ValueError):
        aff = np.zeros(0)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ParameterError(f"affine must be a finite 4x4 matrix; got {np.shape(affine)} {affine!r}"[:200])
    axis = slice_axis(aff) if axis is None else _validate_axis(axis, 3)
    cols = [aff[:3, k] for k in range(3) if k != axis]
    area = float(np.linalg.norm(np.cross(cols[0], cols[1])))
    if not area > 0:
        raise ParameterError(f"affine has a degenerate plane across axis {axis} (in-plane voxel area 0)")
    return area


def area_per_slice_mm2(mask, affine, *, axis: int | None = None) -> np.ndarray:
    """Area (mm²) of a binary mask on every slice: voxels set times :func:`pixel_area_mm2`.

    Parameters
    ----------
    mask : array_like, 3D
        Binary mask (bool or 0/1); never modified.
    affine : array_like, shape (4, 4)
        The mask's voxel-to-world affine.
    axis : int, optional
        Slice axis; default from the affine (closest to superior-inferior).

    Returns
    -------
    numpy.ndarray of float, shape (n_slices,)

    Raises
    ------
    DimensionError, ImageContentError, ParameterError
        Not 3D, not binary, or a bad affine/axis.

    Examples
    --------
    >>> m = np.zeros((4, 4, 2), bool); m[:2, :2, 1] = True
    >>> area_per_slice_mm2(m, np.diag([0.5, 0.5, 5.0, 1.0])).tolist()
    [0.0, 1.0]
    """
    data = np.asarray(mask)
    _check_shape(data, "mask", 3)
    data = check_binary(data, name="mask")
    from .geometry import slice_axis

    axis = slice_axis(np.asarray(affine, float)) if axis is None else _validate_axis(axis, 3)
    area = pixel_area_mm2(affine, axis=axis)
    return np.count_nonzero(data, axis=tuple(k for k in range(3) if k != axis)) * area


def slice_metrics(pred, truth, *, spacing_mm: Sequence[float] = (1.0, 1.0)) -> dict[str, float]:
    """The ten SCGM-challenge metrics of one 2D slice.

    Parameters
    ----------
    pred : array_like, shape (rows, cols)
        Predicted binary mask (bool, or integers/floats holding only 0 and 1).
    truth : array_like, shape (rows, cols)
        Reference binary mask, same shape.
    spacing_mm : sequence of 2 floats, default (1.0, 1.0)
        Pixel size in mm along axes 0 and 1.

    Returns
    -------
    dict[str, float]
        One entry per name of :data:`METRICS`, in that order. Distances are in mm. Empty masks
        follow the rules of the module docstring.

    Raises
    ------
    DimensionError
        A mask is not 2D or has no pixels.
    GridMismatchError
        The shapes differ.
    ImageContentError
        A mask holds values other than 0 and 1.
    ValueError
        ``spacing_mm`` is not 2 positive finite numbers.
    """
    p, t = _validate_pair(pred, truth, 2)
    spacing = _validate_spacing(spacing_mm, 2)
    values = _stack_metrics(p[None], t[None], spacing)
    return {name: float(values[name][0]) for name in METRICS}


def volume_metrics(
    pred, truth, *, spacing_mm: Sequence[float] = (1.0, 1.0, 1.0), axis: int = 2
) -> dict[str, float]:
    """The ten SCGM-challenge metrics of a whole 3D scan.

    Overlap metrics count voxels over the whole scan. MSD and HSD use the 3D surfaces
    (6-connected erosion) and 3D distances with the three spacings. SHD and SMD measure 3D
    distances from the slice-wise 2D skeletons (slices along ``axis``) to the other mask's 3D
    surface.

    Parameters
    ----------
    pred : array_like, shape (n0, n1, n2)
        Predicted binary mask (bool, or integers/floats holding only 0 and 1).
    truth : array_like, shape (n0, n1, n2)
        Reference binary mask, same shape.
    spacing_mm : sequence of 3 floats, default (1.0, 1.0, 1.0)
        Voxel size in mm along axes 0, 1, 2.
    axis : int, default 2
        The slice axis (axial slices of the cord), used only for the skeleton of SHD/SMD.

    Returns
    -------
    dict[str, float]
        One entry per name of :data:`METRICS`, in that order. Distances are in mm. Empty masks
        (no voxel in the whole scan) follow the rules of the module docstring.

    Raises
    ------
    DimensionError
        A mask is not 3D or has no voxels.
    GridMismatchError
        The shapes differ.
    ImageContentError
        A mask holds values other than 0 and 1.
    ValueError
        ``spacing_mm`` is not 3 positive finite numbers, or ``axis`` is not in [-3, 2].
    """
    p, t = _validate_pair(pred, truth, 3)
    spacing = _validate_spacing(spacing_mm, 3)
    axis = _validate_axis(axis, 3)
    out = {name: float(v[0]) for name, v in _overlap_metrics(*_confusion(p, t)).items()}
    if p.any() and t.any():
        box = _bbox(p | t)
        p, t = p[box], t[box]
        face = ndi.generate_binary_structure(3, 1)
        b_p, b_t = _boundary(p, face), _boundary(t, face)
        s_p, s_t = (np.moveaxis(_skeletonize_stack(np.moveaxis(m, axis, 0)), 0, axis) for m in (p, t))
        out.update(zip(_DISTANCE, _distance_metrics(b_p, b_t, s_p, s_t, spacing)))
    else:
        out.update(dict.fromkeys(_DISTANCE, float("nan")))
    return {name: out[name] for name in METRICS}


def per_slice_metrics(
    pred, truth, *, spacing_mm: Sequence[float] = (1.0, 1.0, 1.0), axis: int = 2
) -> pd.DataFrame:
    """The ten SCGM-challenge metrics of every 2D slice of a 3D scan.

    Row ``k`` equals ``slice_metrics(pred.take(k, axis), truth.take(k, axis), spacing_mm=...)``
    with the in-plane spacing, but the work is batched: confusion counts, boundaries and skeletons
    of all slices are computed at once; only the distance transforms run slice by slice, on each
    slice's bounding box of ``pred | truth``.

    Parameters
    ----------
    pred : array_like, shape (n0, n1, n2)
        Predicted binary mask (bool, or integers/floats holding only 0 and 1).
    truth : array_like, shape (n0, n1, n2)
        Reference binary mask, same shape.
    spacing_mm : sequence of 3 floats, default (1.0, 1.0, 1.0)
        Voxel size in mm along axes 0, 1, 2 (the entry for ``axis`` is checked but unused).
    axis : int, default 2
        The slice axis.

    Returns
    -------
    pandas.DataFrame
        One row per slice: column ``slice`` (index along ``axis``), then one float column per
        name of :data:`METRICS`. Distances are in mm; empty slices follow the rules of the module
        docstring.

    Raises
    ------
    DimensionError
        A mask is not 3D or has no voxels.
    GridMismatchError
        The shapes differ.
    ImageContentError
        A mask holds values other than 0 and 1.
    ValueError
        ``spacing_mm`` is not 3 positive finite numbers, or ``axis`` is not in [-3, 2].
    """
    p, t = _validate_pair(pred, truth, 3)
    spacing = _validate_spacing(spacing_mm, 3)
    axis = _validate_axis(axis, 3)
    in_plane = tuple(s for k, s in enumerate(spacing) if k != axis)
    values = _stack_metrics(np.moveaxis(p, axis, 0), np.moveaxis(t, axis, 0), in_plane)
    frame = pd.DataFrame({"slice": np.arange(p.shape[axis])})
    for name in METRICS:
        frame[name] = values[name]
    return frame
