"""Find the scans of a dataset, pair them with their masks and check them once, up front.

Two layouts are understood:

- :func:`discover_bids` -- a BIDS dataset such as the spinal cord gray-matter challenge data:
  images under ``sub-*/[ses-*/]anat/``, manual masks under
  ``derivatives/labels/<sub>/[ses-*/]anat/<image stem><suffix>.nii.gz`` and subject metadata in
  ``participants.tsv``.
- :func:`discover_folders` -- the original pediatric study's layout: one folder per ID with fixed
  file names (``<id>/mFFE_crop_r.nii.gz``, ``<id>/mFFE_crop_r_gmseg.nii.gz``), IDs listed in
  ``Controls.txt`` and second (lumbar) scans in ``<id>_second`` folders listed in
  ``Controls_second.txt``.

Both return a :class:`DatasetIndex`: the labelled :class:`Scan` records, the images without a
GM mask (candidates for a draft mask), the listed subjects without an image, and every warning
that was issued. Things that are merely absent (a listed subject without an image, an image without
a mask) are reported with a :class:`DatasetWarning`; things that are wrong (a mask on another voxel
grid, a mask that is not binary, a scan id seen twice) raise, before anything is written anywhere.

Nothing here writes files.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from pedgm_kit.exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    InputFileError,
    PedgmError,
)

__all__ = [
    "DatasetIndex",
    "DatasetWarning",
    "Scan",
    "discover_bids",
    "discover_folders",
    "mask_array",
    "read_id_list",
    "validate_scan",
]

#: Default tolerance (mm, element-wise, absolute) when comparing a mask's affine with its image's.
#: 1e-4 would be too strict for real data: the GM mask of gm-challenge ``sub-9604`` carries an
#: sform whose rotation terms differ from the image's quaternion-derived qform by 2.2e-4
#: (a 0.02 degree rotation, under 0.1 voxel across the whole field of view).
DEFAULT_AFFINE_ATOL = 1e-3

_NII_SUFFIXES = (".nii.gz", ".nii")
_CORE_COLUMNS = ("scan_id", "person_id", "image", "gm_mask", "cord_mask", "labelled")


class DatasetWarning(UserWarning):
    """Something listed or expected in a dataset is absent (reported, not fatal)."""


@dataclass(frozen=True)
class Scan:
    """One image of one person, with its masks and metadata.

    Parameters
    ----------
    scan_id : str
        Unique id of the scan within its dataset (BIDS: the image file name without ``.nii.gz``,
        e.g. ``sub-9418_run-1_T2starw``; folder layout: the folder name, e.g. ``92_second``).
    person_id : str
        Id of the person scanned; two scans of one person share it (``sub-9709`` for
        ``sub-9709Ses1`` and ``sub-9709Ses2``; ``92`` for ``92_second``). Splits group by it.
    image : pathlib.Path
        The image file.
    gm_mask : pathlib.Path or None, default None
        Manual gray-matter mask on the image's voxel grid; None for an unlabelled image.
    cord_mask : pathlib.Path or None, default None
        Manual spinal cord mask on the image's voxel grid, if there is one.
    metadata : dict, default {}
        Anything else known about the scan (BIDS entities ``subject``, ``session``, ``run``;
        ``participants.tsv`` columns such as ``Site``, ``sex``, ``age``; ``scan_number`` in the
        folder layout). A copy of the mapping passed in is kept.
    binarize_masks : bool, default False
        True when discovery was asked to accept non-binary masks: loaders must then threshold
        the masks at 0.5 (see :func:`mask_array`).
    """

    scan_id: str
    person_id: str
    image: Path
    gm_mask: Path | None = None
    cord_mask: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    binarize_masks: bool = False

    def __post_init__(self) -> None:
        if not self.scan_id or not self.person_id:
            raise PedgmError(
                f"a scan needs a non-empty scan_id and person_id; got scan_id={self.scan_id!r}, "
                f"person_id={self.person_id!r} for image {self.image}"
            )
        object.__setattr__(self, "image", Path(self.image))
        for name in ("gm_mask", "cord_mask"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def labelled(self) -> bool:
        """bool: whether the scan has a GM mask."""
        return self.gm_mask is not None


@dataclass(frozen=True)
class DatasetIndex:
    """What discovery found: labelled scans, unlabelled images, absent subjects, warnings.

    Parameters
    ----------
    scans : sequence of Scan
        The scans to work with (by default only those with a GM mask).
    unlabelled : sequence of Scan, default ()
        Images without a GM mask (e.g. the run-2 rescans of the gm-challenge data), candidates
        for a draft mask or for test-retest analyses.
    missing : sequence of str, default ()
        Listed subjects (``participants.tsv`` rows, IDs in ``Controls.txt``) without an image.
    warnings : sequence of str, default ()
        Every :class:`DatasetWarning` message issued during discovery, in order.
    root : pathlib.Path or None, default None
        The dataset's root folder.
    layout : str, default ""
        ``"bids"`` or ``"folders"``.

    Raises
    ------
    PedgmError
        If a scan id occurs twice among ``scans`` and ``unlabelled``.
    """

    scans: tuple[Scan, ...]
    unlabelled: tuple[Scan, ...] = ()
    missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    root: Path | None = None
    layout: str = ""

    def __post_init__(self) -> None:
        for name in ("scans", "unlabelled", "missing", "warnings"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        seen: dict[str, Scan] = {}
        for scan in self.scans + self.unlabelled:
            if scan.scan_id in seen and seen[scan.scan_id] is not scan:
                raise PedgmError(
                    f"duplicate scan id '{scan.scan_id}': {seen[scan.scan_id].image} and "
                    f"{scan.image}"
                )
            seen[scan.scan_id] = scan

    def __len__(self) -> int:
        return len(self.scans)

    def __iter__(self) -> Iterator[Scan]:
        return iter(self.scans)

    def __getitem__(self, scan_id: str) -> Scan:
        for scan in self.scans + self.unlabelled:
            if scan.scan_id == scan_id:
                return scan
        raise KeyError(f"no scan '{scan_id}' in this index (root {self.root})")

    def scan_ids(self) -> list[str]:
        """Ids of the scans, in index order.

        Returns
        -------
        list of str
        """
        return [scan.scan_id for scan in self.scans]

    def persons(self) -> dict[str, list[str]]:
        """Scan ids of each person, persons in order of first appearance.

        Returns
        -------
        dict of str to list of str
            ``{person_id: [scan_id, ...]}``; ``len(index.persons())`` is the number of persons.
        """
        out: dict[str, list[str]] = {}
        for scan in self.scans:
            out.setdefault(scan.person_id, []).append(scan.scan_id)
        return out

    def person_of(self) -> dict[str, str]:
        """Person id of every scan (labelled and unlabelled).

        Returns
        -------
        dict of str to str
            ``{scan_id: person_id}``.
        """
        return {scan.scan_id: scan.person_id for scan in self.scans + self.unlabelled}

    def subset(self, scan_ids: Iterable[str]) -> DatasetIndex:
        """A new index holding only the given scans (in the order given).

        Parameters
        ----------
        scan_ids : iterable of str
            Ids of labelled scans of this index, e.g. one split of
            :func:`pedgm_kit.splits.auto_split`.

        Returns
        -------
        DatasetIndex
            Same ``root``, ``layout``, ``missing`` and ``warnings``; no unlabelled scans.

        Raises
        ------
        PedgmError
            If an id is not a labelled scan of this index.
        """
        by_id = {scan.scan_id: scan for scan in self.scans}
        chosen = []
        for scan_id in scan_ids:
            if scan_id not in by_id:
                raise PedgmError(
                    f"scan '{scan_id}' is not a labelled scan of the index of {self.root} "
                    f"({len(by_id)} scans)"
                )
            chosen.append(by_id[scan_id])
        return DatasetIndex(
            scans=tuple(chosen), missing=self.missing, warnings=self.warnings,
            root=self.root, layout=self.layout,
        )

    def to_frame(self, *, include_unlabelled: bool = False) -> pd.DataFrame:
        """One row per scan: ids, file paths and metadata.

        Parameters
        ----------
        include_unlabelled : bool, default False
            Also list the images without a GM mask (their ``labelled`` column is False).

        Returns
        -------
        pandas.DataFrame
            Columns ``scan_id, person_id, image, gm_mask, cord_mask, labelled`` (paths as str,
            None where absent), then the metadata keys in order of first appearance. A metadata
            key that clashes with one of these names gets a ``meta_`` prefix.

        Examples
        --------
        >>> index = discover_bids("gm-challenge-data")  # doctest: +SKIP
        >>> index.to_frame()[["scan_id", "person_id", "Site"]]  # doctest: +SKIP
        """
        scans = self.scans + (self.unlabelled if include_unlabelled else ())
        rows = []
        for scan in scans:
            row: dict[str, Any] = {
                "scan_id": scan.scan_id,
                "person_id": scan.person_id,
                "image": str(scan.image),
                "gm_mask": None if scan.gm_mask is None else str(scan.gm_mask),
                "cord_mask": None if scan.cord_mask is None else str(scan.cord_mask),
                "labelled": scan.labelled,
            }
            for key, value in scan.metadata.items():
                row[f"meta_{key}" if key in _CORE_COLUMNS else key] = value
            rows.append(row)
        if not rows:
            return pd.DataFrame(columns=list(_CORE_COLUMNS))
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# BIDS layout
# --------------------------------------------------------------------------------------------


def discover_bids(
    root: str | Path,
    *,
    image_pattern: str = "*_T2starw.nii.gz",
    gm_suffix: str = "_gmseg-manual",
    cord_suffix: str | None = "_seg-manual",
    labels_dir: str = "derivatives/labels",
    labelled_runs_only: bool = True,
    person_strip_regex: str | None = r"Ses\d+$",
    validate: bool = True,
    binarize: bool = False,
    affine_atol: float = DEFAULT_AFFINE_ATOL,
) -> DatasetIndex:
    """Index a BIDS dataset: images, their manual masks and ``participants.tsv`` metadata.

    Images are looked for in ``<root>/sub-*/anat/`` and ``<root>/sub-*/ses-*/anat/``; the masks of
    image ``<stem>.nii.gz`` in the same relative folder under ``<root>/<labels_dir>/`` as
    ``<stem><gm_suffix>.nii.gz`` (or ``.nii``) and ``<stem><cord_suffix>.nii.gz``.

    Parameters
    ----------
    root : str or pathlib.Path
        The dataset folder (holding ``participants.tsv`` and the ``sub-*`` folders).
    image_pattern : str, default "*_T2starw.nii.gz"
        Glob pattern of the image files inside each ``anat`` folder.
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
            for image in sorted(p for p in anat.glob(image_pattern) if p.is_file()):
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
                if gm is None:
                    unlabelled.append(scan)
                    if not labelled_runs_only:
                        labelled.append(scan)
                else:
                    labelled.append(scan)

    listed = list(participants) + [d.name for d in subject_dirs if d.name not in participants]
    missing = [s for s in listed if s not in subjects_with_image]
    if missing:
        source = f"participants.tsv of {root}" if participants else f"{root}"
        report.add(
            f"{len(missing)} subject(s) listed in {source} have no image matching "
            f"'{image_pattern}' and are skipped: {', '.join(missing)}"
        )
    if unlabelled:
        where = "kept in 'unlabelled' only" if labelled_runs_only else "kept without a GM mask"
        report.add(
            f"{len(unlabelled)} image(s) have no GM mask '<image stem>{gm_suffix}.nii.gz' under "
            f"{labels_root} ({where}): {', '.join(s.scan_id for s in unlabelled)}"
        )
    orphans = _orphan_masks(labels_root, gm_suffix, matched_masks)
    if orphans:
        report.add(
            f"{len(orphans)} GM mask(s) under {labels_root} have no image matching "
            f"'{image_pattern}': {', '.join(str(p.relative_to(root)) for p in orphans)}"
        )

    index = DatasetIndex(
        scans=tuple(labelled), unlabelled=tuple(unlabelled), missing=tuple(missing),
        warnings=tuple(report.messages), root=root, layout="bids",
    )
    if validate:
        _validate_index(index, binarize=binarize, affine_atol=affine_atol)
    return index


