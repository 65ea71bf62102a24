"""Figures of the person-level answer: Dice per person joined by person, the per-group forest plot."""

from __future__ import annotations

import pandas as pd
import pytest

from pedgm_kit.evaluate import plot_forest, plot_person_dice
from pedgm_kit.exceptions import ParameterError
from pedgm_kit.stats import group_table


def _tidy():
    rows = []
    values = {"base": [0.8, 0.82, 0.7, 0.75], "ft": [0.85, 0.84, 0.6, 0.8], "other": [0.7, 0.7, 0.7, 0.7]}
    for model, vals in values.items():
        for k, (person, v) in enumerate(zip(["a", "a", "b", "c"], vals)):
            rows.append({"model": model, "scan": f"s{k}", "person": person, "level": "scan", "slice": pd.NA,
                         "metric": "DSC", "value": v})
    out = pd.DataFrame(rows)
    out["slice"] = out["slice"].astype("Int64")
    return out


def test_person_dice_one_line_per_person_per_variant():
    fig = plot_person_dice(_tidy(), baseline="base")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2  # one panel per variant
    ft = axes[0]
    person_lines = [ln for ln in ft.lines if ln.get_label() != "mean"]
    assert len(person_lines) == 3  # persons a (two sessions, averaged), b, c
    a = person_lines[0].get_ydata()
    assert list(a) == pytest.approx([(0.8 + 0.82) / 2, (0.85 + 0.84) / 2])
    assert person_lines[1].get_color() == "tab:red"  # b is lower under ft
    assert "2 persons" not in ft.get_title() and "3 persons" in ft.get_title()
    with pytest.raises(ParameterError, match="baseline 'x' is not a model"):
        plot_person_dice(_tidy(), baseline="x")


def test_forest_rows_and_counts():
    groups = group_table(_tidy(), pd.DataFrame({"person_id": ["a", "b", "c"], "Site": ["S1", "S1", "S2"]}),
                         by=["Site"], baseline="base")
    fig = plot_forest(groups)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "Site = S1 · base" and labels[1] == "Site = S1 · ft" and len(labels) == 6
    counts = [t.get_text() for t in ax.texts]
    assert counts[:2] == ["n = 2", "n = 2"] and counts[3:6] == ["n = 1"] * 3
