"""Geometry: the working orientation, the model grid, the window, plausibility, display.

One module holds every coordinate convention, so an image crosses it twice in a segmentation
(load -> geometry -> model -> geometry -> save) and preprocessing uses the very same code:

- :class:`Canonical` -- an image's data in the working orientation LAS+ and the way back;
- :class:`ModelGrid` -- that data resampled in-plane to the model's pixel size (0.25 mm), slice
  thickness kept, pixel edges aligned (same field of view), and the way back to the input grid;
- :class:`Window` -- the square window (200x200) cut around a centre, padded where it leaves the
  image, and pasted back;
- :func:`check_geometry` -- voxel sizes, field of view and obliquity that can be a spinal cord scan;
- :func:`slice_axis` and :func:`display_plane` -- which stored axis is the slice axis, and how an
  axial slice is shown (radiological: anterior up, the subject's left on the right).

Nothing here reads files or knows about the network.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel import orientations
from scipy import ndimage, sparse

from .exceptions import DimensionError, ImageContentError

__all__ = [
    "Canonical",
    "GeometryWarning",
    "LIMITS",
    "ModelGrid",
    "Window",
    "centres_from_mask",
    "check_geometry",
    "display_pixel_mm",
    "display_plane",
    "obliquity_deg",
    "off_axial_deg",
    "resample_in_plane",
    "slice_axis",
]


class GeometryWarning(UserWarning):
    """An image's geometry is unusual but may be right (e.g. an oblique acquisition)."""


#: Plausibility limits of :func:`check_geometry` (mm and degrees).
LIMITS = {
    "in_plane_mm": (0.05, 5.0),  # in-plane voxel size
    "slice_mm": (0.05, 50.0),  # slice thickness
    "fov_mm": (2.0, 600.0),  # in-plane field of view, each axis
    "oblique_warn_deg": 20.0,  # a voxel axis this far off its anatomical axis: warning
    "oblique_error_deg": 40.0,  # this far: which axis is "axial" is ambiguous, error
    "off_axial_error_deg": 45.0,  # thick slices this far off axial: the image is not an axial acquisition
    "thick_ratio": 1.5,  # a voxel axis this much longer than the others is the acquisition's slice axis
}


class Canonical:
    """An image's data in the toolkit's working orientation (LAS+), and the way back.

    LAS+ is the stored orientation of SCT's training and test data (and of most scanner exports), so
    for such images the working grid is the stored grid and nothing is flipped; any other orientation
    (e.g. LPS, or sagittal-first axis orders) is permuted/flipped to it, and back on output.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        A 3D image.

    Attributes
    ----------
    data : numpy.ndarray
        float32 data with axes (L, A, S); a copy, the input is not modified.
    affine : numpy.ndarray
        The affine of ``data``.
    spacing_mm : numpy.ndarray
        Voxel sizes of ``data`` in mm, from the affine.
    axcodes : tuple of str
        The input's own axis codes, e.g. ``("L", "P", "S")``.
    """

    AXCODES = ("L", "A", "S")

    def __init__(self, img: nib.Nifti1Image):
        self.shape = img.shape[:3]
        own = orientations.io_orientation(img.affine)
        work = orientations.axcodes2ornt(self.AXCODES)
        self._forward = orientations.ornt_transform(own, work)
        self._backward = orientations.ornt_transform(work, own)
        data = np.asanyarray(img.dataobj, dtype=np.float32)
        self.data = self.to_working(data)
        self.affine = img.affine @ orientations.inv_ornt_aff(self._forward, self.shape)
        self.spacing_mm = nib.affines.voxel_sizes(self.affine)
        self.axcodes = orientations.ornt2axcodes(own)

    def to_working(self, data: np.ndarray) -> np.ndarray:
        """Map an array on the input's voxel grid to the working grid (a float32 copy)."""
        return np.array(orientations.apply_orientation(np.asarray(data), self._forward), dtype=np.float32, order="C")

    def working_index(self, k: int, *, axis: int) -> int:
        """Index on the working grid of the stored slice ``k`` along stored ``axis``."""
        target, flip = self._forward[int(axis)]
        n = self.shape[int(axis)]
        return int(n - 1 - k) if flip < 0 else int(k)

    def to_original(self, data: np.ndarray) -> np.ndarray:
        """Map an array on the working grid back to the input's voxel order."""
        return np.ascontiguousarray(orientations.apply_orientation(data, self._backward))


