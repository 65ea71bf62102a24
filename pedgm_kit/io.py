"""NIfTI input/output at the toolkit's boundary.

Images are validated once, here: a missing file, a file that is not NIfTI, the wrong number of
dimensions, NaN/infinite voxels or a constant image raise a :class:`~pedgm_kit.exceptions.PedgmError`
subclass whose one-line message names the file and the problem. Orientation is handled here too:
processing happens in one working orientation (LAS+, see :class:`Canonical`), and outputs are written back on the
input's exact grid (shape, affine, qform/sform codes). Outputs are written to a temporary file in the
destination folder and renamed into place, so a failed run never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from ._utils import atomic_path
from .exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    InputFileError,
    OutputExistsError,
)

__all__ = [
    "Canonical",
    "check_output_path",
    "check_same_grid",
    "default_output_path",
    "load_image",
    "open_nifti",
    "save_like",
    "spacing_mm",
    "to_image_like",
]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _describe(img_or_path) -> str:
    if isinstance(img_or_path, (str, os.PathLike)):
        return str(img_or_path)
    name = getattr(img_or_path, "get_filename", lambda: None)()
    return name or "<in-memory image>"


def load_image(
    image: str | os.PathLike | nib.Nifti1Image,
    *,
    what: str = "image",
    allow_constant: bool = False,
) -> nib.Nifti1Image:
    """Load and validate a 3D NIfTI image.

    Parameters
    ----------
    image : path-like or nibabel.Nifti1Image
        The image. A 4D image whose 4th axis has length 1 is accepted as 3D.
    what : str, default "image"
        Word used in error messages ("image", "cord mask", ...).
    allow_constant : bool, default False
        Accept an image whose voxels all have one value (masks may be empty).

    Returns
    -------
    nibabel.Nifti1Image
        A 3D float32 image on the same grid (affine and header kept).

    Raises
    ------
    InputFileError
        Missing file, or a file nibabel cannot read as NIfTI.
    DimensionError
        Not 3D.
    ImageContentError
        NaN or infinite voxels, or a constant image (unless ``allow_constant``).
    """
    name = _describe(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        img = open_nifti(path, what=what)
        with _readable(path, what):
            data = np.asanyarray(img.dataobj)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise InputFileError(f"'{path}' is a {type(img).__name__}, not a NIfTI {what}")
    else:
        img = image
        data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DimensionError(f"{name}: expected a 3D {what}, got {data.ndim}D data of shape {data.shape}")
    data = np.asarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        n_bad = int(np.count_nonzero(~np.isfinite(data)))
        raise ImageContentError(f"{name}: {what} has {n_bad} NaN or infinite voxels")
    if not allow_constant and data.size and data.min() == data.max():
        raise ImageContentError(f"{name}: {what} is constant (every voxel is {data.flat[0]:g}); nothing to segment")
    header = img.header.copy()
    header.set_data_shape(data.shape)
    header.set_data_dtype(np.float32)
    out = nib.Nifti1Image(data, img.affine, header)
    _copy_codes(img.header, out)
    out._pedgm_source = name  # the file it came from, for later error messages
    return out


def open_nifti(path: str | os.PathLike, *, what: str = "image"):
    """``nibabel.load`` a path (header read, voxel data left on disk) with one-line errors.

    Raises
    ------
    InputFileError
        Missing file, or a file nibabel cannot read ("No such file ..." / "Cannot read ... as a NIfTI").
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"No such file or no access: '{path}' ({what})")
    with _readable(path, what):
        return nib.load(path)


@contextlib.contextmanager
def _readable(path: Path, what: str):
    """Turn any failure to read ``path`` into a one-line :class:`InputFileError`."""
    try:
        yield
    except Exception as err:  # nibabel, gzip, zlib and OS errors all mean "not a readable NIfTI"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputFileError(f"Cannot read '{path}' as a NIfTI {what}: {reason}") from None


def spacing_mm(img: nib.Nifti1Image) -> np.ndarray:
    """Voxel sizes in mm, from the affine (never from a header field by index)."""
    return nib.affines.voxel_sizes(img.affine)


