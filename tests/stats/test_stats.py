"""Tests of pedgm_kit.stats: hand computations, agreement with scipy, determinism, edge cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from pedgm_kit.exceptions import ParameterError
from hypothesis import given, settings
from hypothesis import strategies as st

from pedgm_kit.stats import (
    FAILURE_PENALTY_MM,
    bootstrap_mean_diff,
    check_covariates,
    failure_table,
    group_table,
    headline_table,
    holm,
    markdown_summary,
    paired_comparison,
    penalise_failures,
    person_means,
    retest_cv,
    verdict,
    wilcoxon_signed_rank,
)

# ------------------------------------------------------------------------------------------------
# Holm
# ------------------------------------------------------------------------------------------------


def test_holm_matches_hand_computation():
    # sorted: 0.005, 0.01, 0.03, 0.04 (m = 4)
    # x4, x3, x2, x1 -> 0.02, 0.03, 0.06, 0.04 ; running max -> 0.02, 0.03, 0.06, 0.06
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_leaves_nan_out_of_the_family_and_clips_at_one():
    # finite: 0.02, 0.5 (m = 2): 0.04, min(1, max(0.04, 0.5)) = 0.5 ; 0.6 -> 1.0 with m = 3
    out = holm([0.5, np.nan, 0.02])
    assert out[0] == pytest.approx(0.5) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert holm([0.6, 0.7, 0.01]) == pytest.approx([1.0, 1.0, 0.03])
    assert holm([]).shape == (0,)


def test_holm_rejects_impossible_p():
    with pytest.raises(ParameterError, match=r"p-values must be in \[0, 1\]; got \[1.5\]"):
        holm([0.2, 1.5])


# ------------------------------------------------------------------------------------------------
# Wilcoxon
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [6, 12, 60])
def test_wilcoxon_agrees_with_scipy(rng, n):
    d = rng.normal(0.02, 0.05, size=n)
    ours = wilcoxon_signed_rank(d)
    ref = sps.wilcoxon(d)
    assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours["statistic"] == pytest.approx(ref.statistic)
    assert ours["n"] == n and ours["note"] == ""


def test_wilcoxon_one_sided_agrees_with_scipy(rng):
    d = rng.normal(0.03, 0.05, size=10)
    assert wilcoxon_signed_rank(d, alternative="greater")["p_value"] == pytest.approx(
        sps.wilcoxon(d, alternative="greater").pvalue
    )


def test_wilcoxon_drops_zeros_like_scipy_wilcox():
    d = np.array([0.1, 0.2, -0.05, 0.3, 0.0, 0.02, 0.04, -0.01])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sps.wilcoxon(d, zero_method="wilcox")
    ours = wilcoxon_signed_rank(d)
    assert ours["p_value"] == pytest.approx(ref.pvalue)
    assert ours["n_nonzero"] == 7 and "1 zero difference(s) dropped" in ours["note"]


@pytest.mark.parametrize(
    "d, note",
    [
        ([0.1, 0.2, 0.3], "3 non-zero pair(s) < 6: too few for a signed-rank test"),
        ([0.0] * 8, "all 8 differences are zero: no test"),
        ([0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2], "2 non-zero pair(s) < 6"),
        ([], "0 non-zero pair(s) < 6"),
        ([0.1, np.nan, 0.2], "1 NaN difference(s) dropped"),
    ],
)
def test_wilcoxon_small_or_degenerate_gives_nan_and_a_note_without_warnings(d, note):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = wilcoxon_signed_rank(d)
    assert math.isnan(out["p_value"]) and math.isnan(out["statistic"])
    assert note in out["note"]


def test_wilcoxon_bad_alternative():
    with pytest.raises(ParameterError, match="alternative must be .* got 'bigger'"):
        wilcoxon_signed_rank([1, 2, 3, 4, 5, 6], alternative="bigger")


# ------------------------------------------------------------------------------------------------
# Bootstrap over persons
# ------------------------------------------------------------------------------------------------


def test_bootstrap_two_persons_hand_checkable():
    # person A: two scans with difference 1, person B: one scan with difference 3.
    # A resample of 2 persons is AA (mean 1, p=1/4), BB (3, p=1/4) or AB/BA ((1+1+3)/3, p=1/2):
    # so the 2.5% and 97.5% quantiles are 1 and 3; the point estimate is the plain mean 5/3.
    out = bootstrap_mean_diff([1.0, 1.0, 3.0], groups=["A", "A", "B"], n_boot=4000, seed=1)
    assert out["mean_diff"] == pytest.approx(5 / 3)
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(1.0), pytest.approx(3.0))
    assert out["n_persons"] == 2 and out["n"] == 3


def test_bootstrap_matches_a_plain_loop_with_the_same_draws(rng):
    d = rng.normal(0.01, 0.03, size=15)
    g = np.array([f"p{k % 6}" for k in range(15)])
    out = bootstrap_mean_diff(d, groups=g, n_boot=500, seed=7, ci=0.9)
    persons = sorted(set(g))
    draw = np.random.default_rng(7).integers(0, len(persons), size=(500, len(persons)))
    means = [np.concatenate([d[g == persons[i]] for i in row]).mean() for row in draw]
    low, high = np.quantile(means, [0.05, 0.95])
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(low), pytest.approx(high))


def test_bootstrap_is_deterministic_given_the_seed(rng):
    d = rng.normal(size=20)
    g = np.repeat(np.arange(10), 2)
    a = bootstrap_mean_diff(d, groups=g, n_boot=300, seed=3)
    b = bootstrap_mean_diff(d, groups=g, n_boot=300, seed=3)
    c = bootstrap_mean_diff(d, groups=g, n_boot=300, seed=4)
    assert a == b
    assert (a["ci_low"], a["ci_high"]) != (c["ci_low"], c["ci_high"])


def test_bootstrap_resamples_persons_not_scans(rng):
    # Ten scans of two persons: the person-level interval must be wider than treating scans as independent.
    d = np.r_[np.full(5, 0.0), np.full(5, 0.1)] + rng.normal(0, 0.001, size=10)
    by_person = bootstrap_mean_diff(d, groups=["a"] * 5 + ["b"] * 5, n_boot=2000, seed=0)
    by_scan = bootstrap_mean_diff(d, groups=np.arange(10), n_boot=2000, seed=0)
    assert by_person["ci_high"] - by_person["ci_low"] > 1.5 * (by_scan["ci_high"] - by_scan["ci_low"])


def test_bootstrap_one_person_and_nan():
    out = bootstrap_mean_diff([0.1, np.nan, 0.3], groups=["a", "a", "a"], n_boot=10, seed=0)
    assert out["mean_diff"] == pytest.approx(0.2) and out["n"] == 2
    assert math.isnan(out["ci_low"]) and "1 person(s): no bootstrap interval" in out["note"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=["a"]), "differences has 2 values but groups has 1"),
        (dict(groups=["a", "b"], n_boot=0), "n_boot must be an integer >= 1; got 0"),
        (dict(groups=["a", "b"], ci=1.0), r"ci must be in \(0, 1\); got 1.0"),
    ],
)
def test_bootstrap_bad_arguments(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        bootstrap_mean_diff([0.1, 0.2], **kwargs)


# ------------------------------------------------------------------------------------------------
# paired_comparison on a hand-made tidy table
# ------------------------------------------------------------------------------------------------


def _tidy(values: dict[str, list[float]], persons: list[str], metric="DSC", level="scan", slices=None):
    rows = []
    for model, vals in values.items():
        for k, v in enumerate(vals):
            rows.append({
                "model": model, "scan": f"s{k}" if slices is None else f"s{k // slices}",
                "person": persons[k], "level": level,
                "slice": pd.NA if slices is None else k % slices, "metric": metric, "value": v,
            })
    out = pd.DataFrame(rows)
    out["slice"] = out["slice"].astype("Int64")
    return out


@pytest.fixture
def scan_table():
    base = [0.80, 0.82, 0.85, 0.78, 0.90, 0.88, 0.81]
    better = [b + d for b, d in zip(base, [0.05, 0.03, 0.04, 0.06, 0.01, 0.02, 0.07])]
    worse = [b + d for b, d in zip(base, [-0.01, 0.02, 0.0, 0.0, 0.01, -0.02, 0.005])]
    persons = ["p1", "p1", "p2", "p3", "p4", "p5", "p6"]  # p1: two sessions
    return _tidy({"challenge": base, "better": better, "worse": worse}, persons)


def test_paired_comparison_pairs_persons_not_scans(scan_table):
    """Two sessions of one person are one pair: the person's scans are averaged first."""
    out = paired_comparison(scan_table, baseline="challenge", n_boot=500, seed=0)
    assert list(out["model"]) == ["better", "worse"]
    better = out.iloc[0]
    per_person = np.array([(0.05 + 0.03) / 2, 0.04, 0.06, 0.01, 0.02, 0.07])
    assert better["n_scans"] == 7 and better["n_persons"] == 6
    assert better["mean_diff"] == pytest.approx(per_person.mean())
    assert better["median_diff"] == pytest.approx(np.median(per_person))
    assert better["p_value"] == pytest.approx(sps.wilcoxon(per_person).pvalue)
    assert better["wilcoxon_W"] == pytest.approx(sps.wilcoxon(per_person).statistic)
    np.testing.assert_allclose(out["p_holm"], holm(out["p_value"]))
    # 6 persons: no interval method kept its coverage (benchmarks/ci_coverage.py), so none is shown
    assert math.isnan(better["ci_low"]) and math.isnan(better["ci_high"]) and better["ci_method"] == ""
    assert better["interval_note"].startswith("no interval: no candidate kept 0.93-0.97 measured coverage for 6 persons")
    assert "improves" not in better["verdict"] and "no claim" in better["verdict"]
    worse = out.iloc[1]  # person differences 0.005, 0, 0, 0.01, -0.02, 0.005: 4 non-zero
    assert math.isnan(worse["p_value"]) and "4 non-zero pair(s) < 6: too few" in worse["note"]
    assert better["p_holm"] == pytest.approx(better["p_value"])  # the untested row is not in the family