class ModelGrid:
    """An image on the model's grid: working orientation (LAS), in-plane spacing resampled.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        A validated 3D image (see :func:`pedgm_kit.io.load_image`).
    spacing_mm : float, default 0.25
        In-plane pixel size of the model grid; slice thickness is kept.

    Attributes
    ----------
    canonical : Canonical
        The image in the working orientation.
    volume : numpy.ndarray
        float32 data on the model grid, shape ``(*shape_2d, n_slices)``.
    affine : numpy.ndarray
        Affine of ``volume`` (pixel edges aligned with the input's: same field of view).
    """

    def __init__(self, img: nib.Nifti1Image, *, spacing_mm: float = 0.25):
        self.canonical = Canonical(img)
        self.spacing_mm = float(spacing_mm)
        self.in_plane = self.canonical.data.shape[:2]
        self.shape_2d = tuple(
            max(1, int(round(n * s / spacing_mm))) for n, s in zip(self.in_plane, self.canonical.spacing_mm[:2])
        )
        self.volume = self.resample(self.canonical.data)
        step = np.asarray(self.in_plane, float) / np.asarray(self.shape_2d, float)
        scale = np.eye(4)
        scale[:2, :2] = np.diag(step)
        scale[:2, 3] = step / 2 - 0.5
        self.affine = self.canonical.affine @ scale

    def resample(self, data: np.ndarray) -> np.ndarray:
        """Resample an array on the working (canonical) grid onto the model grid (linear)."""
        return resample_in_plane(data, self.shape_2d)

    def mask(self, data: np.ndarray) -> np.ndarray:
        """A mask on the input's stored grid, on the model grid (linear, then > 0.5)."""
        return self.resample(self.canonical.to_working(data)) > 0.5

    def to_input(self, data: np.ndarray) -> np.ndarray:
        """Resample an array on the model grid back to the input's grid and voxel order (linear)."""
        return self.canonical.to_original(resample_in_plane(data, self.in_plane))

    def to_model_pixels(self, centres_input_grid) -> np.ndarray:
        """Centres in pixel-edge coordinates of the canonical grid, on the model grid."""
        scale = np.asarray(self.shape_2d, float) / np.asarray(self.in_plane, float)
        return np.asarray(centres_input_grid, float) * scale

    def window_affine(self, top_left) -> np.ndarray:
        """Affine of a window whose first pixel is model-grid pixel ``top_left`` (row, col)."""
        shift = np.eye(4)
        shift[:2, 3] = top_left
        return self.affine @ shift


@dataclass(frozen=True)
class Window:
    """A ``size`` x ``size`` window on the first two axes, placed by its centre.

    Centres are in pixel-edge coordinates (pixel ``i`` spans ``[i, i + 1)``).
    """

    size: int

    def top_left(self, centre) -> np.ndarray:
        """First pixel (row, col) of the window centred at ``centre``."""
        return np.rint(np.asarray(centre, dtype=float) - self.size / 2).astype(int)

    def extract(self, array: np.ndarray, centre, *, mode: str = "symmetric", constant: float = 0.0) -> np.ndarray:
        """The window (first two axes) of ``array`` centred at ``centre``.

        Parts outside the array are padded with ``mode`` (``numpy.pad`` modes; ``"constant"``
        uses ``constant``); trailing axes (slices) are kept whole.
        """
        top, left = self.top_left(centre)
        rows = (max(top, 0), min(top + self.size, array.shape[0]))
        cols = (max(left, 0), min(left + self.size, array.shape[1]))
        crop = array[rows[0] : rows[1], cols[0] : cols[1]]
        pad = ((rows[0] - top, top + self.size - rows[1]), (cols[0] - left, left + self.size - cols[1]))
        if crop.size == 0:
            return np.full((self.size, self.size) + array.shape[2:], constant, dtype=array.dtype)
        if any(p for pair in pad for p in pair):
            widths = pad + ((0, 0),) * (array.ndim - 2)
            if mode == "constant":
                crop = np.pad(crop, widths, mode="constant", constant_values=constant)
            else:
                crop = np.pad(crop, widths, mode=mode)
        return crop

    def paste(self, plane: np.ndarray, window: np.ndarray, centre) -> None:
        """Write the part of ``window`` that lies inside ``plane`` (in place)."""
        top, left = self.top_left(centre)
        rows = (max(top, 0), min(top + self.size, plane.shape[0]))
        cols = (max(left, 0), min(left + self.size, plane.shape[1]))
        if rows[1] > rows[0] and cols[1] > cols[0]:
            plane[rows[0] : rows[1], cols[0] : cols[1]] = window[
                rows[0] - top : rows[1] - top, cols[0] - left : cols[1] - left
            ]


