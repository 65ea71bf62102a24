"""NIfTI input/output and the one validation layer at the toolkit's boundary.

Everything that opens, checks or writes a file goes through here, so every module gets the same
checks and the same one-line messages (file first, then what is wrong):

- :func:`open_nifti` -- the one place a path is handed to nibabel (header only);
- :func:`load_image` -- a validated 3D float32 image: readable NIfTI, 3D (a 4D image with one volume
  counts), real scalar voxels (no RGB, no complex), finite, not constant, a finite invertible affine
  and positive voxel sizes in the header;
- :func:`check_same_grid` -- two images on one voxel grid (shape, affine within
  :data:`AFFINE_ATOL_MM`); :func:`check_binary` -- a mask holding only 0 and 1;
- :func:`check_output_path`, :func:`save_like`, :func:`write_text`, :func:`write_json` -- outputs:
  validated before any work, written to a temporary file in the destination folder and renamed into
  place, so a failed run never leaves a partial or overwritten file.

Error messages name the file an image came from. Images built in memory have no file, so the
functions that report on images take the name explicitly (``name=``); :func:`source_name` gives it
for a path or a nibabel image.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ._utils import atomic_path
from .exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    InputFileError,
    OutputExistsError,
    ParameterError,
    PedgmError,
)
from .geometry import Canonical, check_geometry

__all__ = [
    "AFFINE_ATOL_MM",
    "Canonical",
    "check_binary",
    "check_choice",
    "check_output_folder",
    "check_output_path",
    "check_same_grid",
    "default_output_path",
    "errors_about",
    "load_image",
    "open_nifti",
    "quiet_nibabel",
    "read_data",
    "save_like",
    "source_name",
    "spacing_mm",
    "to_image_like",
    "write_json",
    "write_text",
]

AFFINE_ATOL_MM = 1e-3
"""Largest element-wise difference (mm) between two affines that still counts as one grid.

1e-4 would be too strict for real data: the GM mask of gm-challenge ``sub-9604`` carries an sform
whose rotation terms differ from the image's quaternion-derived qform by 2.2e-4 (a 0.02 degree
rotation, under 0.1 voxel across the whole field of view)."""

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def source_name(image, default: str = "<in-memory image>") -> str:
    """How messages name an image: its path, the file a nibabel image was read from, or ``default``."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    name = getattr(image, "get_filename", lambda: None)()
    return name or default


def open_nifti(path: str | os.PathLike, *, what: str = "image"):
    """``nibabel.load`` a path (header read, voxel data left on disk) with one-line errors.

    Raises
    ------
    InputFileError
        Missing file, a file nibabel cannot read, or an image format other than NIfTI.
    """
    path = Path(path)
    if not path.is_file():
        state = "a dangling link" if path.is_symlink() and not path.exists() else (
            "a folder" if path.is_dir() else "")
        if state:
            raise InputFileError(f"'{path}' is {state}, not a NIfTI {what} file")
        raise InputFileError(f"No such file or no access: '{path}' ({what})")
    with _readable(path, what), quiet_nibabel():  # header repairs are nibabel's log lines: checked below
        img = nib.load(path)
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputFileError(f"'{path}' is a {type(img).__name__}, not a NIfTI {what}")
    _check_raw_pixdim(path, img, what)
    shape = tuple(int(n) for n in img.shape)
    if 0 in shape:
        raise DimensionError(f"{path}: {what} has a zero-length dimension (shape {shape} in its header); no voxels to read")
    return img


@contextlib.contextmanager
def quiet_nibabel():
    """Keep nibabel's own log lines and numpy's cast warnings off stderr while nibabel works.

    nibabel logs the header repairs it makes ("pixdim[1,2,3] should be non-zero ...", "sizeof_hdr
    should be 348 ...") through a logger that, once its handler is removed, still reaches stderr
    through Python's last-resort handler; the checks here look at those fields themselves and say
    what is wrong in one line. Overflow and invalid-value warnings of scaling (``scl_slope``) are
    silenced too: the voxels are checked for finiteness afterwards, naming the file.
    """
    logger = nib.imageglobals.logger
    disabled, logger.disabled = logger.disabled, True
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            yield
    finally:
        logger.disabled = disabled