def check_same_grid(
    image: nib.Nifti1Image, other: nib.Nifti1Image, *, what: str = "mask", affine_atol: float = 1e-3
) -> None:
    """Raise :class:`GridMismatchError` unless ``other`` has the shape and affine of ``image``.

    ``affine_atol`` (mm, absolute) tolerates the float rounding of label tools: the real sub-9604 GM
    mask differs from its image's affine by 2.2e-4 (a 0.02 degree rotation, far below a voxel).
    """
    a, b = getattr(image, "_pedgm_source", "image"), getattr(other, "_pedgm_source", what)
    if image.shape[:3] != other.shape[:3]:
        raise GridMismatchError(f"{b}: {what} shape {other.shape[:3]} differs from image {a} shape {image.shape[:3]}")
    if not np.allclose(image.affine, other.affine, rtol=0, atol=affine_atol):
        raise GridMismatchError(
            f"{b}: {what} affine differs from image {a} affine "
            f"(max difference {np.abs(image.affine - other.affine).max():.3g})"
        )


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
        self.data = np.array(orientations.apply_orientation(data, self._forward), dtype=np.float32, order="C")
        self.affine = img.affine @ orientations.inv_ornt_aff(self._forward, self.shape)
        self.spacing_mm = nib.affines.voxel_sizes(self.affine)
        self.axcodes = orientations.ornt2axcodes(own)

    def to_original(self, data: np.ndarray) -> np.ndarray:
        """Map an array on the working grid back to the input's voxel order."""
        return np.ascontiguousarray(orientations.apply_orientation(data, self._backward))


def default_output_path(image_path: str | os.PathLike, suffix: str = "_gmseg") -> Path:
    """``<input>_gmseg.nii.gz`` next to the input (``.nii`` inputs keep ``.nii``)."""
    path = Path(image_path)
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + suffix + ext)
    return path.with_name(name + suffix + ".nii.gz")


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Validate an output path before any work is done.

    Raises
    ------
    InputFileError
        The folder does not exist, or the name does not end in .nii/.nii.gz.
    OutputExistsError
        The file exists and ``overwrite`` is False.
    """
    path = Path(path)
    if not path.name.endswith(_NIFTI_SUFFIXES):
        raise InputFileError(f"Output '{path}' must end in .nii or .nii.gz")
    if not path.parent.is_dir():
        raise InputFileError(f"Output folder does not exist: '{path.parent}' (for output '{path}')")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"Output '{path}' exists; pass --overwrite (overwrite=True) to replace it")
    return path


def save_like(
    data: np.ndarray,
    like: nib.Nifti1Image,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dtype=np.uint8,
) -> Path:
    """Save ``data`` on the grid of ``like`` (same affine, qform/sform and codes), atomically.

    The file is written to a temporary name in the destination folder and renamed into place.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = check_output_path(path, overwrite=overwrite)
    if tuple(data.shape) != tuple(like.shape[:3]):
        raise GridMismatchError(f"{path}: data shape {data.shape} differs from reference shape {like.shape[:3]}")
    out = to_image_like(data, like, dtype=dtype)
    with atomic_path(path) as tmp:
        nib.save(out, tmp)
    return path


def to_image_like(data: np.ndarray, like: nib.Nifti1Image, *, dtype=np.uint8) -> nib.Nifti1Image:
    """A new in-memory image holding ``data`` on the grid of ``like`` (affine, qform/sform codes)."""
    header = like.header.copy()
    header.set_data_shape(data.shape)
    header.set_data_dtype(dtype)
    header.set_slope_inter(1.0, 0.0)
    out = nib.Nifti1Image(np.asarray(data, dtype=dtype), like.affine, header)
    _copy_codes(like.header, out)
    return out


def _copy_codes(src_header, img: nib.Nifti1Image) -> None:
    qform, qcode = src_header.get_qform(coded=True)
    sform, scode = src_header.get_sform(coded=True)
    img.set_qform(qform if qform is not None else img.affine, code=int(qcode))
    img.set_sform(sform if sform is not None else img.affine, code=int(scode))