def resample_in_plane(volume: np.ndarray, shape_2d) -> np.ndarray:
    """Linear resampling of axes 0 and 1 to ``shape_2d``; axis 2 untouched.

    Pixel edges are aligned (the field of view is kept): output pixel ``o`` samples input coordinate
    ``(o + 0.5) * n_in / n_out - 0.5``, clamped to the image (``scipy.ndimage.zoom(..., order=1,
    grid_mode=True, mode="nearest")``). Done as two sparse interpolation matrices applied along
    each axis, which is several times faster than ``ndimage.zoom`` on large fields of view.
    """
    volume = np.asarray(volume, dtype=np.float32)
    n0, n1, nz = volume.shape
    out = volume
    if shape_2d[0] != n0:
        out = (_interp_matrix(n0, shape_2d[0]) @ out.reshape(n0, -1)).reshape(shape_2d[0], n1, nz)
    if shape_2d[1] != n1:
        moved = np.moveaxis(out, 1, 0).reshape(n1, -1)
        out = np.moveaxis((_interp_matrix(n1, shape_2d[1]) @ moved).reshape(shape_2d[1], out.shape[0], nz), 0, 1)
    return np.ascontiguousarray(out, dtype=np.float32) if out is not volume else volume.copy()


@functools.lru_cache(maxsize=32)
def _interp_matrix(n_in: int, n_out: int) -> sparse.csr_matrix:
    """(n_out, n_in) sparse matrix of linear interpolation weights, pixel edges aligned."""
    x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (x - lo).astype(np.float32)
    rows = np.repeat(np.arange(n_out), 2)
    cols = np.stack([lo, hi], axis=1).ravel()
    vals = np.stack([1 - w, w], axis=1).ravel()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in), dtype=np.float32)


def centres_from_mask(mask: np.ndarray, *, name: str = "mask") -> np.ndarray:
    """Per-slice centre (row, col) of a 3D mask; slices without mask take the nearest slice's centre.

    Centres are in pixel-edge coordinates (pixel ``i`` spans ``[i, i + 1)``), as windows use them.
    An empty mask gives the image centre, with a :class:`GeometryWarning` naming ``name`` (the
    mask's file).
    """
    n_slices = mask.shape[2]
    centres = np.full((n_slices, 2), np.nan)
    for z in range(n_slices):
        if mask[..., z].any():
            centres[z] = np.array(ndimage.center_of_mass(mask[..., z])) + 0.5
    have = np.flatnonzero(~np.isnan(centres[:, 0]))
    if have.size == 0:
        warnings.warn(f"{name}: the mask is empty; windows are centred on the image centre", GeometryWarning,
                      stacklevel=2)
        return np.tile(np.asarray(mask.shape[:2], float) / 2, (n_slices, 1))
    for z in np.flatnonzero(np.isnan(centres[:, 0])):
        centres[z] = centres[have[np.argmin(np.abs(have - z))]]
    return centres


# --------------------------------------------------------------------------------------------- checks


def obliquity_deg(affine) -> float:
    """Largest angle (degrees) between a voxel axis and the anatomical axis it is taken as.

    0 for an image stored along the scanner axes (any permutation or flip); 45 when an axis lies
    exactly between two anatomical axes, so which one it stands for is a coin toss.
    """
    cols = np.asarray(affine, float)[:3, :3]
    unit = cols / np.linalg.norm(cols, axis=0, keepdims=True)
    ornt = orientations.io_orientation(affine)
    cosines = [abs(unit[int(ornt[j, 0]), j]) for j in range(3) if not np.isnan(ornt[j, 0])]
    if len(cosines) < 3:
        return 90.0
    return float(np.degrees(np.arccos(np.clip(min(cosines), 0.0, 1.0))))


def off_axial_deg(affine) -> float | None:
    """Angle (degrees) between the acquisition's slice axis and superior-inferior, or None.

    The acquisition's slice axis is the voxel axis clearly longer than the others (thick slices,
    :data:`LIMITS` ``thick_ratio``); an image with near-isotropic voxels has none.
    """
    cols = np.asarray(affine, float)[:3, :3]
    sizes = np.linalg.norm(cols, axis=0)
    j = int(np.argmax(sizes))
    others = np.delete(sizes, j)
    if sizes[j] < LIMITS["thick_ratio"] * others.max():
        return None
    return float(np.degrees(np.arccos(np.clip(abs(cols[2, j]) / sizes[j], 0.0, 1.0))))