def _check_raw_pixdim(path: Path, img, what: str) -> None:
    """Voxel sizes as stored, before nibabel's repair (it reads a pixdim of 0 as 1 mm).

    They matter when the affine comes from the header's pixdim (no sform): then a zero, negative or
    NaN size would silently become 1 mm.
    """
    if int(img.header["sform_code"]) > 0:
        return
    with _readable(path, what), quiet_nibabel(), nib.openers.ImageOpener(path) as fobj:
        raw = type(img.header).from_fileobj(fobj, check=False)
    ndim = min(3, int(raw["dim"][0]))
    sizes = np.asarray(raw["pixdim"][1 : 1 + ndim], dtype=float)
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        shown = ", ".join(f"{v:g}" for v in sizes)
        raise ImageContentError(
            f"{path}: {what} has voxel sizes ({shown}) mm in its header and no sform; each must be a positive number"
        )


def read_data(img, *, name: str, what: str = "image") -> np.ndarray:
    """The voxel array of an opened image, with a read failure (truncated gzip ...) as one line."""
    with _readable(Path(name), what), quiet_nibabel():
        return np.asanyarray(img.dataobj)


@contextlib.contextmanager
def _readable(path: Path, what: str):
    """Turn any failure to read ``path`` into a one-line :class:`InputFileError`."""
    try:
        yield
    except InputFileError:
        raise
    except MemoryError:
        raise InputFileError(f"Cannot read '{path}' as a NIfTI {what}: it does not fit in memory") from None
    except Exception as err:  # nibabel, gzip, zlib and OS errors all mean "not a readable NIfTI"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputFileError(f"Cannot read '{path}' as a NIfTI {what}: {reason}") from None


@contextlib.contextmanager
def errors_about(prefix: str):
    """Prefix the message of any :class:`PedgmError` raised inside with ``prefix`` (e.g. a scan id)."""
    try:
        yield
    except PedgmError as err:
        raise type(err)(f"{prefix}: {err}") from None


