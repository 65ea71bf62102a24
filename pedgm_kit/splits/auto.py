"""Seeded, person-grouped, balanced splits."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..datasets import DatasetIndex
from ..exceptions import PedgmError
from ._frames import as_frame, isna

__all__ = ["auto_split", "kfold_split", "nested_person_subsets"]


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
    frame = as_frame(index_or_frame)
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
        cats_of.setdefault(person, []).append("n/a" if isna(value) else str(value))
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


def kfold_split(
    index_or_frame: DatasetIndex | pd.DataFrame,
    *,
    k: int,
    val_fraction: float = 0.25,
    balance_on: str | None = None,
    seed: int = 0,
) -> list[dict[str, list[str]]]:
    """Person-grouped, balanced, seeded k-fold cross-validation.

    Persons are dealt into ``k`` test groups with the balancing of :func:`auto_split` (equal
    fractions); fold ``i`` tests group ``i`` and splits the other persons into train and validation
    (``val_fraction`` of them, balanced the same way, at least one person). So every person is tested
    exactly once, and a fold's validation persons come from its training persons, never its test ones.

    Parameters
    ----------
    index_or_frame : DatasetIndex or pandas.DataFrame
        The scans (as :func:`auto_split`).
    k : int
        Folds, 2 or more and at most the number of persons.
    val_fraction : float, default 0.25
        Share of each fold's non-test persons' scans used for validation.
    balance_on : str or None
        Column balanced across the test groups and within each fold.
    seed : int, default 0

    Returns
    -------
    list of dict
        ``k`` folds, each ``{"train": [...], "val": [...], "test": [...]}`` of scan ids.

    Raises
    ------
    PedgmError
        ``k`` < 2 or more than the persons, or ``val_fraction`` outside (0, 1).
    """
    frame = as_frame(index_or_frame)
    n_persons = frame["person_id"].astype(str).nunique()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n_persons:
        raise PedgmError(f"cv_folds must be an integer from 2 to the number of persons ({n_persons}); got {k!r}")
    if not 0 < val_fraction < 1:
        raise PedgmError(f"val_fraction must be in (0, 1); got {val_fraction!r}")
    names = [f"fold-{i + 1}" for i in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        groups = auto_split(frame, fractions=[1.0 / k] * k, names=names, balance_on=balance_on, seed=seed)
    folds = []
    for i, name in enumerate(names):
        test = set(groups[name])
        rest = frame[~frame["scan_id"].astype(str).isin(test)]
        if rest["person_id"].nunique() < 2:
            raise PedgmError(f"{name}: fewer than 2 persons outside its test group: no train/val split possible")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            inner = auto_split(rest, fractions=[1 - val_fraction, val_fraction], names=["train", "val"],
                               balance_on=balance_on, seed=seed + 1 + i)
        folds.append({"train": inner["train"], "val": inner["val"],
                      "test": [s for s in frame["scan_id"].astype(str) if s in test]})
    return folds


def nested_person_subsets(persons, sizes, *, seed: int = 0) -> dict[int, list[str]]:
    """Nested, seeded subsets of ``persons``: ``{size: [person, ...]}``, each inside the next larger.

    ``sizes`` may hold ``0`` or ``"all"`` for every person. The order is a seeded permutation, the
    same one :func:`pedgm_kit.train.load_arrays` uses for ``persons=``.
    """
    people = sorted(set(map(str, persons)))
    order = list(np.random.default_rng([seed, 7]).permutation(people))
    out = {}
    for size in sizes:
        n = len(people) if size in (0, "all", None) else int(size)
        if not 1 <= n <= len(people):
            raise PedgmError(f"train_persons size {size!r} must be between 1 and {len(people)} (the training persons)")
        out[n] = sorted(order[:n])
    return out


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


def _mode(values: list[str]) -> str:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    top = max(counts.values())
    return sorted(v for v, n in counts.items() if n == top)[0]