def test_person_means_two_sessions(scan_table):
    means = person_means(scan_table, models=["challenge", "better"])
    assert list(means.index) == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert means.loc["p1", "challenge"] == pytest.approx((0.80 + 0.82) / 2)
    assert means.loc["p1", "better"] == pytest.approx((0.85 + 0.85) / 2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(-0.2, 0.2)), min_size=2, max_size=12))
def test_paired_comparison_person_pairing_property(scans):
    """Whatever the sessions per person: n_persons = distinct persons, mean_diff = mean of person means."""
    persons = [f"p{p}" for p, _ in scans]
    diffs = [d for _, d in scans]
    base = [0.7] * len(scans)
    t = _tidy({"b": base, "m": [0.7 + d for d in diffs]}, persons)
    row = paired_comparison(t, baseline="b", n_boot=50, seed=0).iloc[0]
    per_person = pd.Series(diffs, index=persons).groupby(level=0).mean()
    assert row["n_persons"] == per_person.size and row["n_scans"] == len(scans)
    assert row["mean_diff"] == pytest.approx(per_person.mean(), abs=1e-12)


def _big_table(shift: float, n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = list(rng.uniform(0.7, 0.9, n))
    model = [b + shift + rng.normal(0, 0.02) for b in base]
    persons = [f"p{k}" for k in range(n - 1)] + ["p0"]  # p0 has two sessions: n - 1 persons
    return _tidy({"challenge": base, "ft": model}, persons)


def test_interval_shown_and_wording_improves_with_enough_persons():
    out = paired_comparison(_big_table(0.05), baseline="challenge", n_boot=200, seed=0).iloc[0]
    assert out["n_persons"] == 15 and out["ci_method"] == "t"
    assert 0 < out["ci_low"] < out["mean_diff"] < out["ci_high"]
    assert out["verdict"].startswith("ft improves DSC over challenge: +0.0")
    assert "95% CI" in out["verdict"] and "15 persons" in out["verdict"]


def test_wording_no_evidence_when_the_interval_holds_zero():
    out = paired_comparison(_big_table(0.0), baseline="challenge", n_boot=200, seed=0).iloc[0]
    assert out["ci_low"] < 0 < out["ci_high"]
    assert "no evidence of a difference in DSC" in out["verdict"] and "improves" not in out["verdict"]
    assert f"95% CI {out['ci_low']:+.3f} to {out['ci_high']:+.3f}" in out["verdict"]


def test_wording_worse_and_lower_is_better_for_distances():
    row = {"model": "ft", "baseline": "sct", "metric": "HSD", "mean_diff": -1.0, "ci_low": -1.5, "ci_high": -0.5,
           "n_persons": 20, "ci_method": "t", "higher_is_better": False}
    assert verdict(row).startswith("ft improves HSD over sct")
    row.update(metric="DSC", higher_is_better=True, mean_diff=-0.1, ci_low=-0.15, ci_high=-0.05)
    assert verdict(row).startswith("ft is worse than sct in DSC")
    row.update(mean_diff=0.2, ci_low=math.nan, ci_high=math.nan, interval_note="no interval: too few")
    text = verdict(row)
    assert "improves" not in text and "descriptive only" in text and "too few" in text


def test_paired_comparison_drops_scans_with_nan(scan_table):
    t = scan_table.copy()
    t.loc[(t["model"] == "better") & (t["scan"] == "s0"), "value"] = np.nan
    out = paired_comparison(t, baseline="challenge", n_boot=100, seed=0).set_index("model")
    assert out.loc["better", "n_scans"] == 6 and out.loc["better", "n_persons"] == 6  # p1 keeps its other session


def test_paired_comparison_slice_level_is_descriptive():
    vals = list(np.linspace(0.7, 0.9, 12))
    t = _tidy({"challenge": vals, "large": [v + 0.01 * (k % 3) for k, v in enumerate(vals)]},
              persons=["a"] * 6 + ["b"] * 6, level="slice", slices=6)
    out = paired_comparison(t, baseline="challenge", level="slice", n_boot=100, seed=0).iloc[0]
    assert out["n_scans"] == 12 and out["n_persons"] == 2
    assert math.isnan(out["p_value"]) and math.isnan(out["ci_low"]) and pd.isna(out["significant"])
    assert out["inference"].startswith("descriptive") and "descriptive" in out["verdict"]
    assert "significant" not in out["verdict"]


# failures


def _failure_table():
    rows = []
    for model, dsc in (("base", [0.8, 0.82, 0.7, 0.75, 0.9]), ("ft", [0.83, 0.85, 0.0, 0.78, 0.92])):
        for k, (person, v) in enumerate(zip(["a", "a", "b", "c", "d"], dsc)):
            hsd = np.nan if v == 0 else 1.0 + k / 10
            rows += [{"model": model, "scan": f"s{k}", "person": person, "level": "scan", "slice": pd.NA,
                      "metric": "DSC", "value": v},
                     {"model": model, "scan": f"s{k}", "person": person, "level": "scan", "slice": pd.NA,
                      "metric": "HSD", "value": hsd}]
    out = pd.DataFrame(rows)
    out["slice"] = out["slice"].astype("Int64")
    return out


def test_failures_are_listed_per_model():
    table = failure_table(_failure_table()).set_index("model")
    assert table.loc["base", "failed_scans"] == 0 and table.loc["base", "scans"] == ""
    assert table.loc["ft", "failed_scans"] == 1 and table.loc["ft", "scans"] == "s2"
    assert table.loc["ft", "failed_persons"] == 1 and table.loc["ft", "n_scans"] == 5


def test_failed_distances_get_the_penalty_and_stay_in_the_comparison():
    tidy = _failure_table()
    before = tidy.copy()
    assert FAILURE_PENALTY_MM == pytest.approx(200 * 0.25 * math.sqrt(2))  # the window diagonal, 70.7 mm
    penalised = penalise_failures(tidy)
    pd.testing.assert_frame_equal(tidy, before)  # the input is not modified
    hit = penalised[(penalised["model"] == "ft") & (penalised["scan"] == "s2") & (penalised["metric"] == "HSD")]
    assert hit["value"].item() == pytest.approx(FAILURE_PENALTY_MM)
    assert penalised["value"].isna().sum() == 0
    out = paired_comparison(tidy, baseline="base", metrics=["DSC", "HSD"], n_boot=50).set_index("metric")
    assert out.loc["HSD", "n_persons"] == 4 and out.loc["HSD", "failed_persons"] == 1  # person b kept
    # person b's HSD difference: 70.7 - 1.2; the others 0
    assert out.loc["HSD", "mean_diff"] == pytest.approx((FAILURE_PENALTY_MM - 1.2) / 4)
    assert "failed (empty) prediction" in out.loc["HSD", "note"]
    assert "with a failed scan" in out.loc["DSC", "interval_note"]
    custom = paired_comparison(tidy, baseline="base", metrics=["HSD"], n_boot=50, penalty_mm=10.0).iloc[0]
    assert custom["mean_diff"] == pytest.approx((10.0 - 1.2) / 4)


def test_headline_table_counts_failures_and_persons():
    tidy = _failure_table()
    tests = paired_comparison(tidy, baseline="base", n_boot=50)
    head = headline_table(tidy, baseline="base", tests=tests).set_index("model")
    assert list(head.index) == ["base", "ft"]
    assert head.loc["ft", "failed_scans"] == 1 and head.loc["ft", "n_persons"] == 4
    assert head.loc["base", "mean"] == pytest.approx(np.mean([0.81, 0.7, 0.75, 0.9]))
    assert head.loc["ft", "verdict"] == tests.iloc[0]["verdict"]


# groups (per site / covariate)


def test_group_table_by_site_counts_persons():
    tidy = _failure_table()
    covariates = pd.DataFrame({"person_id": ["a", "a", "b", "c", "d"], "Site": ["X", "X", "X", "Y", None]})
    table = group_table(tidy, covariates, by=["Site"], baseline="base")
    rows = table.set_index(["group", "model"])
    assert rows.loc[("X", "base"), "n_persons"] == 2 and rows.loc[("Y", "ft"), "n_persons"] == 1
    assert rows.loc[("(not recorded)", "ft"), "n_persons"] == 1
    assert rows.loc[("X", "base"), "mean"] == pytest.approx((0.81 + 0.7) / 2)
    assert rows.loc[("X", "ft"), "mean_diff"] == pytest.approx(((0.84 - 0.81) + (0.0 - 0.7)) / 2)
    assert table["ci_low"].isna().all()  # 1-2 persons per group: never an interval
    with pytest.raises(ParameterError, match=r"by: column\(s\) \['age'\] not among the participant columns \['Site'\]"):
        group_table(tidy, covariates, by=["age"])
    with pytest.raises(ParameterError, match=r"by must be a list of participants.tsv column names.*got 'Site'"):
        check_covariates(covariates, "Site")
    with pytest.raises(ParameterError, match="covariates need a 'person_id' or 'person' column"):
        check_covariates(covariates.drop(columns=["person_id"]), ["Site"])


def test_paired_comparison_errors_and_single_model(scan_table):
    with pytest.raises(ParameterError, match="baseline 'nope' is not a model of the table"):
        paired_comparison(scan_table, baseline="nope")
    with pytest.raises(ParameterError, match=r"metric\(s\) \['XYZ'\] not in the table"):
        paired_comparison(scan_table, baseline="challenge", metrics=("XYZ",))
    with pytest.raises(ParameterError, match="level must be 'scan' or 'slice'; got 'voxel'"):
        paired_comparison(scan_table, baseline="challenge", level="voxel")
    with pytest.raises(ParameterError, match=r"lacks column\(s\) \['level', 'slice'"):
        paired_comparison(pd.DataFrame(columns=["model", "scan", "person", "metric", "value"]), baseline="x")
    out = paired_comparison(_tidy({"challenge": [0.8, 0.9]}, ["a", "b"]), baseline="challenge")
    assert out.empty and "p_holm" in out.columns and "verdict" in out.columns


# ------------------------------------------------------------------------------------------------
# Test-retest CV
# ------------------------------------------------------------------------------------------------


def _areas(model, pair, person, run_a, run_b):
    rows = []
    for run, vals in ((1, run_a), (2, run_b)):
        for k, v in enumerate(vals):
            rows.append({"model": model, "pair": pair, "person": person, "run": run, "slice": k, "gm_area_mm2": v})
    return rows


def test_retest_cv_hand_computed():
    rows = _areas("m", "p1", "A", [10.0, 20.0, 0.0], [10.0, 10.0, 0.0])  # slice 2: no GM in either run -> left out
    summary, pairs = retest_cv(pd.DataFrame(rows))
    # slice CVs: 0 and |20-10|/sqrt(2)/15 = 47.14 %; mean areas 15 and 10 -> 5/sqrt(2)/12.5 = 28.28 %
    assert pairs.iloc[0]["n_slices"] == 2
    assert pairs.iloc[0]["cv_slice_pct"] == pytest.approx((0 + 10 / math.sqrt(2) / 15 * 100) / 2)
    assert pairs.iloc[0]["cv_mean_area_pct"] == pytest.approx(5 / math.sqrt(2) / 12.5 * 100)
    assert summary.iloc[0]["cv_slice_pct"] == pytest.approx(pairs.iloc[0]["cv_slice_pct"])
    assert summary.iloc[0]["mean_area_mm2"] == pytest.approx(12.5)


def test_retest_cv_per_model_and_one_sided_failure():
    rows = _areas("stable", "p1", "A", [10.0, 12.0], [10.0, 12.0]) + _areas("stable", "p2", "B", [8.0], [8.0])
    rows += _areas("flaky", "p1", "A", [10.0, 12.0], [0.0, 12.0]) + _areas("flaky", "p2", "B", [8.0], [8.0])
    summary, pairs = retest_cv(pd.DataFrame(rows))
    s = summary.set_index("model")
    assert s.loc["stable", "cv_slice_pct"] == 0.0
    # flaky, pair p1: slices 141.42 % and 0 -> 70.71 %; pair p2: 0 -> mean over pairs 35.36 %
    assert s.loc["flaky", "cv_slice_pct"] == pytest.approx(100 * math.sqrt(2) / 4)
    assert s.loc["flaky", "n_pairs"] == 2 and s.loc["flaky", "n_persons"] == 2


def test_retest_cv_needs_two_runs():
    rows = _areas("m", "p1", "A", [1.0], [1.0])
    rows.append({"model": "m", "pair": "p1", "person": "A", "run": 3, "slice": 0, "gm_area_mm2": 1.0})
    with pytest.raises(ParameterError, match=r"pair 'p1' \(model 'm'\) has 3 run\(s\)"):
        retest_cv(pd.DataFrame(rows))


# ------------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------------


def test_markdown_summary_wording_follows_the_interval():
    tests = paired_comparison(_big_table(0.05), baseline="challenge", n_boot=100, seed=0)
    rows = _areas("challenge", "p1", "A", [10.0, 12.0], [10.5, 12.0])
    rows += _areas("ft", "p1", "A", [10.0, 12.0], [14.0, 9.0])
    cv, _ = retest_cv(pd.DataFrame(rows))
    text = markdown_summary(tests, cv=cv, scope="Scores on labelled slices only.")
    assert text.startswith("## Model comparison\n\nScores on labelled slices only.")
    assert "| DSC | ft | 15 | 16 | 0 |" in text and "(t) |" in text
    assert "**ft** improves Dice over challenge (interval above 0) but is less reproducible" in text
    assert "- ft improves DSC over challenge" in text
    assert "nan" not in text.lower().replace("n/a", "")


def test_markdown_summary_no_claim_without_an_interval(scan_table):
    tests = paired_comparison(scan_table, baseline="challenge", n_boot=100, seed=0)
    rows = _areas("challenge", "p1", "A", [10.0, 12.0], [10.5, 12.0])
    rows += _areas("better", "p1", "A", [10.0, 12.0], [14.0, 9.0])
    cv, _ = retest_cv(pd.DataFrame(rows))
    text = markdown_summary(tests, cv=cv)
    assert "gains" not in text and "improves" not in text and "significant" not in text
    assert "**better** vs challenge: no interval shown, so no claim of a Dice difference" in text
    assert "Intervals: no interval: no candidate kept 0.93-0.97 measured coverage for 6 persons" in text


def test_markdown_summary_single_model():
    t = _tidy({"challenge": [0.8, 0.9]}, ["a", "b"])
    text = markdown_summary(paired_comparison(t, baseline="challenge"), baseline="challenge")
    assert "Only one model: nothing to compare." in text