def load_image(
    image: str | os.PathLike | nib.Nifti1Image,
    *,
    what: str = "image",
    allow_constant: bool = False,
    name: str | None = None,
    geometry: bool = True,
) -> nib.Nifti1Image:
    """Load and validate a 3D NIfTI image: the input layer every entry point reads images through.

    Parameters
    ----------
    image : path-like or nibabel.Nifti1Image
        The image. A 4D image whose 4th axis has length 1 is accepted as 3D.
    what : str, default "image"
        Word used in error messages ("image", "cord mask", ...).
    allow_constant : bool, default False
        Accept an image whose voxels all have one value (masks may be empty).
    name : str, optional
        How messages name an in-memory image (default :func:`source_name`).
    geometry : bool, default True
        Also check that the grid can be a spinal cord scan (:func:`pedgm_kit.geometry.check_geometry`:
        voxel sizes, field of view, obliquity), as ``pedgm segment`` does; masks are on a scan's
        grid, so the same limits hold for them.

    Returns
    -------
    nibabel.Nifti1Image
        A new 3D float32 image on the same grid (affine, header and qform/sform codes kept).

    Raises
    ------
    InputFileError
        Missing file, or a file nibabel cannot read as NIfTI.
    DimensionError
        Not 3D, or a zero-length dimension; with ``geometry``, fewer than 2 voxels in-plane.
    ImageContentError
        RGB or complex voxels, NaN or infinite voxels (also after scaling by ``scl_slope`` /
        ``scl_inter``), values beyond float32's range, a constant image (unless ``allow_constant``),
        a non-finite or singular affine, a voxel size in the header that is zero, negative or not a
        number; with ``geometry``, a grid outside :data:`pedgm_kit.geometry.LIMITS`.
    """
    name = name or source_name(image)
    if isinstance(image, (str, os.PathLike)):
        img = open_nifti(image, what=what)
    else:
        img = image
    shape = tuple(int(n) for n in img.shape)
    if 0 in shape:
        raise DimensionError(f"{name}: {what} has a zero-length dimension (shape {shape}); no voxels to read")
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 1):
        raise DimensionError(f"{name}: expected a 3D {what}, got {len(shape)}D data of shape {shape}")
    _check_header(img, name, what)
    data = read_data(img, name=name, what=what)
    if data.dtype.names is not None or data.dtype.kind not in "biuf":
        kind = "RGB" if data.dtype.names is not None else "complex" if data.dtype.kind == "c" else str(data.dtype)
        raise ImageContentError(f"{name}: {what} holds {kind} voxels; expected real scalar intensities (one value per voxel)")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DimensionError(f"{name}: expected a 3D {what}, got {data.ndim}D data of shape {data.shape}")
    if not np.isfinite(data).all():
        n_bad = int(np.count_nonzero(~np.isfinite(data)))
        raise ImageContentError(f"{name}: {what} has {n_bad} NaN or infinite voxels (after scl_slope/scl_inter scaling)")
    with np.errstate(over="ignore"):
        cast = np.asarray(data, dtype=np.float32)
    if not np.isfinite(cast).all():
        big = float(np.max(np.abs(data)))
        raise ImageContentError(f"{name}: {what} has values up to {big:.3g}, beyond float32's range (3.4e38); "
                                "rescale the image")
    data = cast
    if not allow_constant and data.min() == data.max():
        raise ImageContentError(f"{name}: {what} is constant (every voxel is {data.flat[0]:g}); nothing to segment")
    with quiet_nibabel():
        header = img.header.copy()
        header.set_data_shape(data.shape)
        header.set_data_dtype(np.float32)
        out = nib.Nifti1Image(data, img.affine, header)
        try:
            _copy_codes(img.header, out)
        except (nib.spatialimages.HeaderDataError, ValueError, np.linalg.LinAlgError) as err:
            reason = str(err).splitlines()[0]
            raise ImageContentError(f"{name}: {what} has a qform or sform nibabel cannot use ({reason})") from None
    if geometry:
        check_geometry(out, name=name)
    return out


def _check_header(img, name: str, what: str) -> None:
    """A finite, invertible affine, usable coded qform/sform and positive header voxel sizes.

    nibabel reads a pixdim of 0 as 1 mm; and it uses the sform where both are coded, while other tools
    may use the qform, so a coded qform nibabel cannot compute (NaN, a quaternion longer than 1) is
    refused too.
    """
    affine = np.asarray(img.affine, dtype=float)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ImageContentError(f"{name}: {what} has a non-finite affine (NaN or infinite in pixdim/qform/sform)")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ImageContentError(f"{name}: {what} has a singular affine (a voxel axis of length 0); its geometry is unusable")
    for kind in ("qform", "sform"):  # a coded matrix other tools may use, even where nibabel uses the other
        code = int(img.header[f"{kind}_code"]) if f"{kind}_code" in img.header else 0
        try:
            with quiet_nibabel():
                matrix, code = getattr(img.header, f"get_{kind}")(coded=True)
        except Exception as err:  # noqa: BLE001 - e.g. a quaternion longer than 1: any failure means unusable
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ImageContentError(f"{name}: {what} has a {kind} (code {code}) nibabel cannot compute ({reason}); "
                                    f"fix it or set {kind}_code to 0") from None
        if code and (matrix is None or not np.isfinite(matrix).all()):
            raise ImageContentError(f"{name}: {what} has a {kind} (code {int(code)}) with NaN or infinite values; "
                                    f"fix it or set {kind}_code to 0")
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        shown = ", ".join(f"{z:g}" for z in zooms)
        raise ImageContentError(f"{name}: {what} has voxel sizes ({shown}) mm in its header; each must be a positive number")


