"""Discovery of a BIDS dataset (images, manual masks under derivatives, participants.tsv)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import InputFileError, PedgmError
from ..io import AFFINE_ATOL_MM
from ._checks import _as_dir, file_scan, finish_index
from ._records import DatasetIndex, Scan, _Report

__all__ = ["IMAGE_PATTERN", "anat_images", "discover_bids"]

_NII_SUFFIXES = (".nii.gz", ".nii")

#: The images of a BIDS dataset: T2*-weighted scans, compressed (``.nii.gz``) or not (``.nii``).
IMAGE_PATTERN = "*_T2starw.nii*"


def anat_images(anat: Path, pattern: str = IMAGE_PATTERN, *, dangling: bool = False) -> list[Path]:
    """The NIfTI files (``.nii``, ``.nii.gz``) in one ``anat`` folder matching ``pattern``, sorted.

    ``dangling`` also lists links that point nowhere (so a caller can report them, not drop them).
    """
    return sorted(p for p in anat.glob(pattern) if p.name.endswith(_NII_SUFFIXES)
                  and (p.is_file() or (dangling and p.is_symlink() and not p.exists())))


def discover_bids(
    root: str | Path,
    *,
    image_pattern: str = IMAGE_PATTERN,
    gm_suffix: str = "_gmseg-manual",
    cord_suffix: str | None = "_seg-manual",
    labels_dir: str = "derivatives/labels",
    labelled_runs_only: bool = True,
    person_strip_regex: str | None = r"Ses\d+$",
    validate: bool = True,
    binarize: bool = False,
    affine_atol: float = AFFINE_ATOL_MM,
) -> DatasetIndex:
    """Index a BIDS dataset: images, their manual masks and ``participants.tsv`` metadata.

    Images are looked for in ``<root>/sub-*/anat/`` and ``<root>/sub-*/ses-*/anat/``; the masks of
    image ``<stem>.nii.gz`` in the same relative folder under ``<root>/<labels_dir>/`` as
    ``<stem><gm_suffix>.nii.gz`` (or ``.nii``) and ``<stem><cord_suffix>.nii.gz``.

    Parameters
    ----------
    root : str or pathlib.Path
        The dataset folder (holding ``participants.tsv`` and the ``sub-*`` folders).
    image_pattern : str, default "*_T2starw.nii*"
        Glob pattern of the image files inside each ``anat`` folder; only ``.nii`` and ``.nii.gz``
        files count. Links that point nowhere are skipped with a warning.
    gm_suffix : str, default "_gmseg-manual"
        Appended to the image stem to name its GM mask.
    cord_suffix : str or None, default "_seg-manual"
        Appended to the image stem to name its cord mask; None to ignore cord masks.
    labels_dir : str, default "derivatives/labels"
        Folder of the masks, relative to ``root``.
    labelled_runs_only : bool, default True
        If True, images without a GM mask (in the gm-challenge data: the run-2 rescans) are kept
        out of ``scans`` and listed in ``unlabelled`` only. If False they are also in ``scans``
        (with ``gm_mask=None``), e.g. to segment a dataset that has no masks.
    person_strip_regex : str or None, default r"Ses\\d+$"
        Removed (``re.sub``) from the subject label to get the person id, so that
        ``sub-9709Ses1`` and ``sub-9709Ses2`` are one person ``sub-9709``. BIDS ``ses-*`` folders
        are sessions of their ``sub-*`` subject anyway. None: person id = subject label.
    validate : bool, default True
        Load every image header and every mask once, now, and raise on a bad one (see Raises),
        so that bad data fails before any output is written.
    binarize : bool, default False
        Accept masks holding values other than 0 and 1; such masks are thresholded at 0.5 when
        loaded (:func:`mask_array`; ``Scan.binarize_masks`` is set). Grid checks still apply.
    affine_atol : float, default 1e-3
        Largest element-wise difference (mm) allowed between a mask's affine and its image's.

    Returns
    -------
    DatasetIndex
        ``layout="bids"``. Scan metadata: ``subject``, ``session`` and ``run`` (when present in
        the file name) and the subject's ``participants.tsv`` columns (``n/a`` becomes None).

    Raises
    ------
    InputFileError
        If ``root`` is not a folder, or an image or mask cannot be read.
    GridMismatchError
        If a mask's shape or affine differs from its image's.
    ImageContentError
        If a mask holds values other than 0 and 1 (and ``binarize`` is False).
    DimensionError
        If an image is not 3-D.
    PedgmError
        If two images give the same scan id, or a subject label leaves an empty person id.

    Warns
    -----
    DatasetWarning
        Once per kind of absence: ``participants.tsv`` rows (or ``sub-*`` folders) without an
        image, images without a GM mask, masks without an image. Each message is also kept in
        ``DatasetIndex.warnings``.

    Examples
    --------
    >>> index = discover_bids("samples/gm-challenge-data")  # doctest: +SKIP
    >>> len(index), len(index.persons()), len(index.unlabelled)  # doctest: +SKIP
    (8, 6, 8)
    """
    root = _as_dir(root, "BIDS dataset root")
    labels_root = root / labels_dir
    report = _Report()
    participants = _read_participants(root / "participants.tsv")

    labelled: list[Scan] = []
    unlabelled: list[Scan] = []
    subjects_with_image: set[str] = set()
    subject_dirs = sorted(p for p in root.glob("sub-*") if p.is_dir())
    matched_masks: set[Path] = set()
    dangling: list[Path] = []
    for sub_dir in subject_dirs:
        subject = sub_dir.name
        person = re.sub(person_strip_regex, "", subject) if person_strip_regex else subject
        if not person:
            raise PedgmError(
                f"subject '{subject}' ({sub_dir}): person_strip_regex={person_strip_regex!r} "
                "leaves an empty person id"
            )
        anat_dirs = [sub_dir / "anat", *sorted(sub_dir.glob("ses-*/anat"))]
        for anat in anat_dirs:
            if not anat.is_dir():
                continue
            for image in anat_images(anat, image_pattern, dangling=True):
                if not image.is_file():
                    dangling.append(image)
                    continue
                stem = _nii_stem(image)
                label_dir = labels_root / anat.relative_to(root)
                gm = _find_nifti(label_dir, stem + gm_suffix)
                cord = _find_nifti(label_dir, stem + cord_suffix) if cord_suffix else None
                matched_masks.update(p for p in (gm, cord) if p is not None)
                metadata = {"subject": subject, **_bids_entities(stem)}
                metadata.update(participants.get(subject, {}))
                scan = Scan(
                    scan_id=stem, person_id=person, image=image, gm_mask=gm, cord_mask=cord,
                    metadata=metadata, binarize_masks=binarize,
                )
                subjects_with_image.add(subject)
                file_scan(scan, labelled, unlabelled, labelled_runs_only=labelled_runs_only)

    if dangling:
        report.add(f"{len(dangling)} image link(s) point nowhere and are skipped: "
                   f"{', '.join(str(p.relative_to(root)) for p in dangling)}")
    listed = list(participants) + [d.name for d in subject_dirs if d.name not in participants]
    missing = [s for s in listed if s not in subjects_with_image]
    if missing:
        source = f"participants.tsv of {root}" if participants else f"{root}"
        report.add(
            f"{len(missing)} subject(s) listed in {source} have no image matching "
            f"'{image_pattern}' and are skipped: {', '.join(missing)}"
        )
    orphans = _orphan_masks(labels_root, gm_suffix, matched_masks)
    if orphans:
        report.add(
            f"{len(orphans)} GM mask(s) under {labels_root} have no image matching "
            f"'{image_pattern}': {', '.join(str(p.relative_to(root)) for p in orphans)}"
        )

    where = "kept in 'unlabelled' only" if labelled_runs_only else "kept without a GM mask"
    return finish_index(
        report, labelled=labelled, unlabelled=unlabelled, missing=missing, root=root, layout="bids",
        unlabelled_note=f"image(s) have no GM mask '<image stem>{gm_suffix}.nii.gz' under {labels_root} ({where})",
        validate=validate, binarize=binarize, affine_atol=affine_atol,
    )


def _nii_stem(path: Path) -> str:
    name = path.name
    for suffix in _NII_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in _NII_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _bids_entities(stem: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in stem.split("_"):
        key, sep, value = part.partition("-")
        if not sep:
            continue
        if key == "ses":
            out["session"] = value
        elif key == "run":
            out["run"] = int(value) if value.isdigit() else value
    return out


def _orphan_masks(labels_root: Path, gm_suffix: str, matched: set[Path]) -> list[Path]:
    if not labels_root.is_dir():
        return []
    found = []
    for suffix in _NII_SUFFIXES:
        found.extend(labels_root.glob(f"sub-*/**/*{gm_suffix}{suffix}"))
    return sorted(p for p in found if p not in matched)


def _read_participants(path: Path) -> dict[str, dict[str, Any]]:
    """participants.tsv rows as {participant_id: {column: value}}; {} if there is no file."""
    if not path.is_file():
        return {}
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputFileError(f"cannot read participants file {path}: {err}") from err
    if "participant_id" not in table.columns:
        raise InputFileError(
            f"participants file {path} has no 'participant_id' column; columns: "
            f"{list(table.columns)}"
        )
    out: dict[str, dict[str, Any]] = {}
    for record in table.to_dict(orient="records"):
        pid = str(record.pop("participant_id")).strip()
        out[pid] = {str(k): _plain(v) for k, v in record.items()}
    return out


def _plain(value: Any) -> Any:
    """numpy scalars to Python values, NaN to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
