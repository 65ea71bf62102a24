"""Scans as the viewer holds them: files or in-memory images, checked, in the working orientation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import nibabel as nib
import numpy as np

from ..exceptions import ParameterError
from ..geometry import Canonical
from ..io import check_binary, check_same_grid, load_image, open_nifti, source_name
from ..metrics import pixel_area_mm2
from ._render import orientation_labels

__all__ = ["LoadedScan", "ViewerScan", "check_grids", "load_scan"]


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


def _name(spec, label: str) -> str:
    """How error messages name a file, or an in-memory image (``label``)."""
    return source_name(spec, f"<in-memory {label}>")


def grid_of(spec, what: str, label: str):
    """The spec's grid (shape, affine) without reading voxel data."""
    if isinstance(spec, (str, os.PathLike)):
        img = open_nifti(spec, what=what)
    elif isinstance(spec, nib.spatialimages.SpatialImage):
        img = spec
    else:
        raise ParameterError(f"{label}: expected a NIfTI path or nibabel image; got {type(spec).__name__}")
    return SimpleNamespace(shape=img.shape, affine=img.affine)


def check_grids(scan: ViewerScan) -> None:
    """Every mask of ``scan`` on its image's grid (headers only, no voxel data read)."""
    label = f"image of scan '{scan.scan_id}'"
    ref, ref_name = grid_of(scan.image, "image", label), _name(scan.image, label)
    others = [("manual GM mask", scan.manual), ("cord mask", scan.cord_mask)]
    others += [(f"'{name}' GM mask", spec) for name, spec in scan.masks.items()]
    for what, spec in others:
        if spec is not None:
            mask_label = f"{what} of scan '{scan.scan_id}'"
            check_same_grid(ref, grid_of(spec, what, mask_label), what=what, image_name=ref_name,
                            other_name=_name(spec, mask_label))


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
    pixel_area_mm2 : float or None
        Area of one axial pixel in mm² from the affine (:func:`pedgm_kit.metrics.pixel_area_mm2`).
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
    pixel_area_mm2: float | None = None


def _load_mask(spec, image: nib.Nifti1Image, image_name: str, what: str, label: str) -> np.ndarray:
    name = _name(spec, label)
    mask = load_image(spec, what=what, allow_constant=True, name=name)
    check_same_grid(image, mask, what=what, image_name=image_name, other_name=name)
    return Canonical(mask).to_working(check_binary(np.asanyarray(mask.dataobj), name=name, what=what)) > 0


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(i0, i1, j0, j1) half-open bounds of a LAS volume's mask over all slices, axes 0 and 1."""
    plane = mask.any(axis=2)
    if not plane.any():
        return None
    ii, jj = np.nonzero(plane.any(axis=1))[0], np.nonzero(plane.any(axis=0))[0]
    return int(ii[0]), int(ii[-1]) + 1, int(jj[0]), int(jj[-1]) + 1


def load_scan(scan: ViewerScan, *, cord_margin_mm: float) -> LoadedScan:
    """Load a scan and its masks into the working orientation, with the cord window and intensity range."""
    image_name = _name(scan.image, f"image of scan '{scan.scan_id}'")
    img = load_image(scan.image, what="image", name=image_name)
    canon = Canonical(img)

    def mask(spec, what: str, label: str):
        return None if spec is None else _load_mask(spec, img, image_name, what, f"{label} of scan '{scan.scan_id}'")

    manual = mask(scan.manual, "manual GM mask", "manual GM mask")
    masks = {name: mask(spec, f"'{name}' GM mask", f"'{name}' GM mask") for name, spec in scan.masks.items()}
    cord = mask(scan.cord_mask, "cord mask", "cord mask")
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
        pixel_area_mm2=pixel_area_mm2(canon.affine, axis=2),
    )


def _default_slice(loaded: LoadedScan) -> int:
    for vol in [loaded.manual, *loaded.masks.values()]:
        if vol is not None and vol.any():
            idx = np.nonzero(vol.any(axis=(0, 1)))[0]
            return int(idx[len(idx) // 2])
    return loaded.image.shape[2] // 2