def spacing_mm(img: nib.Nifti1Image) -> np.ndarray:
    """Voxel sizes in mm, from the affine (never from a header field by index)."""
    return nib.affines.voxel_sizes(img.affine)


def check_same_grid(
    image,
    other,
    *,
    what: str = "mask",
    image_name: str | None = None,
    other_name: str | None = None,
    atol_mm: float = AFFINE_ATOL_MM,
    reference: str = "image",
) -> None:
    """Raise :class:`GridMismatchError` unless ``other`` has the shape and affine of ``image``.

    Parameters
    ----------
    image, other
        Anything with ``shape`` and ``affine`` (nibabel images, or their headers).
    what : str, default "mask"
        What ``other`` is, for the message.
    image_name, other_name : str, optional
        How the message names the two (default :func:`source_name`).
    atol_mm : float, default :data:`AFFINE_ATOL_MM`
        Largest element-wise affine difference accepted (mm).
    reference : str, default "image"
        What ``image`` is, for the message.
    """
    a = image_name or source_name(image, "image")
    b = other_name or source_name(other, what)
    if tuple(image.shape[:3]) != tuple(other.shape[:3]):
        raise GridMismatchError(
            f"{b}: {what} shape {tuple(other.shape[:3])} differs from {reference} {a} shape {tuple(image.shape[:3])}"
        )
    diff = float(np.abs(np.asarray(image.affine) - np.asarray(other.affine)).max())
    if not diff <= atol_mm:
        raise GridMismatchError(
            f"{b}: {what} affine differs from {reference} {a} affine by up to {diff:.3g} mm (tolerance {atol_mm:g} mm)"
        )


def check_binary(data, *, name: str, what: str = "mask", hint: str = "") -> np.ndarray:
    """A mask's voxels as bool, after checking they are all 0 or 1 (bool arrays pass as they are).

    Parameters
    ----------
    data : array_like
        The mask (any shape).
    name : str
        The file or array it came from, for the message.
    what : str, default "mask"
        What it is ("GM mask", "prediction" ...).
    hint : str, optional
        What to do about it, appended to the message.

    Raises
    ------
    ImageContentError
        Non-numeric data or values other than 0 and 1 (the message shows up to five of them).
    """
    a = np.asarray(data)
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "iuf":
        raise ImageContentError(f"{name}: {what} has dtype {a.dtype}; expected 0/1 numbers or bool")
    ok = (a == 0) | (a == 1)
    if not ok.all():
        bad = np.unique(a[~ok])
        shown = ", ".join(f"{v:g}" for v in bad[:5].tolist()) + (", ..." if bad.size > 5 else "")
        raise ImageContentError(
            f"{name}: {what} must hold only 0 and 1, but {int((~ok).sum())} voxel(s) hold other values ({shown})"
            + (f"; {hint}" if hint else "")
        )
    return a == 1


def default_output_path(image_path: str | os.PathLike, suffix: str = "_gmseg") -> Path:
    """``<input>_gmseg.nii.gz`` next to the input (``.nii`` inputs keep ``.nii``)."""
    path = Path(image_path)
    name = path.name
    for ext in _NIFTI_SUFFIXES:
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + suffix + ext)
    return path.with_name(name + suffix + ".nii.gz")


