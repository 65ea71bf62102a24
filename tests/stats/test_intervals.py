"""The measured interval rule (pedgm_kit.stats.intervals, benchmarks/ci_coverage.py): the intervals
agree with scipy, the rule is derived from the stored coverage table, and a small re-simulation of
one cell reproduces the stored coverage within Monte-Carlo error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pedgm_kit.exceptions import ParameterError
from pedgm_kit.stats.intervals import (
    COVERAGE_BAND,
    MEASURED_COVERAGE,
    METHODS,
    RULE,
    SHAPES,
    TABULATED_N,
    _signed_rank_cdf,
    batch_interval,
    choose_method,
    coverage,
    derive_rule,
    person_interval,
    simulate_differences,
)


def test_t_interval_matches_scipy(rng):
    v = rng.normal(0.02, 0.05, size=(3, 9))
    low, high = batch_interval(v, "t")
    for k in range(3):
        ref = sps.t.interval(0.95, 8, loc=v[k].mean(), scale=sps.sem(v[k]))
        assert (low[k], high[k]) == pytest.approx(ref)


@pytest.mark.parametrize("method, scipy_method", [("bca", "BCa"), ("percentile", "percentile")])
def test_bootstrap_intervals_match_scipy(rng, method, scipy_method):
    v = rng.gamma(2.0, 0.05, size=12)
    low, high = batch_interval(v[None, :], method, n_boot=20000, rng=np.random.default_rng(1))
    ref = sps.bootstrap((v,), np.mean, method=scipy_method, n_resamples=20000, random_state=2).confidence_interval
    width = ref.high - ref.low
    assert low[0] == pytest.approx(ref.low, abs=0.05 * width)
    assert high[0] == pytest.approx(ref.high, abs=0.05 * width)


def test_signed_rank_distribution_is_exact():
    # n = 10: P(T <= 8) = 25/1024 = 0.0244 (the classic two-sided 0.05 critical value 8)
    cdf = _signed_rank_cdf(10)
    assert cdf[8] == pytest.approx(25 / 1024) and cdf[-1] == pytest.approx(1.0)
    assert cdf[9] > 0.025


def test_hodges_lehmann_interval_bounds_are_walsh_averages(rng):
    v = rng.normal(size=10)
    low, high = batch_interval(v[None, :], "wilcoxon_hl")
    i, j = np.triu_indices(10)
    walsh = np.sort((v[i] + v[j]) / 2)
    assert low[0] == walsh[8] and high[0] == walsh[-9]  # k = 9 (P(T <= 8) <= 0.025)


def test_bad_method_and_shape():
    with pytest.raises(ParameterError, match="method must be one of"):
        batch_interval(np.ones((1, 4)), "jackknife")
    with pytest.raises(ParameterError, match="shape must be one of"):
        simulate_differences("cauchy", n_persons=4, n_studies=2, rng=np.random.default_rng(0))
    with pytest.raises(ParameterError, match="at least 2 persons"):
        batch_interval(np.ones((2, 1)), "t")


def test_rule_is_derived_from_the_measured_table():
    assert RULE == derive_rule(MEASURED_COVERAGE)
    assert set(MEASURED_COVERAGE) == set(SHAPES)
    for shape in SHAPES:
        assert sorted(MEASURED_COVERAGE[shape]) == list(TABULATED_N)
        for n in TABULATED_N:
            assert set(MEASURED_COVERAGE[shape][n]) == set(METHODS)
    for case, shapes in (("regular", ("normal", "skewed")), ("failure", SHAPES)):
        for n, method in RULE[case].items():
            if method is None:  # no method is in the band for every shape of the case
                assert not any(all(COVERAGE_BAND[0] <= MEASURED_COVERAGE[s][n][m] <= COVERAGE_BAND[1] for s in shapes)
                               for m in METHODS)
            else:
                assert all(COVERAGE_BAND[0] <= MEASURED_COVERAGE[s][n][method] <= COVERAGE_BAND[1] for s in shapes)


def test_derive_rule_picks_the_closest_qualifying_method():
    measured = {s: {10: {"t": 0.93, "wilcoxon_hl": 0.95, "bca": 0.90, "percentile": 0.99}} for s in SHAPES}
    assert derive_rule(measured) == {"regular": {10: "wilcoxon_hl"}, "failure": {10: "wilcoxon_hl"}}
    measured["failure"][10] = dict.fromkeys(METHODS, 0.5)
    assert derive_rule(measured)["failure"] == {10: None}


@pytest.mark.parametrize("shape, n, method", [("normal", 6, "t"), ("skewed", 14, "t")])
def test_small_resimulation_reproduces_the_stored_coverage(shape, n, method):
    """One cell again with 400 studies (another seed): within 4 Monte-Carlo SEs of the stored value."""
    measured = coverage(shape, n_persons=n, n_studies=400, seed=123, methods=[method])[method]
    stored = MEASURED_COVERAGE[shape][n][method]
    se = math.sqrt(stored * (1 - stored) / 400 + stored * (1 - stored) / 1000)
    assert abs(measured - stored) < 4 * se, (measured, stored)


def test_percentile_bootstrap_undercovers_with_four_persons():
    """The reason for the rule: the old interval at N = 4 covers far less than 95%."""
    assert coverage("normal", n_persons=4, n_studies=300, n_boot=500, seed=5, methods=["percentile"])[
        "percentile"] < 0.88


def test_choose_method_between_and_beyond_the_simulated_n():
    assert choose_method(3)[0] is None and "fewer than the 4" in choose_method(3)[1]
    assert choose_method(20) [0] == RULE["regular"][14]
    assert "rule of N = 14" in choose_method(20)[1]
    assert choose_method(100)[0] == RULE["regular"][30]
    method, reason = choose_method(6)
    assert (method is None) == (RULE["regular"][6] is None)
    assert reason.startswith("no interval" if method is None else method)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=0, max_size=40), st.booleans())
def test_person_interval_follows_the_rule(values, with_failures):
    out = person_interval(values, with_failures=with_failures, n_boot=100)
    method, _ = choose_method(len(values), with_failures=with_failures)
    assert out["n_persons"] == len(values)
    if out["method"] is None:
        assert math.isnan(out["ci_low"]) and out["interval_note"].startswith("no interval")
    else:
        assert out["method"] == method and out["ci_low"] <= out["ci_high"]
        assert out["ci_low"] <= out["mean"] + 1e-12 or method != "t"
