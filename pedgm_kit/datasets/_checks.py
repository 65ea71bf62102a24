"""Checks of discovered scans (grids, binary masks, readable files) and mask loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import DimensionError, InputFileError, PedgmError
from ..io import (
    AFFINE_ATOL_MM,
    check_binary,
    check_same_grid,
    errors_about,
    open_nifti,
    read_data,
)
from ._records import DatasetIndex, Scan, _Report

__all__ = ["finish_index", "mask_array", "validate_scan"]

_BINARIZE_HINT = "pass binarize=True to threshold masks at 0.5 when they are loaded"


def validate_scan(
    scan: Scan, *, binarize: bool | None = None, affine_atol: float = AFFINE_ATOL_MM
) -> None:
    """Check that a scan's image is a readable 3-D image and its masks fit it.

    Parameters
    ----------
    scan : Scan
        The scan to check; its image header and the full data of each mask are read.
    binarize : bool or None, default None
        Accept non-binary masks; None: use ``scan.binarize_masks``.
    affine_atol : float, default 1e-3
        Largest element-wise difference (mm) allowed between a mask's affine and the image's.

    Raises
    ------
    InputFileError
        If a file cannot be read.
    DimensionError
        If the image is not 3-D (a 4-D image with one volume counts as 3-D).
    GridMismatchError
        If a mask's shape or affine differs from the image's (message: scan, both files, both
        values).
    ImageContentError
        If a mask holds values other than 0 and 1 and ``binarize`` is False.
    """
    if binarize is None:
        binarize = scan.binarize_masks
    with errors_about(scan.scan_id):
        image = open_nifti(scan.image)
        shape = _shape3(image.shape)
        if shape is None:
            raise DimensionError(f"image {scan.image} must be 3-D, got shape {image.shape}")
        grid = _Grid(shape, image.affine)
        for kind, path in (("GM", scan.gm_mask), ("cord", scan.cord_mask)):
            if path is None:
                continue
            mask = open_nifti(path, what=f"{kind} mask")
            check_same_grid(grid, _Grid(_shape3(mask.shape) or mask.shape, mask.affine), what=f"{kind} mask",
                            image_name=str(scan.image), other_name=str(path), atol_mm=affine_atol)
            if not binarize:
                check_binary(read_data(mask, name=str(path), what=f"{kind} mask"), name=str(path),
                             what=f"{kind} mask", hint=_BINARIZE_HINT)


def mask_array(scan: Scan, *, which: str = "gm") -> np.ndarray:
    """Load one of a scan's masks as a 0/1 ``uint8`` array on the stored voxel grid.

    Parameters
    ----------
    scan : Scan
        The scan.
    which : {"gm", "cord"}, default "gm"
        Which mask.

    Returns
    -------
    numpy.ndarray of uint8
        The mask as stored (no reorientation). If ``scan.binarize_masks`` is True, voxels
        ``>= 0.5`` become 1 and all others (NaN included) 0; otherwise the mask must already
        hold only 0 and 1.

    Raises
    ------
    PedgmError
        If ``which`` is not "gm" or "cord", or the scan has no such mask.
    InputFileError
        If the file cannot be read.
    ImageContentError
        If the mask is not binary and ``scan.binarize_masks`` is False.
    """
    if which not in ("gm", "cord"):
        raise PedgmError(f"which must be 'gm' or 'cord', got {which!r}")
    path = scan.gm_mask if which == "gm" else scan.cord_mask
    if path is None:
        raise PedgmError(f"{scan.scan_id}: scan has no {which} mask (image {scan.image})")
    what = f"{'GM' if which == 'gm' else which} mask"
    with errors_about(scan.scan_id):
        data = read_data(open_nifti(path, what=what), name=str(path), what=what)
        if scan.binarize_masks:
            with np.errstate(invalid="ignore"):
                return (data >= 0.5).astype(np.uint8)
        return check_binary(data, name=str(path), what=what, hint=_BINARIZE_HINT).astype(np.uint8)


def file_scan(scan: Scan, labelled: list, unlabelled: list, *, labelled_runs_only: bool) -> None:
    """Put a discovered scan in its list: ``unlabelled`` without a GM mask (and also ``labelled``, which
    holds every run, unless ``labelled_runs_only``), else ``labelled``."""
    if scan.gm_mask is None:
        unlabelled.append(scan)
        if labelled_runs_only:
            return
    labelled.append(scan)


def finish_index(
    report: _Report,
    *,
    labelled: list[Scan],
    unlabelled: list[Scan],
    missing: list[str],
    root: Path,
    layout: str,
    unlabelled_note: str,
    validate: bool,
    binarize: bool,
    affine_atol: float,
) -> DatasetIndex:
    """The last step of every discovery: report the unlabelled images, build and check the index."""
    if unlabelled:
        report.add(f"{len(unlabelled)} {unlabelled_note}: {', '.join(s.scan_id for s in unlabelled)}")
    index = DatasetIndex(
        scans=tuple(labelled), unlabelled=tuple(unlabelled), missing=tuple(missing),
        warnings=tuple(report.messages), root=root, layout=layout,
    )
    if validate:
        done: set[str] = set()
        for scan in index.scans + index.unlabelled:
            if scan.scan_id not in done:
                validate_scan(scan, binarize=binarize, affine_atol=affine_atol)
                done.add(scan.scan_id)
    return index


class _Grid:
    """Shape and affine of an image, without its voxels (what :func:`check_same_grid` compares)."""

    def __init__(self, shape, affine):
        self.shape, self.affine = tuple(shape), affine


def _as_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputFileError(f"{what} {path} is not a folder (exists: {path.exists()})")
    return path


def _resolve(root: Path, path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else root / path


def _shape3(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """A 3-D shape, also for 4-D images with one volume (as pedgm_kit.io accepts); else None."""
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    return tuple(shape) if len(shape) == 3 else None
