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

A split is a ``dict`` ``{split name: [scan id, ...]}``, in the order train, val, test.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from pedgm_kit.datasets import DatasetIndex, _normalise_id, read_id_list
from pedgm_kit.exceptions import InputFileError, PedgmError

__all__ = [
    "DEFAULT_SPLIT_COLUMNS",
    "REGION_CODES",
    "auto_split",
    "check_person_grouping",
    "plot_split_counts",
    "read_level_sheet",
    "read_split_sheet",
    "split_table",
]

#: Split name -> column of the original study's split sheet.
DEFAULT_SPLIT_COLUMNS: Mapping[str, str] = MappingProxyType(
    {"train": "Training", "val": "Val", "test": "Testing"}
)
#: Cord-region codes of the original sheet, cranial to caudal: upper/mid/lower cervical and
#: upper/mid/lower thoracic.
REGION_CODES = ("UC", "MC", "LC", "UT", "MT", "LT")

_SPLIT_COLUMNS = ("split", "person_id", "scans", "n_scans", "n_slices")
_TABLE_VALUES = ("persons", "scans", "slices")


# --------------------------------------------------------------------------------------------
# Splits chosen by hand
# --------------------------------------------------------------------------------------------


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
            raw = _normalise_id(value)
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
        person = _normalise_id(ident)
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


# --------------------------------------------------------------------------------------------
# Automatic split
# --------------------------------------------------------------------------------------------


