"""Review decisions on draft masks (accepted / needs correction), kept in a CSV replaced atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .._utils import atomic_path
from ..exceptions import InputFileError
from ..io import check_choice

__all__ = ["REVIEW_STATUSES", "ReviewLog"]

REVIEW_STATUSES: tuple[str, ...] = ("needs review", "accepted", "needs correction", "corrected")
"""Allowed values of the ``status`` column of a :class:`ReviewLog`."""


class ReviewLog:
    """Accepted / needs-correction decisions on draft masks, kept in a CSV.

    The CSV has one row per scan with columns ``scan_id``, ``status`` (one of
    :data:`REVIEW_STATUSES`), ``note`` and ``reviewed_at`` (UTC, ISO 8601); other columns of an
    existing file (notebook 01's ``review.csv`` has ``image`` and ``draft``) are kept. Every change
    rewrites the whole file to a temporary name in the same folder and renames it into place, so
    the file on disk is always complete (the old version or the new one).

    Parameters
    ----------
    path : path-like
        The CSV. Read if it exists; otherwise created on the first :meth:`mark` or :meth:`save`.
    scan_ids : sequence of str, optional
        Scans to list; those not yet in the file get status ``"needs review"`` (in memory until
        the next write).

    Raises
    ------
    InputFileError
        The folder does not exist, or the file cannot be read, lacks a ``scan_id`` column, lists a
        scan twice or holds an unknown status.

    Examples
    --------
    >>> log = ReviewLog("outputs/run/drafts/review.csv", scan_ids=["sub-01"])  # doctest: +SKIP
    >>> log.mark("sub-01", "accepted", note="horn tips fine")  # doctest: +SKIP
    """

    COLUMNS = ("scan_id", "status", "note", "reviewed_at")

    def __init__(self, path: str | os.PathLike, *, scan_ids: Sequence[str] | None = None):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputFileError(f"Review log folder does not exist: '{self.path.parent}' (for '{self.path}')")
        if self.path.exists():
            try:
                frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
            except (OSError, ValueError, pd.errors.ParserError) as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise InputFileError(f"Cannot read review log '{self.path}': {reason}") from None
            if "scan_id" not in frame.columns:
                raise InputFileError(f"Review log '{self.path}' has no scan_id column; columns: {list(frame.columns)}")
            dup = frame["scan_id"][frame["scan_id"].duplicated()].tolist()
            if dup:
                raise InputFileError(f"Review log '{self.path}' lists scan '{dup[0]}' twice")
            for col in self.COLUMNS:
                if col not in frame.columns:
                    frame[col] = "needs review" if col == "status" else ""
            bad = frame.loc[~frame["status"].isin(REVIEW_STATUSES), ["scan_id", "status"]]
            if len(bad):
                sid, status = bad.iloc[0]
                raise InputFileError(
                    f"Review log '{self.path}': scan '{sid}' has status {status!r}; expected one of "
                    f"{', '.join(REVIEW_STATUSES)}"
                )
        else:
            frame = pd.DataFrame({c: pd.Series(dtype=str) for c in self.COLUMNS})
        self._frame = frame.reset_index(drop=True)
        self.add(scan_ids or ())

    def add(self, scan_ids: Sequence[str]) -> None:
        """List scans not yet in the log, with status ``"needs review"`` (nothing is written)."""
        new = [str(s) for s in dict.fromkeys(scan_ids) if str(s) not in set(self._frame["scan_id"])]
        if new:
            rows = pd.DataFrame({c: [""] * len(new) for c in self._frame.columns})
            rows["scan_id"] = new
            rows["status"] = "needs review"
            self._frame = pd.concat([self._frame, rows], ignore_index=True)

    def status(self, scan_id: str) -> str:
        """Status of a scan (``"needs review"`` for a scan not in the log)."""
        hit = self._frame.loc[self._frame["scan_id"] == str(scan_id), "status"]
        return str(hit.iloc[0]) if len(hit) else "needs review"

    def mark(self, scan_id: str, status: str, *, note: str = "") -> Path:
        """Record a decision and rewrite the CSV atomically.

        Parameters
        ----------
        scan_id : str
            The scan (added to the log if absent).
        status : {"needs review", "accepted", "needs correction"}
        note : str, default ""
            Free text, e.g. what needs correcting.

        Returns
        -------
        pathlib.Path
            The CSV written.

        Raises
        ------
        ParameterError
            Unknown status.
        """
        check_choice(status, REVIEW_STATUSES, name="status")
        self.add([scan_id])
        row = self._frame.index[self._frame["scan_id"] == str(scan_id)][0]
        self._frame.loc[row, "status"] = status
        self._frame.loc[row, "note"] = str(note)
        self._frame.loc[row, "reviewed_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return self.save()

    def to_frame(self) -> pd.DataFrame:
        """A copy of the log as a DataFrame (all columns are strings)."""
        return self._frame.copy()

    def save(self) -> Path:
        """Write the CSV to a temporary file beside it and rename it into place.

        Returns
        -------
        pathlib.Path
        """
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            self._frame.to_csv(handle, index=False)
            handle.flush()
            os.fsync(handle.fileno())
        return self.path
