"""NiiVue's drawing bitmap and the image file's stored voxel grid, converted both ways.

NiiVue (the viewer inside ipyniivue, version 0.65 in ipyniivue 2.4.4) keeps the drawing layer as a
flat ``uint8`` array, ``drawBitmap``, laid out on its own "RAS" voxel grid: the background image's
stored axes permuted and flipped so that voxel axis ``k`` runs along world axis ``k``
(x: left to Right, y: posterior to Anterior, z: inferior to Superior), flattened with x fastest
(Fortran order). ipyniivue hands that array to Python as ``NiiVue.draw_bitmap``.

The permutation is NiiVue's, not nibabel's. ``NVImage.calculateRAS()`` takes one affine and picks,
greedily and column by column, the world axis each stored axis runs along most (largest absolute
component): stored axis 0 first, then stored axis 1 among the two world axes left, stored axis 2
gets the last one. ``permRAS[k] = +-(stored axis + 1)`` is the stored axis that becomes RAS axis
``k``, negative when it runs the other way (the affine's entry for that pair is negative). For
axis-aligned and mildly oblique images this equals nibabel's closest canonical orientation;
near 45 degrees of obliquity the greedy choice and ``nibabel.io_orientation`` may differ, so the
rule is ported here rather than borrowed.

The affine it uses is chosen as NiiVue's NIfTI reader does (nifti-reader-js, then
``NVImage.init``), which is not nibabel's choice:

1. the qform when ``qform_code > sform_code``;
2. else the sform when ``sform_code > 0``;
3. else (both codes 0) ``diag(pixdim)``, with no x flip (nibabel's ``get_base_affine`` flips x);
4. an affine with a NaN, or a row or column of zeros in its 3x3 part, is replaced by the qform,
   and if that is no better by ``diag(pixdim)``.

nibabel prefers the sform whenever ``sform_code != 0``, so a file with ``qform_code=2`` and
``sform_code=1`` is read with different affines by the two; the difference only matters when they
disagree on the axis order, but the rule is followed exactly.

A drawing file loaded into NiiVue is reordered with *its own* header's permutation, so a draft is
always sent with the image's header (see :mod:`pedgm_kit.annotate.correction`). The functions here
are exact inverses of each other and are checked in a real browser by the round trip of
``tests/annotate/test_annotate_browser.py`` (a LAS and an LPS scan).
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import GridMismatchError

__all__ = [
    "bitmap_to_stored",
    "frac_to_stored",
    "niivue_affine",
    "perm_ras",
    "ras_shape",
    "stored_to_bitmap",
    "stored_to_frac",
]


def _affine_ok(affine: np.ndarray) -> bool:
    """NiiVue's ``isAffineOK``: no NaN, and every row and column of the 3x3 part has a non-zero."""
    a = np.asarray(affine, dtype=float)
    if np.isnan(a[:4, :4]).any():
        return False
    nonzero = a[:3, :3] != 0
    return bool(nonzero.any(axis=1).all() and nonzero.any(axis=0).all())


def _pixdim_affine(header) -> np.ndarray:
    """``diag(pixdim)`` as NiiVue builds it for files without usable qform or sform (0 or NaN -> 1)."""
    sizes = [float(v) for v in np.asarray(header["pixdim"][1:4], dtype=float)]
    sizes = [1.0 if (math.isnan(v) or v == 0) else v for v in sizes]
    return np.diag(sizes + [1.0])


def niivue_affine(img) -> np.ndarray:
    """The 4x4 voxel-to-world affine NiiVue uses for an image (see the module docstring).

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The image as it is stored in its file (its header's qform, sform and codes).

    Returns
    -------
    numpy.ndarray
        A float 4x4 affine.
    """
    header = img.header
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    if qcode > scode:
        affine = header.get_qform(coded=False)
    elif scode > 0:
        affine = header.get_sform(coded=False)
    else:
        affine = _pixdim_affine(header)
    if not _affine_ok(affine):
        affine = header.get_qform(coded=False)
        if not _affine_ok(affine):
            affine = _pixdim_affine(header)
    return np.asarray(affine, dtype=float)


def perm_ras(affine) -> tuple[int, int, int]:
    """NiiVue's ``permRAS`` of an affine: a port of ``NVImage.calculateRAS()``.

    Parameters
    ----------
    affine : array_like, shape (4, 4) or (3, 3)
        Voxel-to-world affine (rows: world x, y, z; columns: stored axes).

    Returns
    -------
    tuple of int
        ``perm[k] = +-(s + 1)``: stored axis ``s`` becomes RAS axis ``k``, flipped when negative.

    Examples
    --------
    >>> perm_ras(np.diag([-0.5, 0.5, 3.0, 1.0]))  # LAS
    (-1, 2, 3)
    >>> perm_ras(np.diag([-0.6, -0.6, 3.0, 1.0]))  # LPS
    (-1, -2, 3)
    """
    m = np.asarray(affine, dtype=float)
    c = np.abs(m[:3, :3]).ravel()  # row-major, like the JavaScript mat3
    world = [1, 1, 1]  # world[s]: world axis (1-based) stored axis s runs along
    if c[3] > c[0]:
        world[0] = 2
    if c[6] > c[0] and c[6] > c[3]:
        world[0] = 3
    if world[0] == 1:
        world[1] = 2 if c[4] > c[7] else 3
    elif world[0] == 2:
        world[1] = 1 if c[1] > c[7] else 3
    else:
        world[1] = 1 if c[1] > c[4] else 2
    world[2] = 6 - world[0] - world[1]
    stored = [1, 2, 3]  # stored[k]: stored axis (1-based) that becomes world axis k
    for s in range(3):
        stored[world[s] - 1] = s + 1
    return tuple(-stored[k] if m[k, stored[k] - 1] < 0 else stored[k] for k in range(3))


