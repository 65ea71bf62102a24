"""Notebook 02's split: cross-validation folds, a spreadsheet's split or an automatic one, checked.

:func:`choose_splits` takes notebook 02's parameters and returns a :class:`SplitChoice`: the folds
(one split unless cross-validation), where each fold's arrays go and the scans a spreadsheet named
that were not preprocessed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..exceptions import PedgmError
from ..layout import fold_dir
from .auto import auto_split, kfold_split
from .describe import check_person_grouping
from .sheet import read_split_sheet

__all__ = ["SplitChoice", "choose_splits"]


@dataclass
class SplitChoice:
    """The folds of notebook 02 (one split unless ``cv``) and the spreadsheet scans skipped."""

    folds: list[dict[str, list[str]]]
    cv: bool
    how: str
    skipped: list[str] = field(default_factory=list)

    @property
    def splits(self) -> dict[str, list[str]]:
        """The first fold (the one split without cross-validation)."""
        return self.folds[0]

    def data_dirs(self, arrays_dir: str | os.PathLike) -> list[Path]:
        """Where each fold's arrays go: ``<arrays_dir>/fold-<k>`` under cross-validation, else ``arrays_dir``."""
        return [fold_dir(arrays_dir, k) for k in range(1, len(self.folds) + 1)] if self.cv else [Path(arrays_dir)]

    def describe(self) -> str:
        """How the scans were split, and the spreadsheet scans skipped (they were not preprocessed)."""
        line = {"cv": f"{len(self.folds)}-fold person-grouped cross-validation", "spreadsheet": "the spreadsheet's split",
                "automatic": "an automatic person-grouped split"}.get(self.how, self.how)
        if self.skipped:
            line += (f"\nnote: {len(self.skipped)} scans in the spreadsheet were not preprocessed and are skipped: "
                     f"{self.skipped}")
        return line

    def counts(self) -> pd.DataFrame:
        """Scans per split, one row per fold."""
        return pd.DataFrame([{name: len(ids) for name, ids in fold.items()} for fold in self.folds],
                            index=[f"fold {i + 1}" for i in range(len(self.folds))] if self.cv else ["split"])


def choose_splits(frame: pd.DataFrame, *, cv_folds: int = 0, val_fraction: float = 0.25, split_sheet: str = "",
                  split_sheet_name: str = "DTI_Normal_Level", ids_file: str = "", second_ids_file: str = "",
                  fractions: Sequence[float] = (0.6, 0.2, 0.2), balance_on: str = "", seed: int = 0) -> SplitChoice:
    """Split notebook 01's scans by person, the way notebook 02's parameters ask.

    ``cv_folds`` >= 2: person-grouped k-fold cross-validation (:func:`kfold_split`, ``val_fraction`` of
    each fold's other scans for validation); else ``split_sheet``: the spreadsheet's split
    (:func:`read_split_sheet`; its scans that were not preprocessed are skipped and listed); else an
    automatic split by ``fractions`` (:func:`auto_split`). ``balance_on`` "" balances nothing. Every
    fold is checked for person grouping, and under cross-validation every scan is tested exactly once.

    Parameters
    ----------
    frame : pandas.DataFrame
        Notebook 01's ``index.csv`` (``scan_id``, ``person_id`` and any column to balance).

    Returns
    -------
    SplitChoice

    Raises
    ------
    PedgmError
        A person in two splits, or a cross-validation that does not test every scan once.

    Examples
    --------
    >>> frame = pd.DataFrame({"scan_id": list("abcdef"), "person_id": list("abcdef")})
    >>> choose_splits(frame, cv_folds=3).counts()["test"].tolist()
    [2, 2, 2]
    """
    person_of = dict(zip(frame["scan_id"], frame["person_id"]))
    balance = balance_on or None
    skipped: list[str] = []
    if cv_folds:
        folds, how = kfold_split(frame, k=cv_folds, val_fraction=val_fraction, balance_on=balance, seed=seed), "cv"
    elif split_sheet:
        sheet = read_split_sheet(split_sheet, sheet=split_sheet_name,
                                 ids_file=ids_file or None, second_ids_file=second_ids_file or None)
        known = set(frame["scan_id"])
        skipped = sorted(s for ids in sheet.values() for s in ids if s not in known)
        folds, how = [{name: [s for s in ids if s in known] for name, ids in sheet.items()}], "spreadsheet"
    else:
        folds, how = [auto_split(frame, fractions=fractions, balance_on=balance, seed=seed)], "automatic"
    for fold in folds:
        check_person_grouping(fold, person_of)
    if cv_folds and sorted(s for fold in folds for s in fold["test"]) != sorted(frame["scan_id"]):
        raise PedgmError("cross-validation folds do not test every scan exactly once")
    return SplitChoice(folds=folds, cv=bool(cv_folds), how=how, skipped=skipped)