def check_geometry(img: nib.Nifti1Image, *, name: str, model_spacing_mm: float = 0.25) -> dict:
    """Check that an image's geometry can be a spinal cord scan the network can segment.

    Voxel sizes and field of view come from the affine, in the working orientation (so the limits
    hold for any stored axis order). Errors for what cannot be right; a :class:`GeometryWarning`
    naming the angle for an oblique image.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        A loaded 3D image (its header was checked by :func:`pedgm_kit.io.load_image`).
    name : str
        The file, for messages.
    model_spacing_mm : float, default 0.25
        In-plane pixel size the image will be resampled to.

    Returns
    -------
    dict
        ``spacing_mm`` (L, A, S), ``fov_mm`` (L, A), ``obliquity_deg``, ``model_shape`` (pixels).

    Raises
    ------
    ImageContentError
        A voxel size or field of view outside :data:`LIMITS`, or an obliquity of
        ``LIMITS["oblique_error_deg"]`` or more.
    DimensionError
        Fewer than 2 voxels in-plane.
    """
    affine = np.asarray(img.affine, float)
    angle = obliquity_deg(affine)
    off_axial = off_axial_deg(affine)
    if off_axial is not None and off_axial >= LIMITS["off_axial_error_deg"]:
        raise ImageContentError(
            f"{name}: its slices are {off_axial:.0f} degrees off axial (limit {LIMITS['off_axial_error_deg']:g}): "
            "segmented as they are, they would be resliced along another axis; reslice the image to axial first"
        )
    if angle >= LIMITS["oblique_error_deg"]:
        raise ImageContentError(
            f"{name}: voxel axes are {angle:.0f} degrees off the anatomical axes; which axis is axial is "
            f"ambiguous (limit {LIMITS['oblique_error_deg']:g}); reslice it to axial first"
        )
    can_ornt = orientations.ornt_transform(orientations.io_orientation(affine), orientations.axcodes2ornt(Canonical.AXCODES))
    shape = np.asarray(img.shape[:3])
    order = np.argsort(can_ornt[:, 0])  # input axis that becomes working axis 0, 1, 2
    work_shape = shape[order]
    spacing = nib.affines.voxel_sizes(affine)[order]
    lo, hi = LIMITS["in_plane_mm"]
    for axis, letter in ((0, "L-R"), (1, "A-P")):
        if not lo <= spacing[axis] <= hi:
            raise ImageContentError(
                f"{name}: in-plane voxel size {spacing[axis]:.4g} mm along {letter} is outside {lo:g}-{hi:g} mm; "
                "not a spinal cord scan, or a broken header"
            )
    lo, hi = LIMITS["slice_mm"]
    if not lo <= spacing[2] <= hi:
        raise ImageContentError(f"{name}: slice thickness {spacing[2]:.4g} mm is outside {lo:g}-{hi:g} mm")
    if min(work_shape[:2]) < 2:
        raise DimensionError(f"{name}: only {min(work_shape[:2])} voxel(s) in-plane (shape {tuple(shape)}); not an axial image")
    fov = work_shape[:2] * spacing[:2]
    lo, hi = LIMITS["fov_mm"]
    if np.any(fov < lo) or np.any(fov > hi):
        raise ImageContentError(
            f"{name}: in-plane field of view {fov[0]:.4g} x {fov[1]:.4g} mm is outside {lo:g}-{hi:g} mm per axis"
        )
    tilt = max(angle, off_axial or 0.0)
    if tilt >= LIMITS["oblique_warn_deg"]:
        warnings.warn(
            f"{name}: the image is oblique: its axes are up to {tilt:.0f} degrees off the anatomical axes; "
            "slices are segmented as stored (axial in voxel space)",
            GeometryWarning,
            stacklevel=1,  # attributed here: one file read twice (e.g. by two entry points) warns once
        )
    model_shape = tuple(int(round(n * s / model_spacing_mm)) for n, s in zip(work_shape[:2], spacing[:2]))
    return {"spacing_mm": spacing.tolist(), "fov_mm": fov.tolist(), "obliquity_deg": angle, "model_shape": model_shape}


# --------------------------------------------------------------------------------------------- axes and display


def slice_axis(affine) -> int:
    """Stored array axis closest to the superior-inferior direction of ``affine`` (2 for axial scans)."""
    ornt = orientations.io_orientation(np.asarray(affine, float))
    hits = np.flatnonzero(ornt[:, 0] == 2)
    return int(hits[0]) if hits.size else 2


def display_plane(working: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a working-grid (LAS) volume as it is shown: ``np.rot90(data[:, :, k])``.

    Anterior up, the subject's left on the picture's right (radiological, as fsleyes shows it).
    Rows of the picture run against working axis 1, columns along working axis 0.
    """
    return np.rot90(np.asarray(working)[:, :, k])


def display_pixel_mm(spacing_mm) -> tuple[float, float]:
    """(row, column) pixel size (mm) of :func:`display_plane` pictures of a grid with ``spacing_mm``."""
    return float(spacing_mm[1]), float(spacing_mm[0])
