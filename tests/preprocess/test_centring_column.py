"""check_centring refuses an index without a 'centring' column (regression: it passed silently)."""

from __future__ import annotations

import pandas as pd
import pytest

from pedgm_kit.data_creation import check_centring, write_arrays
from pedgm_kit.exceptions import InputFileError

SPLITS = {"train": ["a"], "val": ["b"], "test": ["c"]}


def test_index_without_centring_is_refused_naming_the_file(tmp_path):
    frame = pd.DataFrame({"scan_id": ["a", "b", "c"], "person_id": ["p1", "p2", "p3"], "image": ["x", "y", "z"]})
    index = tmp_path / "pre" / "index.csv"
    with pytest.raises(InputFileError, match=r"index\.csv: no 'centring' column") as err:
        check_centring(frame, SPLITS, source=index)
    assert str(index) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputFileError, match=str(index)):
        write_arrays(frame, SPLITS, root=tmp_path / "pre", data_dir=tmp_path / "data", source=index)
    assert not (tmp_path / "data").exists()  # refused before anything is written
    check_centring(frame, {"train": ["a", "b"], "val": [], "test": []})  # training only: nothing to check
    check_centring(frame.assign(centring="model"), SPLITS)  # recorded and fine
