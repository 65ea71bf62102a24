"""Cord scale: how a small (e.g. pediatric) cord is brought to the size the network was trained on.

With ``cord_scale`` (``pedgm segment --cord-scale``, notebook 01's parameter) a scan is resampled so
that its cord has the adult size before segmentation and mapped back afterwards: a number is the
cord's linear size relative to an adult cord (0.7 = 30% smaller), ``"auto"`` estimates it from the GM
area per slice of a first segmentation (:func:`estimate_cord_scale`).

:data:`REFERENCE_GM_AREA_MM2` is the median GM area per slice of the labelled sample scans' manual masks
(8 adult scans of the SCGM challenge and SCT's t2s: per-scan medians 12.7-16.3 mm²). It was measured
on the same sample scans on which the cord-scale figures of the README are then measured
(``benchmarks/cord_scale.py``), so those figures are in-sample: on an unrelated cohort the reference
may sit a little off. Published adult GM areas at the cervical enlargement (e.g. the SCGM challenge
sites) are of the same order (about 13-20 mm² per slice).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ..exceptions import ParameterError

__all__ = ["REFERENCE_GM_AREA_MM2", "SCALE_RANGE", "SCALE_TOLERANCE", "check_cord_scale", "estimate_cord_scale",
           "median_gm_area_mm2"]

#: Median GM area per slice (mm²) of the labelled sample scans' manual masks (8 adult scans of the
#: SCGM challenge and SCT's t2s: per-scan medians 12.7-16.3 mm²): the size the weights expect.
REFERENCE_GM_AREA_MM2 = 15.25
#: Cord scales closer to 1 than this are left alone (adults vary by about +-10% in linear size).
SCALE_TOLERANCE = 0.12
SCALE_RANGE = (0.4, 1.6)


def check_cord_scale(value) -> float | str | None:
    """``None``/``""``/``1`` (off), ``"auto"``, or a linear cord size relative to an adult cord."""
    if value in (None, "", "none"):
        return None
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not SCALE_RANGE[0] <= value <= SCALE_RANGE[1]:
        raise ParameterError(f"cord_scale must be 'auto', '' or a number in {SCALE_RANGE[0]}-{SCALE_RANGE[1]}; got {value!r}")
    return float(value)


def median_gm_area_mm2(mask: nib.Nifti1Image) -> float | None:
    """Median GM area (mm²) over the slices of a mask that hold GM (along its slice axis), or None."""
    from ..metrics import area_per_slice_mm2

    area = area_per_slice_mm2(np.asanyarray(mask.dataobj) > 0.5, mask.affine)
    area = area[area > 0]
    return float(np.median(area)) if area.size else None


def estimate_cord_scale(gm_area_mm2: float) -> float:
    """Linear size of a cord relative to the adult reference, from its median GM area per slice."""
    return float(np.clip(np.sqrt(gm_area_mm2 / REFERENCE_GM_AREA_MM2), *SCALE_RANGE))
