"""Training arrays from preprocessed scans: per-split ``.npz`` files, a manifest, and their check.

Notebook 02 calls these. Each split's ``.npz`` holds, one row per axial slice:

- ``images``: (N, 200, 200) float32, standardised per volume (SCT's volume standardisation),
- ``masks``: (N, 200, 200) uint8 manual GM masks,
- ``scan_id``, ``person_id``: unicode strings; ``slice_index``: int32 slice number in the scan;
- ``spacing_mm``: (N, 3) float32 voxel sizes of the preprocessed grid.

Arrays hold no Python objects, so they load with ``np.load(..., allow_pickle=False)``. Files are
written to a temporary name and renamed into place.

Beside the arrays, ``scans.json`` (:data:`SCANS_FILE`) lists every scan of the data folder: its split,
person, how its window was centred (``centring``: "model" for a scan prepared as a new scan is,
"cord mask"/"gm mask" when a manual mask positioned it) and its source image and mask, so a trained
model can be scored on the full source scans (:func:`pedgm_kit.evaluate.scoring.score_test_scans`).
A validation or test scan whose window a manual mask positioned is refused (the answer would have
placed the question).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ._utils import atomic_path
from .exceptions import InputFileError, PedgmError
from .io import write_json
from .layout import INDEX_CSV, SCANS_FILE, Manifest, fold_dir, split_arrays
from .preprocess import MASK_CENTRINGS, load_preprocessed, standardise
from .registry import sha256sum
from .weights import DEFAULT_METADATA

__all__ = [
    "ARRAY_KEYS",
    "SCANS_FILE",
    "check_centring",
    "build_split_arrays",
    "file_record",
    "fold_data_dir",
    "load_split",
    "read_manifest",
    "read_scans",
    "record_in_manifest",
    "save_npz",
    "verify_arrays",
    "verify_split",
    "write_arrays",
    "write_manifest",
]

ARRAY_KEYS = ("images", "masks", "scan_id", "person_id", "slice_index", "spacing_mm")

#: Columns of notebook 01's ``index.csv`` carried into :data:`SCANS_FILE` when present
#: (``mask_provenance``: :mod:`pedgm_kit.provenance`).
_SCAN_COLUMNS = ("person_id", "centring", "cord_scale", "cord_scale_rule", "source_image", "source_gm_mask",
                 "mask_provenance")


def check_centring(frame: pd.DataFrame, splits: Mapping[str, Sequence[str]], *, source: str | os.PathLike = INDEX_CSV) -> None:
    """Refuse a validation or test scan whose window a manual mask positioned.

    ``frame``'s ``centring`` column (notebook 01's ``index.csv``) says how each window was centred;
    only training scans may say "cord mask" or "gm mask". A frame without the column (an index
    written before centring was recorded) is refused when a validation or test split has scans:
    nothing would show that their windows were placed as a new scan's are (run notebook 01 again).

    Parameters
    ----------
    source : path-like, default "index.csv"
        The file the frame was read from, named in the error.

    Raises
    ------
    InputFileError
        The frame has no ``centring`` column (one line naming ``source``).
    PedgmError
        Naming the split, the scans and their centring.
    """
    if "centring" not in frame.columns:
        if any(ids for name, ids in splits.items() if name != "train"):
            raise InputFileError(f"{source}: no 'centring' column, so nothing shows how the validation/test windows "
                                 "were centred; preprocess again (notebook 01 / pedgm run) to record it")
        return
    centring = dict(zip(frame["scan_id"], frame["centring"]))
    for name, ids in splits.items():
        if name == "train":
            continue
        bad = [f"{s} ({centring[s]})" for s in ids if centring.get(s) in MASK_CENTRINGS]
        if bad:
            raise PedgmError(f"{name} split: scan(s) {', '.join(bad)} were centred on their manual mask; "
                             "validation and test scans must be prepared as new scans are (preprocess with "
                             "centre_on='model')")


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
        size = int(DEFAULT_METADATA["input_size"])
        return {
            "images": np.zeros((0, size, size), np.float32),
            "masks": np.zeros((0, size, size), np.uint8),
            "scan_id": np.zeros(0, "<U1"),
            "person_id": np.zeros(0, "<U1"),
            "slice_index": np.zeros(0, np.int32),
            "spacing_mm": np.zeros((0, 3), np.float32),
        }
    return {key: np.concatenate(value) for key, value in parts.items()}


def write_arrays(frame: pd.DataFrame, splits: Mapping[str, Sequence[str]], *, root: str | os.PathLike,
                 data_dir: str | os.PathLike, keep_empty_slices: bool = True,
                 source: str | os.PathLike = INDEX_CSV) -> dict[str, dict]:
    """Build and save ``<data_dir>/<split>.npz`` for every split; returns the counts per split.

    Counts: scans, persons, slices and slices with GM. ``source`` (the file ``frame`` was read from)
    is named in errors (:func:`check_centring`).
    """
    check_centring(frame, splits, source=source)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, ids in splits.items():
        arrays = build_split_arrays(frame, ids, root=root, keep_empty_slices=keep_empty_slices)
        save_npz(arrays, split_arrays(data_dir, name))
        counts[name] = {"scans": len(ids), "persons": len(set(arrays["person_id"].tolist())),
                        "slices": int(len(arrays["images"])), "gm_slices": int(arrays["masks"].any(axis=(1, 2)).sum())}
    write_json({"schema": 1, "scans": _scan_records(frame, splits)}, data_dir / SCANS_FILE)
    return counts


def _scan_records(frame: pd.DataFrame, splits: Mapping[str, Sequence[str]]) -> list[dict]:
    """One record per scan of ``splits``: split, scan id and the :data:`_SCAN_COLUMNS` ``frame`` has."""
    rows = frame.set_index("scan_id")
    columns = [c for c in _SCAN_COLUMNS if c in rows.columns]
    out = []
    for name, ids in splits.items():
        for scan_id in ids:
            record = {"split": name, "scan_id": scan_id}
            for column in columns:
                value = rows.loc[scan_id, column]
                record[column] = None if pd.isna(value) else (value.item() if hasattr(value, "item") else value)
                if column.startswith("source_") and record[column] is not None:  # read later from another folder
                    record[column] = str(Path(record[column]).resolve())
            record.setdefault("centring", "unrecorded")
            out.append(record)
    return out


def read_scans(data_dir: str | os.PathLike, split: str | None = None) -> list[dict] | None:
    """The :data:`SCANS_FILE` records of a data folder (of one split), or None if it has none."""
    import json

    path = Path(data_dir) / SCANS_FILE
    if not path.is_file():
        return None
    try:
        records = json.loads(path.read_text(encoding="utf-8"))["scans"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputFileError(f"Cannot read scan records '{path}': {str(err).splitlines()[0] if str(err) else err}") from None
    return [r for r in records if split is None or r.get("split") == split]


def verify_arrays(data_dir: str | os.PathLike, splits, frame: pd.DataFrame, *, root: str | os.PathLike,
                  counts: Mapping[str, Mapping]) -> dict[str, int]:
    """:func:`verify_split` for every split of a data folder; checks every slice was compared."""
    checked = {name: verify_split(split_arrays(data_dir, name), frame, root=root) for name in splits}
    expected = {name: c["slices"] for name, c in counts.items()}
    if checked != expected:
        raise PedgmError(f"{data_dir}: checked {checked} slices but the arrays hold {expected}")
    return checked


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


def write_manifest(
    path: str | os.PathLike,
    *,
    splits: Mapping[str, Sequence[str]],
    counts: Mapping[str, Mapping],
    data_dir: str | os.PathLike,
    frame: pd.DataFrame,
    preprocessed_dir: str | os.PathLike,
    parameters: Mapping,
    folds: Sequence[Mapping[str, Sequence[str]]] | None = None,
    fold_counts: Sequence[Mapping] | None = None,
) -> Path:
    """Write notebook 02's ``manifest.json``: the split(s), counts and the sha256 of every file used.

    Parameters
    ----------
    path : path-like
        The manifest file (written atomically).
    splits : mapping
        ``{"train": [scan id ...], "val": [...], "test": [...]}`` of the arrays in ``data_dir``.
    counts : mapping
        Per split: scans, persons, slices, GM slices.
    data_dir : path-like
        Folder of the ``<split>.npz`` arrays.
    frame : pandas.DataFrame
        Notebook 01's ``index.csv`` (``image``, ``gm_mask``, ``source_image``, ``source_gm_mask``;
        its ``centring`` column is recorded per scan as ``centring``: scan id -> "model", "cord mask"
        or "gm mask").
    preprocessed_dir : path-like
        Folder the preprocessed paths of ``frame`` are relative to.
    parameters : mapping
        Notebook parameters to record.
    folds : sequence of mappings, optional
        Cross-validation folds (``{"train", "val", "test"}`` each), their arrays in
        ``<data_dir>/fold-<k>/``; ``splits`` is then the first.
    fold_counts : sequence of mappings, optional
        The counts of every fold.

    Returns
    -------
    pathlib.Path
    """
    pre, data_dir = Path(preprocessed_dir), Path(data_dir)
    manifest = Manifest(
        notebook="02_data_creation",
        parameters=dict(parameters),
        splits={name: list(ids) for name, ids in splits.items()},
        folds=[{name: list(ids) for name, ids in fold.items()} for fold in folds] if folds else None,
        counts=dict(counts),
        fold_counts=[dict(c) for c in fold_counts] if fold_counts else None,
        data_dir=str(data_dir),
        arrays={str(p.relative_to(data_dir)): file_record(p) for p in sorted(data_dir.rglob("*.npz"))},
        centring={str(k): str(v) for k, v in zip(frame["scan_id"], frame["centring"])} if "centring" in frame else {},
        preprocessed=[file_record(pre / p) for p in list(frame["image"]) + list(frame["gm_mask"].dropna())],
        sources=[file_record(p) for p in list(frame["source_image"]) + list(frame["source_gm_mask"].dropna())],
    )
    return manifest.write(path)


def read_manifest(path: str | os.PathLike) -> dict:
    """Read a ``manifest.json`` of :func:`write_manifest`, checking its splits.

    Returns
    -------
    dict
        The manifest; ``splits`` maps ``train``/``val``/``test`` to scan-id lists and ``folds`` is a
        list of such mappings or None.

    Raises
    ------
    InputFileError
        Missing or unreadable file, or no ``splits`` with a ``test`` list.
    """
    return Manifest.read(path).to_json()


def record_in_manifest(path: str | os.PathLike, **entries) -> Path:
    """Add keys to notebook 02's ``manifest.json`` (read, checked, rewritten atomically).

    Notebook 02 records the locked test set (``locked_test``, :func:`pedgm_kit.splits.hold_out_locked`)
    and each scan's mask provenance (``mask_provenance``, :mod:`pedgm_kit.provenance`) this way, after
    :func:`write_manifest`. A key the manifest already holds is replaced.
    """
    manifest = read_manifest(path)
    manifest.update(entries)
    return write_json(manifest, path)


def fold_data_dir(data_dir: str | os.PathLike, fold: int) -> Path:
    """Where notebook 02 writes the arrays of cross-validation fold ``fold`` (1-based; :func:`pedgm_kit.layout.fold_dir`)."""
    return fold_dir(data_dir, fold)