def _perm(img) -> tuple[int, int, int]:
    return perm_ras(niivue_affine(img))


def _shape3(img) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in img.shape[:3])
    if len(shape) != 3:
        raise GridMismatchError(f"expected a 3D image grid, got shape {tuple(img.shape)}")
    return shape


def ras_shape(img) -> tuple[int, int, int]:
    """NiiVue's ``dimsRAS``: the image's shape on NiiVue's RAS voxel grid (x, y, z)."""
    shape = _shape3(img)
    return tuple(shape[abs(p) - 1] for p in _perm(img))


def stored_to_bitmap(data, img) -> np.ndarray:
    """A stored-grid 3D array as NiiVue's flat ``uint8`` drawing bitmap.

    Parameters
    ----------
    data : array_like, shape ``img.shape[:3]``
        Values 0-255 on the image file's own voxel grid (a mask: 0 and 1).
    img : nibabel.Nifti1Image
        The background image, as stored in its file.

    Returns
    -------
    numpy.ndarray
        1D ``uint8``, length ``prod(img.shape[:3])``, NiiVue's RAS voxel order with x fastest.

    Raises
    ------
    GridMismatchError
        ``data`` does not have the image's shape.
    """
    a = np.asarray(data)
    shape = _shape3(img)
    if a.shape != shape:
        raise GridMismatchError(f"array shape {a.shape} differs from the image grid {shape}")
    perm = _perm(img)
    ras = np.transpose(a, [abs(p) - 1 for p in perm])
    for k, p in enumerate(perm):
        if p < 0:
            ras = np.flip(ras, axis=k)
    return np.asarray(ras, dtype=np.uint8).ravel(order="F")


def bitmap_to_stored(bitmap, img) -> np.ndarray:
    """NiiVue's flat drawing bitmap as an array on the image file's stored grid.

    Parameters
    ----------
    bitmap : array_like, 1D
        ``NiiVue.draw_bitmap``: length ``prod(img.shape[:3])``, RAS voxel order, x fastest.
    img : nibabel.Nifti1Image
        The background image, as stored in its file.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous array of shape exactly ``img.shape[:3]``, the bitmap's dtype.

    Raises
    ------
    GridMismatchError
        The bitmap's length is not the image's number of voxels.
    """
    b = np.asarray(bitmap).ravel()
    shape = _shape3(img)
    n = int(np.prod(shape))
    if b.size != n:
        raise GridMismatchError(f"drawing bitmap has {b.size} voxels; the image grid {shape} has {n}")
    perm = _perm(img)
    ras = b.reshape(tuple(shape[abs(p) - 1] for p in perm), order="F")
    for k, p in enumerate(perm):
        if p < 0:
            ras = np.flip(ras, axis=k)
    return np.ascontiguousarray(np.transpose(ras, np.argsort([abs(p) - 1 for p in perm])))


def stored_to_frac(ijk, img) -> list[float]:
    """A stored voxel index as NiiVue's crosshair position "frac" (voxel centre, RAS grid, 0-1).

    Parameters
    ----------
    ijk : sequence of 3 numbers
        Stored voxel index (fractional indices are allowed, e.g. a centroid).
    img : nibabel.Nifti1Image

    Returns
    -------
    list of float
        ``[fx, fy, fz]`` with ``f = (ras_index + 0.5) / dims_ras``.
    """
    shape = _shape3(img)
    frac = []
    for p in _perm(img):
        axis = abs(p) - 1
        v = float(ijk[axis]) if p > 0 else shape[axis] - 1 - float(ijk[axis])
        frac.append((v + 0.5) / shape[axis])
    return frac


def frac_to_stored(frac, img) -> tuple[int, int, int]:
    """NiiVue's "frac" position as the stored voxel index that contains it (clipped to the grid)."""
    shape = _shape3(img)
    out = [0, 0, 0]
    for k, p in enumerate(_perm(img)):
        axis = abs(p) - 1
        v = min(max(math.floor(float(frac[k]) * shape[axis]), 0), shape[axis] - 1)
        out[axis] = v if p > 0 else shape[axis] - 1 - v
    return tuple(out)
