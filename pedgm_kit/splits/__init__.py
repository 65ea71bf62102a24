"""Train / validation / test splits, grouped by person.

- :func:`read_split_sheet` reads a split chosen by hand, such as the original study's
  ``Subject_ID_Level_Split.xlsx`` (sheet ``DTI_Normal_Level``, columns Training / Val / Testing),
  and turns its subject IDs into scan ids of the folder layout (``<id>``, ``<id>_second``).
- :func:`read_level_sheet` reads the same sheet's per-ID cord-region codes (UC MC LC UT MT LT),
  to balance an automatic split on them.
- :func:`auto_split` makes a seeded split that never puts two scans of one person in different
  splits and balances a category column (region code, site) as well as it can.
- :func:`split_table`, :func:`plot_split_counts` and :func:`check_person_grouping` describe and
  check a split.
- :func:`hold_out_locked` removes a locked test set (``data: locked_test_persons``) before any split
  (:mod:`pedgm_kit.splits.locked`).

A split is a ``dict`` ``{split name: [scan id, ...]}``, in the order train, val, test.
"""

from __future__ import annotations

from .auto import auto_split, kfold_split, nested_person_subsets
from .choose import SplitChoice, choose_splits
from .describe import check_person_grouping, plot_split_counts, split_table
from .locked import LOCKED_KEY, choose_locked_persons, hold_out_locked, locked_problems
from .sheet import (
    DEFAULT_SPLIT_COLUMNS,
    REGION_CODES,
    read_level_sheet,
    read_split_sheet,
)

__all__ = [
    "SplitChoice",
    "choose_splits",
    "DEFAULT_SPLIT_COLUMNS",
    "LOCKED_KEY",
    "choose_locked_persons",
    "hold_out_locked",
    "locked_problems",
    "REGION_CODES",
    "auto_split",
    "kfold_split",
    "nested_person_subsets",
    "check_person_grouping",
    "plot_split_counts",
    "read_level_sheet",
    "read_split_sheet",
    "split_table",
]
