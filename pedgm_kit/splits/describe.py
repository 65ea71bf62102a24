"""Describe and check a split: the person table, the count plot, the person-grouping check."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from ..datasets import DatasetIndex
from ..exceptions import PedgmError
from ..geometry import slice_axis
from ..io import check_choice, errors_about, open_nifti
from ._frames import as_frame, shared_value

__all__ = ["check_person_grouping", "plot_split_counts", "split_table"]

_SPLIT_COLUMNS = ("split", "person_id", "scans", "n_scans", "n_slices")
_TABLE_VALUES = ("persons", "scans", "slices")


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
        ``n_slices`` (sum over the person's scans of the image shape along its slice axis, the
        stored axis closest to superior-inferior, as evaluation counts slices; read from the headers), then the other columns of
        ``index`` (e.g. ``Site``): a value shared by all the person's scans, or the distinct
        values joined by ``" | "``. Rows in split order, persons in order of first scan.

    Raises
    ------
    PedgmError
        If a scan of ``splits`` is not in ``index``.
    InputFileError
        If an image header cannot be read.
    """
    frame = as_frame(index)
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
                row[column] = shared_value([by_id.at[s, column] for s in scans])
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
    check_choice(value, _TABLE_VALUES, name="value")
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


def _n_slices(image: str, scan_id: str, cache: dict[str, int]) -> int:
    """Slices of an image along its slice axis (from the affine, as evaluation counts them)."""
    if image not in cache:
        with errors_about(scan_id):
            img = open_nifti(image)
        shape = img.shape
        cache[image] = int(shape[slice_axis(img.affine)]) if len(shape) > 2 else 1
    return cache[image]
