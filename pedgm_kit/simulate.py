"""Simulated acquisitions, for robustness studies on real scans: always named *simulated* in outputs.

- :func:`crop_fov` -- a small field of view: the scan (and its masks) cropped in-plane to a square
  around the cord, on the scan's own voxels (an exact sub-grid: the affine is shifted, nothing is
  resampled).

The simulated domain shifts of training (contrast inversion, smaller anatomy) live in
:mod:`pedgm_kit.shift`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from .exceptions import ParameterError
from .geometry import slice_axis

__all__ = ["crop_fov"]


def crop_fov(images: dict[str, nib.Nifti1Image], *, around: str, size_mm: float) -> dict[str, nib.Nifti1Image]:
    """Crop several images on one grid to a square in-plane field of view centred on a mask.

    Parameters
    ----------
    images : dict of str to nibabel.Nifti1Image
        Images on one grid (an image and its masks), by name.
    around : str
        Name of the mask in ``images`` whose centre of mass (over all slices) the square is centred on.
    size_mm : float
        Side of the square in mm (in-plane; all slices kept). Clipped to the image where it would
        reach outside.

    Returns
    -------
    dict of str to nibabel.Nifti1Image
        The crops, same names; their affines place every voxel where it was.
    """
    if around not in images:
        raise ParameterError(f"around={around!r} is not one of the images {list(images)}")
    if not size_mm > 0:
        raise ParameterError(f"size_mm must be positive, got {size_mm!r}")
    ref = images[around]
    axis = slice_axis(ref.affine)
    in_plane = [k for k in range(3) if k != axis]
    mask = np.asanyarray(ref.dataobj) > 0.5
    if not mask.any():
        raise ParameterError(f"mask {around!r} is empty: nothing to centre the crop on")
    centre = ndimage.center_of_mass(mask)
    voxel = nib.affines.voxel_sizes(ref.affine)
    box = [slice(None)] * 3
    for k in in_plane:
        half = size_mm / voxel[k] / 2
        lo = int(round(centre[k] - half))
        lo = min(max(lo, 0), max(ref.shape[k] - int(round(2 * half)), 0))
        box[k] = slice(lo, min(ref.shape[k], lo + int(round(2 * half))))
    out = {}
    for name, img in images.items():
        if img.shape[:3] != ref.shape[:3]:
            raise ParameterError(f"image {name!r} has shape {img.shape[:3]}, not the shape {ref.shape[:3]} of {around!r}")
        out[name] = img.slicer[tuple(box)]
    return out
