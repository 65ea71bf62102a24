"""What the viewer reports about a slice: Dice of every mask against the manual one, GM areas."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import DimensionError, GridMismatchError, ParameterError
from ..metrics import dice
from ._render import _as_mask

__all__ = ["SliceReadout", "slice_readout"]


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
    pixel_area_mm2: float | None = None,
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
    pixel_area_mm2 : float, optional
        Area of one pixel in mm², from the affine (:func:`pedgm_kit.metrics.pixel_area_mm2`: right
        on sheared grids too); default ``pixel_mm[0] * pixel_mm[1]``.

    Returns
    -------
    SliceReadout
        ``area_mm2[name] = count_nonzero(mask) * pixel_area_mm2``.

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
    pixel_area = float(px[0] * px[1]) if pixel_area_mm2 is None else float(pixel_area_mm2)
    if not (math.isfinite(pixel_area) and pixel_area > 0):
        raise ParameterError(f"pixel_area_mm2 must be a positive finite number of mm²; got {pixel_area_mm2!r}")
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
