"""The records discovery returns: :class:`Scan`, :class:`DatasetIndex`, :class:`DatasetWarning`."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import PedgmError

__all__ = ["DatasetIndex", "DatasetWarning", "Scan"]

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


class _Report:
    """Collects report messages and issues each as a DatasetWarning."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)
        # stacklevel 3 points at the caller of discover_*: add <- discover_* <- caller
        warnings.warn(message, DatasetWarning, stacklevel=3)
