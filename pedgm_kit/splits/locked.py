"""A locked test set: persons held out of every fold and every choice, scored once at the end.

Cross-validation compares variants, and the winner's cross-validated score is optimistic by that
selection. A parameter file may therefore lock some persons away (``data: locked_test_persons``):
a list of person ids, or a fraction of the scans (0-1) whose persons are drawn seeded and balanced
like the split (:func:`~pedgm_kit.splits.auto_split`). Those persons are removed from the scans
before any split is made (:func:`hold_out_locked`), so they enter no fold's train, validation or
test arrays and therefore no choice made on them (recipe, threshold, epochs, early stopping); notebook
02 records them in ``manifest.json`` (``locked_test``) and notebook 05 scores them once, after every
choice, with each variant's final model (:mod:`pedgm_kit.evaluate.locked`).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import pandas as pd

from ..datasets import DatasetIndex
from ..exceptions import ParameterError
from ._frames import as_frame
from .auto import auto_split

__all__ = ["LOCKED_KEY", "choose_locked_persons", "hold_out_locked", "is_locked_spec", "locked_problems"]

LOCKED_KEY = "locked_test_persons"
"""The ``data`` parameter naming the locked persons (a list of person ids or a fraction in (0, 1))."""

_WHERE = f"'data.{LOCKED_KEY}'"


def _is_fraction(spec) -> bool:
    return isinstance(spec, numbers.Real) and not isinstance(spec, bool)


def is_locked_spec(value) -> bool:
    """Whether ``value`` has the form of ``locked_test_persons``: a list of ids (str / int) or a number in [0, 1)."""
    if _is_fraction(value):
        return 0 <= float(value) < 1
    return isinstance(value, list) and all(
        isinstance(x, (str, numbers.Integral)) and not isinstance(x, bool) for x in value)


def choose_locked_persons(
    index_or_frame: DatasetIndex | pd.DataFrame,
    spec: Sequence | float | None,
    *,
    balance_on: str | None = None,
    seed: int = 0,
) -> list[str]:
    """The persons of a ``locked_test_persons`` value: the ids given, or a seeded balanced draw.

    Parameters
    ----------
    index_or_frame : DatasetIndex or pandas.DataFrame
        The scans (``scan_id``, ``person_id``, and ``balance_on`` if given).
    spec : list of person ids, float in (0, 1), 0 or None
        Ids (strings or numbers, compared as strings), or the fraction of scans to lock: their
        persons are drawn with :func:`~pedgm_kit.splits.auto_split` (fractions ``1 - f, f``,
        ``balance_on``, ``seed``), so the draw is person-grouped, balanced and reproducible.
        ``[]``, ``0`` or None: no locked person.
    balance_on : str, optional
        Column balanced by a fractional draw (ignored when absent from the frame).
    seed : int, default 0

    Returns
    -------
    list of str
        Sorted person ids.

    Raises
    ------
    ParameterError
        Unknown person ids, a fraction outside [0, 1), or a value of another kind; the message
        names ``data.locked_test_persons``.
    """
    frame = as_frame(index_or_frame)
    persons = sorted(set(frame["person_id"].astype(str)))
    if spec is None or (_is_fraction(spec) and spec == 0) or (isinstance(spec, (list, tuple)) and not spec):
        return []
    if _is_fraction(spec):
        if not 0 < float(spec) < 1:
            raise ParameterError(f"{_WHERE} must be a list of person ids or a fraction in (0, 1); got {spec!r}")
        if len(persons) < 2:
            raise ParameterError(f"{_WHERE} is {spec!r} but the dataset has {len(persons)} person(s): nothing "
                                 "would be left for training")
        column = balance_on if balance_on and balance_on in frame.columns else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            drawn = auto_split(frame, fractions=(1 - float(spec), float(spec)), names=("folds", "locked"),
                               balance_on=column, seed=seed)
        person_of = dict(zip(frame["scan_id"].astype(str), frame["person_id"].astype(str)))
        return sorted({person_of[s] for s in drawn["locked"]})
    if isinstance(spec, str) or not isinstance(spec, (list, tuple)):
        raise ParameterError(f"{_WHERE} must be a list of person ids or a fraction in (0, 1); got {spec!r}")
    bad = [x for x in spec if isinstance(x, bool) or not isinstance(x, (str, numbers.Integral))]
    if bad:
        raise ParameterError(f"{_WHERE} must list person ids (strings or integers); got {bad[0]!r}")
    ids = [str(x) for x in spec]
    repeated = sorted({x for x in ids if ids.count(x) > 1})
    if repeated:
        raise ParameterError(f"{_WHERE} lists person(s) {repeated} twice")
    unknown = [x for x in ids if x not in persons]
    if unknown:
        shown = ", ".join(persons[:8]) + (" ..." if len(persons) > 8 else "")
        raise ParameterError(f"{_WHERE}: unknown person id(s) {unknown}; the dataset's persons: {shown}")
    return sorted(ids)


def locked_problems(
    index_or_frame: DatasetIndex | pd.DataFrame,
    spec,
    *,
    cv_folds: int = 0,
    balance_on: str | None = None,
    seed: int = 0,
    where: str = "the dataset",
) -> list[str]:
    """Why a ``locked_test_persons`` value cannot work on these scans (empty list: it can).

    Besides the checks of :func:`choose_locked_persons`, the persons left must fill the folds:
    at least ``cv_folds`` (and 3 for one train / validation / test split), and at least one
    person must be locked when a fraction is given.
    """
    frame = as_frame(index_or_frame)
    try:
        locked = choose_locked_persons(frame, spec, balance_on=balance_on, seed=seed)
    except ParameterError as err:
        return [str(err)]
    if not locked:
        return [] if not spec else [f"{_WHERE} is {spec!r} but locks no person of {where}"]
    left = frame["person_id"].astype(str).nunique() - len(locked)
    needed = max(int(cv_folds or 0), 3)
    if left < needed:
        what = f"{cv_folds} cross-validation folds" if cv_folds else "a train / validation / test split"
        return [f"{_WHERE} locks {len(locked)} person(s) of {where}, leaving {left}; {what} need(s) at least {needed}"]
    return []


def hold_out_locked(
    frame: pd.DataFrame,
    spec,
    *,
    cv_folds: int = 0,
    balance_on: str | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Remove the locked persons' scans before any split; returns (the rest, the locked record).

    Parameters
    ----------
    frame : pandas.DataFrame
        Notebook 01's ``index.csv`` (``scan_id``, ``person_id``, ...).
    spec
        The ``locked_test_persons`` value (:func:`choose_locked_persons`).
    cv_folds, balance_on, seed
        As notebook 02's parameters; checked with :func:`locked_problems`.

    Returns
    -------
    rest : pandas.DataFrame
        The scans of every other person (a copy, index reset), from which the splits are made.
    record : dict
        What ``manifest.json`` keeps as ``locked_test``: ``persons``, ``scans``, ``spec``,
        ``seed``, ``balance_on`` and ``rule`` (a sentence). ``persons`` is empty when nothing is locked.

    Raises
    ------
    ParameterError
        As :func:`locked_problems` (one line naming ``data.locked_test_persons``).
    """
    problems = locked_problems(frame, spec, cv_folds=cv_folds, balance_on=balance_on, seed=seed)
    if problems:
        raise ParameterError(problems[0])
    locked = choose_locked_persons(frame, spec, balance_on=balance_on, seed=seed)
    is_locked = frame["person_id"].astype(str).isin(locked)
    record = {
        "persons": locked,
        "scans": frame.loc[is_locked, "scan_id"].astype(str).tolist(),
        "spec": spec if not isinstance(spec, tuple) else list(spec),
        "seed": int(seed),
        "balance_on": balance_on or "",
        "rule": ("held out before any split: in no fold's train, validation or test arrays, so in no choice of "
                 "recipe, threshold or epoch; scored once, after every choice, by each variant's final model"),
    }
    return frame.loc[~is_locked].reset_index(drop=True), record
