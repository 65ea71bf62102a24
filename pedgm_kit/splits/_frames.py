"""Helpers shared by the split modules."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..datasets import DatasetIndex
from ..exceptions import PedgmError

__all__ = ["as_frame", "isna", "shared_value"]


def as_frame(index_or_frame: DatasetIndex | pd.DataFrame) -> pd.DataFrame:
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


def shared_value(values: list[Any]) -> Any:
    distinct: list[Any] = []
    for v in values:
        key = "n/a" if isna(v) else v
        if key not in distinct:
            distinct.append(key)
    if len(distinct) == 1:
        return values[0]
    return " | ".join(str(v) for v in distinct)


def isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
