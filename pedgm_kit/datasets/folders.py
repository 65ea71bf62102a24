"""Discovery of the original study's layout: one folder per ID, IDs in Controls*.txt."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import InputFileError, PedgmError
from ..io import AFFINE_ATOL_MM
from ._checks import _as_dir, _resolve, file_scan, finish_index
from ._records import DatasetIndex, Scan, _Report

__all__ = ["discover_folders", "read_id_list"]


def discover_folders(
    root: str | Path,
    *,
    ids_file: str | Path | None = "Controls.txt",
    second_ids_file: str | Path | None = "Controls_second.txt",
    image_name: str = "mFFE_crop_r.nii.gz",
    gm_name: str = "mFFE_crop_r_gmseg.nii.gz",
    cord_name: str | None = None,
    second_suffix: str = "_second",
    labelled_runs_only: bool = True,
    validate: bool = True,
    binarize: bool = False,
    affine_atol: float = AFFINE_ATOL_MM,
) -> DatasetIndex:
    """Index the original study's layout: one folder per ID with fixed file names.

    First scans live in ``<root>/<id>/``, second scans (the study's lumbar scans) in
    ``<root>/<id><second_suffix>/``; each folder holds ``image_name`` and, once drawn,
    ``gm_name``.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder holding the per-ID folders.
    ids_file : str, pathlib.Path or None, default "Controls.txt"
        Text file with one first-scan ID per line (blank lines and ``#`` comments ignored);
        relative paths are taken relative to ``root``. None: every sub-folder of ``root`` that
        holds ``image_name`` is a scan (folders ending in ``second_suffix`` are second scans) and
        ``second_ids_file`` is not read.
    second_ids_file : str, pathlib.Path or None, default "Controls_second.txt"
        Text file with the IDs that have a second scan; relative to ``root`` like ``ids_file``.
        If it is the default name and absent, there are no second scans; a file named explicitly
        must exist. None: no second scans.
    image_name : str, default "mFFE_crop_r.nii.gz"
        Image file name inside each folder.
    gm_name : str, default "mFFE_crop_r_gmseg.nii.gz"
        GM mask file name inside each folder.
    cord_name : str or None, default None
        Cord mask file name inside each folder, if the dataset has cord masks.
    second_suffix : str, default "_second"
        Folder-name suffix of second scans; removed to get the person id (``92_second`` -> ``92``).
    labelled_runs_only : bool, default True
        As in :func:`discover_bids`: images without a GM mask go to ``unlabelled`` only.
    validate, binarize, affine_atol
        As in :func:`discover_bids`.

    Returns
    -------
    DatasetIndex
        ``layout="folders"``; scans in ID-file order, first scans then second scans. Metadata:
        ``scan_number`` (1 or 2).

    Raises
    ------
    InputFileError
        If ``root`` is not a folder, an ID file named explicitly is absent, or a file cannot be
        read.
    PedgmError
        If an ID is listed twice in one ID file, or two entries give the same scan id
        (e.g. ``92_second`` in ``Controls.txt`` and ``92`` in ``Controls_second.txt``).
    GridMismatchError, ImageContentError, DimensionError
        As in :func:`discover_bids`.

    Warns
    -----
    DatasetWarning
        Listed IDs without an image; images without a GM mask.

    Examples
    --------
    >>> index = discover_folders("/data/pediatric")  # doctest: +SKIP
    >>> index.person_of()["92_second"]  # doctest: +SKIP
    '92'
    """
    root = _as_dir(root, "dataset root")
    report = _Report()

    entries: list[tuple[str, int, str]] = []  # (scan_id, scan_number, where it was listed)
    if ids_file is None:
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if (folder / image_name).is_file():
                number = 2 if folder.name.endswith(second_suffix) else 1
                entries.append((folder.name, number, f"folder {folder}"))
    else:
        ids_path = _resolve(root, ids_file)
        for line_no, scan_id in _read_ids_with_lines(ids_path):
            entries.append((scan_id, 1, f"{ids_path.name} line {line_no}"))
        if second_ids_file is not None:
            second_path = _resolve(root, second_ids_file)
            if second_path.is_file() or second_ids_file != "Controls_second.txt":
                for line_no, person in _read_ids_with_lines(second_path):
                    entries.append(
                        (f"{person}{second_suffix}", 2, f"{second_path.name} line {line_no}")
                    )

    seen: dict[str, str] = {}
    for scan_id, _, where in entries:
        if scan_id in seen:
            raise PedgmError(
                f"duplicate scan id '{scan_id}': listed at {seen[scan_id]} and at {where}"
            )
        seen[scan_id] = where

    labelled: list[Scan] = []
    unlabelled: list[Scan] = []
    missing: list[str] = []
    for scan_id, number, _ in entries:
        folder = root / scan_id
        image = folder / image_name
        if not image.is_file():
            missing.append(scan_id)
            continue
        person = scan_id[: -len(second_suffix)] if scan_id.endswith(second_suffix) else scan_id
        if not person:
            raise PedgmError(f"folder '{scan_id}' ({folder}) leaves an empty person id")
        gm = folder / gm_name
        cord = folder / cord_name if cord_name else None
        scan = Scan(
            scan_id=scan_id, person_id=person, image=image,
            gm_mask=gm if gm.is_file() else None,
            cord_mask=cord if cord is not None and cord.is_file() else None,
            metadata={"scan_number": number}, binarize_masks=binarize,
        )
        file_scan(scan, labelled, unlabelled, labelled_runs_only=labelled_runs_only)

    if missing:
        report.add(
            f"{len(missing)} listed ID(s) have no '{image_name}' under {root} and are skipped: "
            f"{', '.join(missing)}"
        )
    return finish_index(
        report, labelled=labelled, unlabelled=unlabelled, missing=missing, root=root, layout="folders",
        unlabelled_note=f"scan(s) under {root} have no GM mask '{gm_name}'",
        validate=validate, binarize=binarize, affine_atol=affine_atol,
    )


def read_id_list(path: str | Path) -> list[str]:
    """Read a subject-ID list such as ``Controls.txt``: one ID per line.

    Parameters
    ----------
    path : str or pathlib.Path
        Text file; surrounding whitespace is stripped, blank lines and lines starting with ``#``
        are ignored, and ``140.0`` is read as ``140``.

    Returns
    -------
    list of str
        IDs in file order.

    Raises
    ------
    InputFileError
        If the file does not exist.
    PedgmError
        If an ID is listed twice.
    """
    return [scan_id for _, scan_id in _read_ids_with_lines(Path(path))]


def normalise_id(value: Any) -> str:
    """An ID cell or line as a string: 140, 140.0 and ' 140 ' all give '140'."""
    if isinstance(value, (bool, np.bool_)):
        raise PedgmError(f"cannot use {value!r} as a subject ID")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer():
            return str(int(value))
        raise PedgmError(f"subject ID {value!r} is not a whole number")
    text = str(value).strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    return text


def _read_ids_with_lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise InputFileError(f"ID list {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"cannot read ID list {path}: {err}") from err
    out: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for line_no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        scan_id = normalise_id(text)
        if scan_id in first_line:
            raise PedgmError(
                f"duplicate ID '{scan_id}' in {path}: lines {first_line[scan_id]} and {line_no}"
            )
        first_line[scan_id] = line_no
        out.append((line_no, scan_id))
    return out
