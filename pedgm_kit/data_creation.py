"""Training arrays from preprocessed scans: per-split ``.npz`` files, a manifest, and their check.

Notebook 02 calls these. Each split's ``.npz`` holds, one row per axial slice:

- ``images``: (N, 200, 200) float32, standardised per volume (SCT's volume standardisation),
- ``masks``: (N, 200, 200) uint8 manual GM masks,
- ``scan_id``, ``person_id``: unicode strings; ``slice_index``: int32 slice number in the scan;
- ``spacing_mm``: (N, 3) float32 voxel sizes of the preprocessed grid.

Arrays hold no Python objects, so they load with ``np.load(..., allow_pickle=False)``. Files are
written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ._utils import atomic_path, write_json
from .exceptions import PedgmError
from .preprocess import load_preprocessed, standardise
from .registry import sha256sum

__all__ = ["ARRAY_KEYS", "build_split_arrays", "load_split", "save_npz", "verify_split", "write_json"]

ARRAY_KEYS = ("images", "masks", "scan_id", "person_id", "slice_index", "spacing_mm")


def build_split_arrays(
    frame: pd.DataFrame,
    scan_ids: Sequence[str],
    *,
    root: str | os.PathLike,
    keep_empty_slices: bool = True,
) -> dict[str, np.ndarray]:
    """Stack the slices of the given preprocessed scans into arrays.

    Parameters
    ----------
    frame : pandas.DataFrame
        Notebook 01's ``index.csv``: columns ``scan_id``, ``person_id``, ``image`` (path of the
        preprocessed image, relative to ``root``).
    scan_ids : sequence of str
        Scans of this split, in the order wanted.
    root : path-like
        Folder the ``image`` paths are relative to.
    keep_empty_slices : bool, default True
        Keep slices whose GM mask is empty (the original study kept them).

    Returns
    -------
    dict of str to numpy.ndarray
        The :data:`ARRAY_KEYS` arrays (empty arrays of the right shape for an empty split).
    """
    rows = frame.set_index("scan_id")
    unknown = [s for s in scan_ids if s not in rows.index]
    if unknown:
        raise PedgmError(f"split lists scans that were not preprocessed: {', '.join(unknown)}")
    parts: dict[str, list] = {key: [] for key in ARRAY_KEYS}
    for scan_id in scan_ids:
        image, mask, affine = load_preprocessed(Path(root) / rows.loc[scan_id, "image"])
        if mask is None:
            raise PedgmError(f"{scan_id}: preprocessed scan has no GM mask ({rows.loc[scan_id, 'image']})")
        image = standardise(image)
        keep = np.ones(image.shape[2], bool) if keep_empty_slices else mask.any(axis=(0, 1))
        z = np.flatnonzero(keep)
        parts["images"].append(np.moveaxis(image[..., z], 2, 0))
        parts["masks"].append(np.moveaxis(mask[..., z], 2, 0))
        parts["scan_id"].append(np.full(z.size, scan_id))
        parts["person_id"].append(np.full(z.size, str(rows.loc[scan_id, "person_id"])))
        parts["slice_index"].append(z.astype(np.int32))
        parts["spacing_mm"].append(np.tile(nib.affines.voxel_sizes(affine).astype(np.float32), (z.size, 1)))
    if not scan_ids:
        return {
            "images": np.zeros((0, 200, 200), np.float32),
            "masks": np.zeros((0, 200, 200), np.uint8),
            "scan_id": np.zeros(0, "<U1"),
            "person_id": np.zeros(0, "<U1"),
            "slice_index": np.zeros(0, np.int32),
            "spacing_mm": np.zeros((0, 3), np.float32),
        }
    return {key: np.concatenate(value) for key, value in parts.items()}


def save_npz(arrays: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """``np.savez_compressed`` to a temporary file beside ``path``, then rename into place."""
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


def load_split(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a split ``.npz`` (data only: ``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def verify_split(path: str | os.PathLike, frame: pd.DataFrame, *, root: str | os.PathLike) -> int:
    """Re-read every preprocessed NIfTI of a split and check the arrays equal its slices.

    The original study's check that the stacked arrays are the NIfTI files. Returns the number of
    slices checked; raises :class:`PedgmError` naming the scan and slice on the first difference.
    """
    arrays = load_split(path)
    rows = frame.set_index("scan_id")
    checked = 0
    for scan_id in dict.fromkeys(arrays["scan_id"].tolist()):
        image, mask, _ = load_preprocessed(Path(root) / rows.loc[scan_id, "image"])
        image = standardise(image)
        for i in np.flatnonzero(arrays["scan_id"] == scan_id):
            z = int(arrays["slice_index"][i])
            if not np.array_equal(arrays["images"][i], image[..., z]):
                raise PedgmError(f"{path}: image of {scan_id} slice {z} differs from its NIfTI")
            if not np.array_equal(arrays["masks"][i], mask[..., z]):
                raise PedgmError(f"{path}: mask of {scan_id} slice {z} differs from its NIfTI")
            checked += 1
    return checked


def file_record(path: str | os.PathLike) -> dict:
    """``{"path", "bytes", "sha256"}`` of a file, for manifests."""
    path = Path(path)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256sum(path)}