# --------------------------------------------------------------------------------------------
# Folder layout of the original study
# --------------------------------------------------------------------------------------------


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
    affine_atol: float = DEFAULT_AFFINE_ATOL,
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
        if scan.gm_mask is None:
            unlabelled.append(scan)
            if not labelled_runs_only:
                labelled.append(scan)
        else:
            labelled.append(scan)

    if missing:
        report.add(
            f"{len(missing)} listed ID(s) have no '{image_name}' under {root} and are skipped: "
            f"{', '.join(missing)}"
        )
    if unlabelled:
        report.add(
            f"{len(unlabelled)} scan(s) under {root} have no GM mask '{gm_name}': "
            f"{', '.join(s.scan_id for s in unlabelled)}"
        )
    index = DatasetIndex(
        scans=tuple(labelled), unlabelled=tuple(unlabelled), missing=tuple(missing),
        warnings=tuple(report.messages), root=root, layout="folders",
    )
    if validate:
        _validate_index(index, binarize=binarize, affine_atol=affine_atol)
    return index


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


# --------------------------------------------------------------------------------------------
# Validation and mask loading
# --------------------------------------------------------------------------------------------


def validate_scan(
    scan: Scan, *, binarize: bool | None = None, affine_atol: float = DEFAULT_AFFINE_ATOL
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
    image = _load(scan.image, scan.scan_id)
    shape = _shape3(image.shape)
    if shape is None:
        raise DimensionError(
            f"{scan.scan_id}: image {scan.image} must be 3-D, got shape {image.shape}"
        )
    for kind, path in (("GM", scan.gm_mask), ("cord", scan.cord_mask)):
        if path is None:
            continue
        mask = _load(path, scan.scan_id)
        if _shape3(mask.shape) != shape:
            raise GridMismatchError(
                f"{scan.scan_id}: {kind} mask {path} has shape {mask.shape}, but its image "
                f"{scan.image} has shape {image.shape}"
            )
        if not np.allclose(mask.affine, image.affine, rtol=0.0, atol=affine_atol):
            diff = float(np.max(np.abs(mask.affine - image.affine)))
            raise GridMismatchError(
                f"{scan.scan_id}: {kind} mask {path} has affine {_fmt_affine(mask.affine)}, but "
                f"its image {scan.image} has affine {_fmt_affine(image.affine)} (largest "
                f"difference {diff:.3g} mm > affine_atol={affine_atol:g})"
            )
        if not binarize:
            data = _read_data(mask, path, scan.scan_id)
            _check_binary(data, path, scan.scan_id, kind)


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
    data = _read_data(_load(path, scan.scan_id), path, scan.scan_id)
    if scan.binarize_masks:
        with np.errstate(invalid="ignore"):
            return (data >= 0.5).astype(np.uint8)
    _check_binary(data, path, scan.scan_id, which.upper() if which == "gm" else which)
    return (data == 1).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Private helpers
# --------------------------------------------------------------------------------------------


class _Report:
    """Collects report messages and issues each as a DatasetWarning."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)
        # stacklevel 3 points at the caller of discover_*: add <- discover_* <- caller
        warnings.warn(message, DatasetWarning, stacklevel=3)


def _validate_index(index: DatasetIndex, *, binarize: bool, affine_atol: float) -> None:
    done: set[str] = set()
    for scan in index.scans + index.unlabelled:
        if scan.scan_id not in done:
            validate_scan(scan, binarize=binarize, affine_atol=affine_atol)
            done.add(scan.scan_id)


def _as_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputFileError(f"{what} {path} is not a folder (exists: {path.exists()})")
    return path


def _resolve(root: Path, path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else root / path


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


def _normalise_id(value: Any) -> str:
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
        scan_id = _normalise_id(text)
        if scan_id in first_line:
            raise PedgmError(
                f"duplicate ID '{scan_id}' in {path}: lines {first_line[scan_id]} and {line_no}"
            )
        first_line[scan_id] = line_no
        out.append((line_no, scan_id))
    return out


def _load(path: Path, scan_id: str) -> nib.spatialimages.SpatialImage:
    try:
        return nib.load(path)
    except FileNotFoundError as err:
        raise InputFileError(f"{scan_id}: no such file or no access: '{path}'") from err
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError,
            zlib.error) as err:
        raise InputFileError(f"{scan_id}: cannot read image {path}: {err}") from err


def _read_data(img: nib.spatialimages.SpatialImage, path: Path, scan_id: str) -> np.ndarray:
    try:
        return np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise InputFileError(f"{scan_id}: cannot read the data of {path}: {err}") from err


def _check_binary(data: np.ndarray, path: Path, scan_id: str, kind: str) -> None:
    ok = (data == 0) | (data == 1)
    if not ok.all():
        bad = np.unique(data[~ok])
        shown = ", ".join(f"{v:g}" for v in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise ImageContentError(
            f"{scan_id}: {kind} mask {path} must hold only 0 and 1, but {int((~ok).sum())} "
            f"voxel(s) hold other values ({shown}); pass binarize=True to threshold masks at "
            "0.5 when they are loaded"
        )


def _shape3(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """A 3-D shape, also for 4-D images with one volume (as pedgm_kit.io accepts); else None."""
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    return tuple(shape) if len(shape) == 3 else None


def _fmt_affine(affine: np.ndarray) -> str:
    rows = ("[" + " ".join(f"{v:.5g}" for v in row) + "]" for row in np.asarray(affine)[:3])
    return "[" + " ".join(rows) + "]"