def auto_split(
    index_or_frame: DatasetIndex | pd.DataFrame,
    *,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    names: Sequence[str] = ("train", "val", "test"),
    balance_on: str | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Split scans into train/val/test by person, seeded, balancing a category column.

    Persons (never scans) are assigned, so two scans of one person always land in the same
    split. The assignment is greedy: persons are taken in a seeded random order (persons with
    more scans first) and each goes to the split where it lowers most the squared distance of
    the scan counts from their targets ``fraction * n_scans``, both overall and, with
    ``balance_on``, within the person's category (``fraction * n_scans of that category``).
    Ties are broken by the seeded generator. When there are at least as many persons as splits,
    every split then gets at least one person (persons are moved from the fullest splits if
    needed).

    Parameters
    ----------
    index_or_frame : DatasetIndex or pandas.DataFrame
        The scans: an index (its labelled scans) or a frame with columns ``scan_id`` and
        ``person_id`` (and ``balance_on``), e.g. ``index.to_frame()`` merged with
        :func:`read_level_sheet`.
    fractions : sequence of float, default (0.6, 0.2, 0.2)
        Target fraction of scans per split; each > 0, summing to 1.
    names : sequence of str, default ("train", "val", "test")
        Split names, one per fraction.
    balance_on : str or None, default None
        Column whose categories (e.g. ``Site``, ``levels``, ``main_region``) should be spread
        over the splits in the same fractions. A person's category is the most frequent value
        over their scans (ties: the first in sorted order); missing values form the category
        ``"n/a"``.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same input and seed give the same split.

    Returns
    -------
    dict of str to list of str
        ``{name: [scan id, ...]}``, scans in input order.

    Raises
    ------
    PedgmError
        If ``fractions`` are not positive or do not sum to 1, ``names`` do not match them, a
        needed column is absent, or a scan id occurs twice.

    Warns
    -----
    UserWarning
        If there are fewer persons than splits (some splits stay empty).

    Examples
    --------
    >>> splits = auto_split(index, balance_on="Site", seed=1)  # doctest: +SKIP
    >>> check_person_grouping(splits, index)  # doctest: +SKIP
    """
    frame = _as_frame(index_or_frame)
    fracs = _validate_fractions(fractions, names)
    if balance_on is not None and balance_on not in frame.columns:
        raise PedgmError(
            f"balance_on column '{balance_on}' not found; columns: {list(frame.columns)}"
        )
    duplicated = frame["scan_id"][frame["scan_id"].duplicated()].tolist()
    if duplicated:
        raise PedgmError(f"scan id(s) occur twice in the input: {sorted(set(duplicated))}")

    # persons, their weights (number of scans) and categories
    scan_ids = frame["scan_id"].astype(str).tolist()
    person_ids = frame["person_id"].astype(str).tolist()
    values = frame[balance_on].tolist() if balance_on is not None else [""] * len(scan_ids)
    scans_of: dict[str, list[str]] = {}
    cats_of: dict[str, list[str]] = {}
    for scan_id, person, value in zip(scan_ids, person_ids, values):
        scans_of.setdefault(person, []).append(scan_id)
        cats_of.setdefault(person, []).append("n/a" if _isna(value) else str(value))
    persons = sorted(scans_of)
    k = len(fracs)
    if len(persons) < k:
        warnings.warn(
            f"{len(persons)} person(s) for {k} splits {list(names)}: some splits stay empty",
            UserWarning, stacklevel=2,
        )
    weight = {p: len(scans_of[p]) for p in persons}
    category = {p: _mode(cats_of[p]) for p in persons}

    rng = np.random.default_rng(seed)
    order = [persons[i] for i in rng.permutation(len(persons))]
    order.sort(key=lambda p: -weight[p])  # stable: random order within equal weights
    state = _SplitState(fracs, weight, category, balanced=balance_on is not None)
    assignment: dict[str, int] = {}
    for person in order:
        deltas = np.array([state.delta(person, s) for s in range(k)])
        best = np.flatnonzero(np.isclose(deltas, deltas.min(), rtol=0.0, atol=1e-9))
        s = int(best[0] if best.size == 1 else rng.choice(best))
        assignment[person] = s
        state.add(person, s)

    if len(persons) >= k:
        _fill_empty_splits(assignment, state, order, k)

    split_of_scan = {
        scan: assignment[p] for p, scans in scans_of.items() for scan in scans
    }
    out: dict[str, list[str]] = {name: [] for name in names}
    for scan_id in scan_ids:
        out[names[split_of_scan[scan_id]]].append(scan_id)
    return out


def check_person_grouping(
    splits: Mapping[str, Sequence[str]],
    person_of: Mapping[str, str] | Callable[[str], str] | DatasetIndex,
) -> None:
    """Check that no person has scans in two different splits.

    Parameters
    ----------
    splits : mapping of str to sequence of str
        ``{split name: [scan id, ...]}``.
    person_of : mapping, callable or DatasetIndex
        Person id of a scan id: ``{scan_id: person_id}``, a function, or an index (its
        :meth:`~pedgm_kit.datasets.DatasetIndex.person_of`).

    Raises
    ------
    PedgmError
        If a person has scans in two splits (message: person, both scans, both splits), a scan
        is in two splits, or a scan's person is unknown.
    """
    if isinstance(person_of, DatasetIndex):
        person_of = person_of.person_of()
    lookup = person_of if callable(person_of) else person_of.__getitem__
    first_seen: dict[str, tuple[str, str]] = {}  # person -> (split, scan)
    for name, scan_ids in splits.items():
        for scan_id in scan_ids:
            try:
                person = lookup(scan_id)
            except KeyError as err:
                raise PedgmError(
                    f"scan '{scan_id}' of split '{name}' has no known person"
                ) from err
            if person in first_seen and first_seen[person][0] != name:
                other_split, other_scan = first_seen[person]
                raise PedgmError(
                    f"person '{person}' is in two splits: scan '{other_scan}' in "
                    f"'{other_split}' and scan '{scan_id}' in '{name}'"
                )
            first_seen.setdefault(person, (name, scan_id))


# --------------------------------------------------------------------------------------------
# Describing a split
# --------------------------------------------------------------------------------------------


def split_table(
    index: DatasetIndex | pd.DataFrame, splits: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """One row per person and split: scans, slice count and metadata.

    Parameters
    ----------
    index : DatasetIndex or pandas.DataFrame
        The scans (an index, or a frame with ``scan_id``, ``person_id`` and ``image``).
    splits : mapping of str to sequence of str
        ``{split name: [scan id, ...]}``.

    Returns
    -------
    pandas.DataFrame
        Columns ``split, person_id, scans`` (scan ids joined by ``", "``), ``n_scans``,
        ``n_slices`` (sum over the person's scans of the image shape along axis 2, the stored
        slice axis of axial acquisitions; read from the headers), then the other columns of
        ``index`` (e.g. ``Site``): a value shared by all the person's scans, or the distinct
        values joined by ``" | "``. Rows in split order, persons in order of first scan.

    Raises
    ------
    PedgmError
        If a scan of ``splits`` is not in ``index``.
    InputFileError
        If an image header cannot be read.
    """
    frame = _as_frame(index)
    if "image" not in frame.columns:
        raise PedgmError(f"split_table needs an 'image' column; columns: {list(frame.columns)}")
    by_id = frame.drop_duplicates("scan_id").set_index("scan_id", drop=False)
    extra = [
        c for c in frame.columns
        if c not in ("scan_id", "person_id", "image", "gm_mask", "cord_mask", "labelled")
    ]
    slices_cache: dict[str, int] = {}
    rows = []
    for name, scan_ids in splits.items():
        persons: dict[str, list[str]] = {}
        for scan_id in scan_ids:
            if scan_id not in by_id.index:
                raise PedgmError(f"scan '{scan_id}' of split '{name}' is not in the index")
            persons.setdefault(str(by_id.at[scan_id, "person_id"]), []).append(scan_id)
        for person, scans in persons.items():
            row: dict[str, Any] = {
                "split": name,
                "person_id": person,
                "scans": ", ".join(scans),
                "n_scans": len(scans),
                "n_slices": sum(
                    _n_slices(str(by_id.at[s, "image"]), s, slices_cache) for s in scans
                ),
            }
            for column in extra:
                row[column] = _shared_value([by_id.at[s, column] for s in scans])
            rows.append(row)
    return pd.DataFrame(rows, columns=[*_SPLIT_COLUMNS, *extra])


def plot_split_counts(
    table: pd.DataFrame,
    *,
    column: str | None = None,
    value: str = "persons",
    ax: Any = None,
):
    """Bar chart of persons, scans or slices per split, optionally per category.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`split_table`.
    column : str or None, default None
        Category column to colour by (e.g. ``"Site"``, ``"levels"``); None: one bar per split.
    value : {"persons", "scans", "slices"}, default "persons"
        What to count.
    ax : matplotlib.axes.Axes or None, default None
        Axes to draw on; None draws on a new figure made without pyplot (no display needed,
        safe under the Agg backend and in tests).

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.

    Raises
    ------
    PedgmError
        If ``value`` is not one of the choices, or ``column`` or a :func:`split_table` column
        is absent.
    """
    if value not in _TABLE_VALUES:
        raise PedgmError(f"value must be one of {list(_TABLE_VALUES)}, got {value!r}")
    needed = ["split", "person_id", "n_scans", "n_slices"] + ([column] if column else [])
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise PedgmError(
            f"column(s) {absent} not in the split table; columns: {list(table.columns)}"
        )
    import seaborn as sns
    from matplotlib.figure import Figure

    data = table.copy()
    keys = ["split"] + ([column] if column else [])
    if column:
        data[column] = data[column].astype(object).where(data[column].notna(), "n/a").astype(str)
    counts = (
        data.groupby(keys, sort=False)
        .agg(persons=("person_id", "size"), scans=("n_scans", "sum"), slices=("n_slices", "sum"))
        .reset_index()
    )
    if ax is None:
        fig = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = fig.add_subplot()
    order = list(dict.fromkeys(table["split"]))
    sns.barplot(data=counts, x="split", y=value, hue=column, order=order, ax=ax)
    ax.set_ylabel(f"{value} per split")
    ax.set_title(f"{value.capitalize()} per split" + (f" by {column}" if column else ""))
    return ax.figure


# --------------------------------------------------------------------------------------------
# Private helpers
# --------------------------------------------------------------------------------------------


class _SplitState:
    """Scan counts per split (overall and per category) against their targets."""

    def __init__(
        self, fracs: np.ndarray, weight: dict[str, int], category: dict[str, str], *,
        balanced: bool,
    ) -> None:
        self.fracs = fracs
        self.weight = weight
        self.category = category
        self.balanced = balanced
        k = len(fracs)
        self.target = fracs * sum(weight.values())
        self.have = np.zeros(k)
        cat_totals: dict[str, int] = {}
        for person, w in weight.items():
            cat_totals[category[person]] = cat_totals.get(category[person], 0) + w
        self.cat_target = {c: fracs * n for c, n in cat_totals.items()}
        self.cat_have = {c: np.zeros(k) for c in cat_totals}

    def delta(self, person: str, s: int, sign: int = 1) -> float:
        """Change of the cost if ``person`` is added to (sign 1) or removed from (-1) split s."""
        w = sign * self.weight[person]
        d = (self.have[s] + w - self.target[s]) ** 2 - (self.have[s] - self.target[s]) ** 2
        if self.balanced:
            c = self.category[person]
            have, target = self.cat_have[c][s], self.cat_target[c][s]
            d += (have + w - target) ** 2 - (have - target) ** 2
        return float(d)

    def add(self, person: str, s: int, sign: int = 1) -> None:
        w = sign * self.weight[person]
        self.have[s] += w
        self.cat_have[self.category[person]][s] += w


def _fill_empty_splits(
    assignment: dict[str, int], state: _SplitState, order: list[str], k: int
) -> None:
    """Move persons into empty splits, at the least cost, from splits with 2+ persons."""
    while True:
        sizes = np.bincount(list(assignment.values()), minlength=k)
        empty = np.flatnonzero(sizes == 0)
        if empty.size == 0:
            return
        target = int(empty[0])
        best: tuple[float, str] | None = None
        for person in order:  # deterministic tie-break: processing order
            s = assignment[person]
            if sizes[s] < 2:
                continue
            state.add(person, s, sign=-1)
            cost = state.delta(person, target) - state.delta(person, s)
            state.add(person, s)
            if best is None or cost < best[0] - 1e-9:
                best = (cost, person)
        assert best is not None  # len(persons) >= k guarantees a split with 2+ persons
        person = best[1]
        state.add(person, assignment[person], sign=-1)
        state.add(person, target)
        assignment[person] = target


def _validate_fractions(fractions: Sequence[float], names: Sequence[str]) -> np.ndarray:
    try:
        fracs = np.asarray([float(f) for f in fractions], dtype=float)
    except (TypeError, ValueError) as err:
        raise PedgmError(f"fractions must be numbers, got {fractions!r}") from err
    if fracs.size < 2:
        raise PedgmError(f"fractions must give at least 2 splits, got {tuple(fractions)}")
    if not np.all(np.isfinite(fracs)) or np.any(fracs <= 0):
        raise PedgmError(f"fractions must all be > 0, got {tuple(fractions)}")
    if not math.isclose(float(fracs.sum()), 1.0, abs_tol=1e-6):
        raise PedgmError(
            f"fractions must sum to 1, got {tuple(fractions)} (sum {float(fracs.sum()):g})"
        )
    if len(names) != fracs.size or len(set(names)) != len(names):
        raise PedgmError(
            f"names must be {fracs.size} distinct names, one per fraction; got names "
            f"{tuple(names)} for fractions {tuple(fractions)}"
        )
    return fracs


def _as_frame(index_or_frame: DatasetIndex | pd.DataFrame) -> pd.DataFrame:
    if isinstance(index_or_frame, DatasetIndex):
        return index_or_frame.to_frame()
    if isinstance(index_or_frame, pd.DataFrame):
        absent = [c for c in ("scan_id", "person_id") if c not in index_or_frame.columns]
        if absent:
            raise PedgmError(
                f"the frame needs columns {absent}; columns: {list(index_or_frame.columns)}"
            )
        return index_or_frame
    raise PedgmError(
        f"expected a DatasetIndex or a pandas DataFrame, got {type(index_or_frame).__name__}"
    )


def _mode(values: list[str]) -> str:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    top = max(counts.values())
    return sorted(v for v, n in counts.items() if n == top)[0]


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


def _n_slices(image: str, scan_id: str, cache: dict[str, int]) -> int:
    if image not in cache:
        try:
            shape = nib.load(image).shape
        except Exception as err:  # nibabel raises several types for unreadable files
            raise InputFileError(f"{scan_id}: cannot read the header of {image}: {err}") from err
        cache[image] = int(shape[2]) if len(shape) > 2 else 1
    return cache[image]


def _shared_value(values: list[Any]) -> Any:
    distinct: list[Any] = []
    for v in values:
        key = "n/a" if _isna(v) else v
        if key not in distinct:
            distinct.append(key)
    if len(distinct) == 1:
        return values[0]
    return " | ".join(str(v) for v in distinct)


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