def check_output_path(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    suffixes: tuple[str, ...] | None = _NIFTI_SUFFIXES,
    inputs: tuple = (),
    what: str = "Output",
) -> Path:
    """Validate an output path before any work is done.

    Parameters
    ----------
    path : path-like
        Where the output will be written.
    overwrite : bool, default False
        Replace an existing file.
    suffixes : tuple of str or None, default (".nii.gz", ".nii")
        Allowed endings (None: any).
    inputs : tuple of path-like, default ()
        Files this run reads: the output may never be one of them, whatever ``overwrite`` says.
    what : str, default "Output"
        How the message names the path ("--json" ...).

    Raises
    ------
    InputFileError
        The folder does not exist, the name has no stem or a wrong ending, the path is a folder, or
        it is one of ``inputs``.
    OutputExistsError
        Something exists at the path (a file, or a link, even a dangling one) and ``overwrite`` is
        False.
    """
    path = Path(path)
    if suffixes is not None:
        ending = next((s for s in suffixes if path.name.endswith(s)), None)
        if ending is None:
            raise InputFileError(f"{what} '{path}' must end in {' or '.join(sorted(suffixes))}")
        if not path.name[: -len(ending)].strip(". "):
            raise InputFileError(f"{what} '{path}' has no file name before '{ending}'")
    check_output_folder(path.parent, what=what, target=path)
    if path.is_dir():
        raise InputFileError(f"{what} '{path}' is a folder, not a file name")
    for source in inputs:
        if isinstance(source, (str, os.PathLike)) and _same_file(path, source):
            raise InputFileError(f"{what} '{path}' is the input file '{source}'; refusing to overwrite an input")
    if os.path.lexists(path) and not overwrite:
        state = "is a dangling link" if path.is_symlink() and not path.exists() else "exists"
        raise OutputExistsError(f"{what} '{path}' {state}; pass --overwrite (overwrite=True) to replace it")
    return path


def check_output_folder(folder: str | os.PathLike, *, what: str = "Output", target=None) -> Path:
    """``folder`` if it is an existing, writable folder; else a one-line :class:`InputFileError`.

    The message says whether the folder is missing or is a file, and names the output asked for
    (``target``), never a temporary file.
    """
    folder = Path(folder)
    where = f" (for '{target}')" if target is not None else ""
    if not folder.is_dir():
        if os.path.lexists(folder):
            kind = "a dangling link" if folder.is_symlink() and not folder.exists() else "a file"
            raise InputFileError(f"{what} folder '{folder}' is {kind}, not a folder{where}")
        raise InputFileError(f"{what} folder does not exist: '{folder}'{where}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputFileError(f"{what} folder '{folder}' is not writable{where}")
    return folder


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


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
    if os.path.islink(path):  # replace the link itself, never the file it points to
        os.unlink(path)
    with atomic_path(path) as tmp, quiet_nibabel():
        nib.save(out, tmp)
    return path


def to_image_like(data: np.ndarray, like: nib.Nifti1Image, *, dtype=np.uint8) -> nib.Nifti1Image:
    """A new in-memory image holding ``data`` on the grid of ``like`` (affine, qform/sform codes)."""
    header = like.header.copy()
    header.set_data_shape(data.shape)
    header.set_data_dtype(dtype)
    header.set_slope_inter(1.0, 0.0)
    with quiet_nibabel():
        out = nib.Nifti1Image(np.asarray(data, dtype=dtype), like.affine, header)
        _copy_codes(like.header, out)
    return out


def _copy_codes(src_header, img: nib.Nifti1Image) -> None:
    qform, qcode = src_header.get_qform(coded=True)
    sform, scode = src_header.get_sform(coded=True)
    img.set_qform(qform if qform is not None else img.affine, code=int(qcode))
    img.set_sform(sform if sform is not None else img.affine, code=int(scode))


# --------------------------------------------------------------------------------------------- text files


def write_text(text: str, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a text file atomically (refuses an existing file unless ``overwrite``)."""
    path = Path(path)
    if not overwrite:
        check_output_path(path, suffixes=None)
    else:
        check_output_folder(path.parent, target=path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return _jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is pd.NA or obj is None:
        return None
    if isinstance(obj, os.PathLike):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def write_json(obj, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as JSON atomically; NaN/inf become ``null``, numpy and pandas values plain.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    return write_text(text + "\n", path, overwrite=overwrite)


def check_choice(value, allowed, *, name: str):
    """``value`` if it is one of ``allowed``, else a one-line :class:`ParameterError`."""
    if value not in tuple(allowed):
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value
