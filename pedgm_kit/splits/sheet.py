"""Splits chosen by hand: the original study's split spreadsheet and its cord-region codes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from ..datasets import read_id_list
from ..datasets.folders import normalise_id
from ..exceptions import InputFileError, PedgmError

__all__ = ["DEFAULT_SPLIT_COLUMNS", "REGION_CODES", "read_level_sheet", "read_split_sheet"]

#: Split name -> column of the original study's split sheet.
DEFAULT_SPLIT_COLUMNS: Mapping[str, str] = MappingProxyType(
    {"train": "Training", "val": "Val", "test": "Testing"}
)
#: Cord-region codes of the original sheet, cranial to caudal: upper/mid/lower cervical and
#: upper/mid/lower thoracic.
REGION_CODES = ("UC", "MC", "LC", "UT", "MT", "LT")


def read_split_sheet(
    path: str | Path,
    *,
    sheet: str = "DTI_Normal_Level",
    columns: Mapping[str, str] = DEFAULT_SPLIT_COLUMNS,
    ids_file: str | Path | None = None,
    second_ids_file: str | Path | None = None,
    second_suffix: str = "_second",
) -> dict[str, list[str]]:
    """Read a hand-made split (subject IDs per split column) as scan ids.

    Each split column lists subject IDs. How an ID becomes scan ids (the original study's rule):

    - an ID listed once is the person's first scan ``<id>``, or ``<id>_second`` when the person
      has only a second scan (in ``second_ids_file`` but not in ``ids_file``);
    - an ID listed twice in one column means both scans of that person, ``<id>`` and
      ``<id>_second``;
    - an ID already written as ``<id>_second`` is taken as it is.

    Without ID files every person is assumed to have a first scan and, when listed twice, a
    second one. Once an ID file is given, the files given are the whole truth: with only
    ``ids_file`` there are no second scans, with only ``second_ids_file`` no first scans.

    Parameters
    ----------
    path : str or pathlib.Path
        ``.xlsx``/``.xls`` (read with openpyxl through pandas), ``.tsv`` or ``.csv``; the first row
        holds the column names.
    sheet : str, default "DTI_Normal_Level"
        Worksheet of an Excel file (ignored for text files).
    columns : mapping of str to str, default {"train": "Training", "val": "Val", "test": "Testing"}
        Split name -> column name; the result has the splits in this order. Column names are
        matched after stripping surrounding spaces.
    ids_file : str, pathlib.Path or None, default None
        First-scan ID list (``Controls.txt``), see :func:`pedgm_kit.datasets.read_id_list`.
    second_ids_file : str, pathlib.Path or None, default None
        Second-scan ID list (``Controls_second.txt``).
    second_suffix : str, default "_second"
        Suffix of second-scan ids.

    Returns
    -------
    dict of str to list of str
        ``{split name: [scan id, ...]}`` in sheet order. IDs in the ID files but in no split
        column (ID 37 of the original study) are simply absent.

    Raises
    ------
    InputFileError
        If the file, the sheet or a column is absent, or the file type is not supported.
    PedgmError
        If an ID is in none of the ID files, is listed more often than the person has scans,
        appears in two split columns, or is not a whole number.

    Examples
    --------
    >>> splits = read_split_sheet("Subject_ID_Level_Split.xlsx", ids_file="Controls.txt",
    ...                           second_ids_file="Controls_second.txt")  # doctest: +SKIP
    >>> {name: len(ids) for name, ids in splits.items()}  # doctest: +SKIP
    {'train': 41, 'val': 13, 'test': 14}
    """
    path = Path(path)
    table = _read_table(path, sheet=sheet)
    firsts = set(read_id_list(ids_file)) if ids_file is not None else None
    seconds = set(read_id_list(second_ids_file)) if second_ids_file is not None else None
    found = {str(c).strip(): c for c in table.columns}

    splits: dict[str, list[str]] = {}
    listed_in: dict[str, str] = {}  # person id -> column it is listed in
    where = f"{path}" + (f" (sheet '{sheet}')" if _is_excel(path) else "")
    for name, column in columns.items():
        if column.strip() not in found:
            raise InputFileError(
                f"split column '{column}' (for '{name}') not found in {where}; columns: "
                f"{[str(c) for c in table.columns]}"
            )
        values = table[found[column.strip()]].dropna()
        ids: list[str] = []
        occurrences: dict[str, int] = {}
        for value in values:
            raw = normalise_id(value)
            if raw == "":
                continue
            if raw.endswith(second_suffix):
                person = raw[: -len(second_suffix)]
                known = _scan_candidates(person, firsts, seconds, second_suffix)
                candidates = [raw] if raw in known else []
                if not candidates:
                    raise PedgmError(
                        f"'{raw}' in column '{column}' of {where}: ID '{person}' is not in "
                        f"the second-scan list {second_ids_file}"
                    )
            else:
                person = raw
                candidates = _scan_candidates(raw, firsts, seconds, second_suffix)
                if not candidates:
                    raise PedgmError(
                        f"ID '{raw}' in column '{column}' of {where} is in neither "
                        f"{ids_file} nor {second_ids_file}"
                    )
            if listed_in.get(person, column) != column:
                raise PedgmError(
                    f"ID '{person}' of {where} is listed in two split columns: "
                    f"'{listed_in[person]}' and '{column}'"
                )
            listed_in[person] = column
            k = occurrences.get(raw, 0)
            occurrences[raw] = k + 1
            if k >= len(candidates):
                raise PedgmError(
                    f"ID '{raw}' is listed {k + 1} times in column '{column}' of {where}, but "
                    f"the person has {len(candidates)} scan(s): {', '.join(candidates)}"
                )
            scan_id = candidates[k]
            if scan_id in ids:
                raise PedgmError(
                    f"scan '{scan_id}' is listed twice in column '{column}' of {where}"
                )
            ids.append(scan_id)
        splits[name] = ids
    return splits


def read_level_sheet(
    path: str | Path,
    *,
    sheet: str = "DTI_Normal_Level",
    id_column: str = "ID",
    level_column: str = "Cord Count",
) -> pd.DataFrame:
    """Read the cord regions covered per subject from the original study's level sheet.

    Parameters
    ----------
    path : str or pathlib.Path
        ``.xlsx``/``.xls``, ``.tsv`` or ``.csv`` file.
    sheet : str, default "DTI_Normal_Level"
        Worksheet of an Excel file.
    id_column : str, default "ID"
        Column of subject IDs.
    level_column : str, default "Cord Count"
        Column of comma-separated region codes (e.g. ``"MC, LC, UT"``).

    Returns
    -------
    pandas.DataFrame
        One row per ID: ``person_id`` (str), ``levels`` (the codes joined by ``", "``, a usable
        ``balance_on`` category), ``main_region`` (the first code: the most cranial region
        covered) and one boolean column per code of :data:`REGION_CODES`. Merge it with
        ``DatasetIndex.to_frame()`` on ``person_id`` to balance an :func:`auto_split` on it.

    Raises
    ------
    InputFileError
        If the file, sheet or a column is absent.
    PedgmError
        If an ID is listed twice or a code is not one of :data:`REGION_CODES`.
    """
    path = Path(path)
    table = _read_table(path, sheet=sheet)
    found = {str(c).strip(): c for c in table.columns}
    for column in (id_column, level_column):
        if column.strip() not in found:
            raise InputFileError(
                f"column '{column}' not found in {path}; columns: {[str(c) for c in table.columns]}"
            )
    rows = []
    seen: set[str] = set()
    sub = table[[found[id_column.strip()], found[level_column.strip()]]].dropna(how="all")
    for ident, levels in sub.itertuples(index=False):
        if pd.isna(ident):
            continue
        person = normalise_id(ident)
        if person in seen:
            raise PedgmError(f"ID '{person}' is listed twice in column '{id_column}' of {path}")
        seen.add(person)
        codes = [] if pd.isna(levels) else [c.strip() for c in str(levels).split(",") if c.strip()]
        unknown = [c for c in codes if c not in REGION_CODES]
        if unknown:
            raise PedgmError(
                f"ID '{person}' in {path}: region code(s) {unknown} not in {list(REGION_CODES)}"
            )
        row: dict[str, Any] = {
            "person_id": person,
            "levels": ", ".join(codes) if codes else None,
            "main_region": codes[0] if codes else None,
        }
        row.update({code: code in codes for code in REGION_CODES})
        rows.append(row)
    return pd.DataFrame(rows, columns=["person_id", "levels", "main_region", *REGION_CODES])


def _scan_candidates(
    ident: str, firsts: set[str] | None, seconds: set[str] | None, suffix: str
) -> list[str]:
    """Scan ids of a person, first scan first.

    Without ID files both scans are assumed to exist; once one file is given, the files are
    the whole truth (an absent file lists no scans).
    """
    if firsts is None and seconds is None:
        return [ident, f"{ident}{suffix}"]
    out = []
    if firsts is not None and ident in firsts:
        out.append(ident)
    if seconds is not None and ident in seconds:
        out.append(f"{ident}{suffix}")
    return out


def _is_excel(path: Path) -> bool:
    return path.suffix.lower() in (".xlsx", ".xlsm", ".xls")


def _read_table(path: Path, *, sheet: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputFileError(f"split sheet {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if _is_excel(path):
            with pd.ExcelFile(path) as book:
                if sheet not in book.sheet_names:
                    raise InputFileError(
                        f"sheet '{sheet}' not found in {path}; sheets: {book.sheet_names}"
                    )
                return pd.read_excel(book, sheet_name=sheet, dtype=object)
        if suffix in (".tsv", ".tab"):
            return pd.read_csv(path, sep="\t", dtype=object)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=object)
    except InputFileError:
        raise
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as err:
        raise InputFileError(f"cannot read split sheet {path}: {err}") from err
    raise InputFileError(
        f"split sheet {path}: unsupported file type '{suffix}' (use .xlsx, .xls, .tsv or .csv)"
    )
