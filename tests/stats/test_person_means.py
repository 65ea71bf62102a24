"""The per-person mean is one function: person_means, the headline table and the model card use
evaluate.scoring.person_scores (regression: each computed it its own way)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pedgm_kit.evaluate.scoring import mean_over_persons, person_scores
from pedgm_kit.stats import headline_table, person_means


def _tidy(values: list[list[float]], *, fold: bool = False) -> pd.DataFrame:
    """values[p] = the scan Dice of person p (one scan per entry), two models (b = a - 0.1)."""
    rows = []
    for p, scans in enumerate(values):
        for s, v in enumerate(scans):
            for model, shift in (("a", 0.0), ("b", -0.1)):
                rows.append({"model": model, "scan": f"sub-{p}_ses-{s}", "person": f"sub-{p}", "level": "scan",
                             "slice": pd.NA, "metric": "DSC", "value": v + shift, **({"fold": p % 2 + 1} if fold else {})})
    return pd.DataFrame(rows)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=1, max_size=3), min_size=1, max_size=8), st.booleans())
def test_person_means_headline_and_scores_agree(values, fold):
    tidy = _tidy(values, fold=fold)
    wide = person_means(tidy)
    long = person_scores(tidy.drop(columns="fold", errors="ignore")).pivot(index="person", columns="model", values="value")
    pd.testing.assert_frame_equal(wide, long.reindex(index=wide.index, columns=wide.columns), check_names=False)
    expected = [float(np.mean(v)) for v in values]  # by hand: each person's scans, then over persons
    np.testing.assert_allclose(wide["a"].to_numpy(), expected, atol=1e-12)
    overall = mean_over_persons(tidy.drop(columns="fold", errors="ignore"))
    head = headline_table(tidy, baseline="b", n_boot=50).set_index("model")
    assert head.loc["a", "mean"] == pytest.approx(overall["a"]) == pytest.approx(float(np.mean(expected)))
    assert head.loc["a", "n_persons"] == len(values)
