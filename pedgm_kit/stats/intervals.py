"""Intervals of a mean over persons, and the measured rule of which one keeps its 95% promise.

A percentile bootstrap over 3-8 persons covers the true mean far less often than 95%. Which
interval the toolkit shows, for how many persons, is therefore not a choice but a measurement:
``benchmarks/ci_coverage.py`` simulates 1,000 studies per cell (per-person paired Dice differences
of three shapes -- normal, skewed, and with failure outliers -- for N = 4, 6, 10, 14, 30 persons)
and counts how often each candidate interval covers the true mean:

- ``percentile`` -- percentile bootstrap of the mean (resampling persons);
- ``bca`` -- bias-corrected and accelerated bootstrap (jackknife acceleration);
- ``t`` -- Student's t interval of the per-person values;
- ``wilcoxon_hl`` -- the Hodges-Lehmann interval of the Wilcoxon signed-rank test (Walsh averages,
  exact signed-rank quantiles; it targets the centre of symmetry, which is the mean only for
  symmetric shapes).

:data:`MEASURED_COVERAGE` is that benchmark's output, pasted; :func:`derive_rule` turns it into
:data:`RULE` (N -> method, or none), and :func:`person_interval` applies the rule: a method is used
for N persons only if its measured coverage lies within :data:`COVERAGE_BAND` for every shape that
can describe the data (normal and skewed; with a failed scan among the persons, the failure shape
too). Where no method qualifies, no interval is shown and the reason says so.

The simulation and the intervals are vectorised over studies (rows of a 2-D array), so the benchmark
and :func:`person_interval` call the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as sps

from ..exceptions import ParameterError
from ..io import check_choice

__all__ = [
    "COVERAGE_BAND",
    "METHODS",
    "MEASURED_COVERAGE",
    "RULE",
    "SHAPES",
    "TABULATED_N",
    "batch_interval",
    "choose_method",
    "coverage",
    "derive_rule",
    "person_interval",
    "simulate_differences",
]

METHODS: tuple[str, ...] = ("t", "wilcoxon_hl", "bca", "percentile")
"""Candidate intervals, in order of preference when several qualify equally well."""

SHAPES: tuple[str, ...] = ("normal", "skewed", "failure")
"""Simulated shapes of per-person paired Dice differences (see :func:`simulate_differences`)."""

TABULATED_N: tuple[int, ...] = (4, 6, 10, 14, 30)
"""Numbers of persons simulated by ``benchmarks/ci_coverage.py``."""

COVERAGE_BAND: tuple[float, float] = (0.93, 0.97)
"""Measured coverage a nominal 95% interval must reach (and not exceed) to be shown."""

LEVEL = 0.95
"""The nominal coverage measured; the only one the rule covers."""

# Shape parameters of the simulation: per-person paired Dice differences (model minus baseline).
_MEAN, _SD = 0.02, 0.04
_FAILURE_RATE, _FAILURE_MEAN, _FAILURE_SD = 0.10, -0.60, 0.10

#: Output of ``python benchmarks/ci_coverage.py`` (1,000 simulated studies per cell, 2,000 bootstrap
#: resamples, seed 0): coverage of the true mean by each nominal 95% interval, shape -> N -> method.
MEASURED_COVERAGE: dict[str, dict[int, dict[str, float]]] = {
    "normal": {
        4: {"t": 0.94, "wilcoxon_hl": 0.871, "bca": 0.796, "percentile": 0.798},
        6: {"t": 0.96, "wilcoxon_hl": 0.976, "bca": 0.876, "percentile": 0.867},
        10: {"t": 0.954, "wilcoxon_hl": 0.95, "bca": 0.902, "percentile": 0.904},
        14: {"t": 0.941, "wilcoxon_hl": 0.944, "bca": 0.911, "percentile": 0.909},
        30: {"t": 0.947, "wilcoxon_hl": 0.952, "bca": 0.936, "percentile": 0.937},
    },
    "skewed": {
        4: {"t": 0.916, "wilcoxon_hl": 0.844, "bca": 0.771, "percentile": 0.762},
        6: {"t": 0.917, "wilcoxon_hl": 0.951, "bca": 0.849, "percentile": 0.831},
        10: {"t": 0.92, "wilcoxon_hl": 0.927, "bca": 0.885, "percentile": 0.872},
        14: {"t": 0.937, "wilcoxon_hl": 0.927, "bca": 0.905, "percentile": 0.903},
        30: {"t": 0.936, "wilcoxon_hl": 0.886, "bca": 0.928, "percentile": 0.932},
    },
    "failure": {
        4: {"t": 0.629, "wilcoxon_hl": 0.483, "bca": 0.425, "percentile": 0.406},
        6: {"t": 0.546, "wilcoxon_hl": 0.622, "bca": 0.48, "percentile": 0.474},
        10: {"t": 0.654, "wilcoxon_hl": 0.656, "bca": 0.634, "percentile": 0.645},
        14: {"t": 0.755, "wilcoxon_hl": 0.431, "bca": 0.743, "percentile": 0.745},
        30: {"t": 0.899, "wilcoxon_hl": 0.191, "bca": 0.932, "percentile": 0.903},
    },
}


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


def simulate_differences(shape: str, *, n_persons: int, n_studies: int, rng: np.random.Generator):
    """Per-person paired Dice differences of ``n_studies`` simulated studies.

    Shapes (all with mean 0.02 and SD 0.04 apart from the failures):

    - ``normal``: N(0.02, 0.04);
    - ``skewed``: 0.02 - 0.04 (G - 2) / sqrt(2), G ~ Gamma(2, 1): a long tail of losses
      (skewness -1.41), as when a variant sometimes does much worse than the baseline;
    - ``failure``: the normal shape, but each person with probability 0.10 is a failure of the
      variant (an empty or nearly empty prediction): difference N(-0.60, 0.10).

    Returns
    -------
    values : numpy.ndarray, shape (n_studies, n_persons)
    true_mean : float
        The population mean the intervals should cover.
    """
    check_choice(shape, SHAPES, name="shape")
    size = (int(n_studies), int(n_persons))
    if shape == "normal":
        return rng.normal(_MEAN, _SD, size), _MEAN
    if shape == "skewed":
        return _MEAN - _SD * (rng.gamma(2.0, 1.0, size) - 2.0) / math.sqrt(2.0), _MEAN
    values = rng.normal(_MEAN, _SD, size)  # "failure"
    failed = rng.random(size) < _FAILURE_RATE
    values[failed] = rng.normal(_FAILURE_MEAN, _FAILURE_SD, int(failed.sum()))
    return values, (1 - _FAILURE_RATE) * _MEAN + _FAILURE_RATE * _FAILURE_MEAN


# --------------------------------------------------------------------------------------------
# Intervals, vectorised over studies (rows)
# --------------------------------------------------------------------------------------------


def _t(values: np.ndarray, level: float):
    n = values.shape[1]
    mean = values.mean(axis=1)
    half = sps.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=1, ddof=1) / math.sqrt(n)
    return mean - half, mean + half


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T <= t), t = 0..n(n+1)/2, of the signed-rank statistic under the null (exact)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return np.cumsum(counts) / 2.0**n


def _wilcoxon_hl(values: np.ndarray, level: float):
    n = values.shape[1]
    i, j = np.triu_indices(n)
    walsh = np.sort((values[:, i] + values[:, j]) / 2.0, axis=1)
    cdf = _signed_rank_cdf(n)
    ok = np.flatnonzero(cdf <= (1 - level) / 2)  # P(T <= k - 1) <= alpha / 2  ->  k = index + 1
    k = int(ok[-1]) + 1 if ok.size else 1  # too few persons: the widest interval (coverage < level)
    return walsh[:, k - 1], walsh[:, walsh.shape[1] - k]


def _row_quantiles(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantile ``q[r]`` of each sorted row ``r`` (numpy's default method)."""
    b = sorted_rows.shape[1]
    pos = np.clip(q, 0.0, 1.0) * (b - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, b - 1)
    rows = np.arange(sorted_rows.shape[0])
    return sorted_rows[rows, lo] + (pos - lo) * (sorted_rows[rows, hi] - sorted_rows[rows, lo])


def _bootstrap(values: np.ndarray, level: float, *, bca: bool, n_boot: int, rng: np.random.Generator,
               chunk: int = 64):
    r, n = values.shape
    low, high = np.empty(r), np.empty(r)
    tail = (1 - level) / 2
    z = sps.norm.ppf([tail, 1 - tail])
    for start in range(0, r, chunk):
        v = values[start:start + chunk]
        c = v.shape[0]
        draw = rng.integers(0, n, size=(c, n_boot, n))
        boot = np.sort(v[np.arange(c)[:, None, None], draw].mean(axis=2), axis=1)
        if not bca:
            q = np.broadcast_to([tail, 1 - tail], (c, 2))
        else:
            theta = v.mean(axis=1)
            below = (boot < theta[:, None]).mean(axis=1)
            z0 = sps.norm.ppf(np.clip(below, 1.0 / (n_boot + 1), n_boot / (n_boot + 1.0)))
            jack = (v.sum(axis=1, keepdims=True) - v) / (n - 1)
            dev = jack.mean(axis=1, keepdims=True) - jack
            den = 6.0 * (dev**2).sum(axis=1) ** 1.5
            with np.errstate(invalid="ignore", divide="ignore"):
                a = np.where(den > 0, (dev**3).sum(axis=1) / den, 0.0)
            zz = z0[:, None] + z[None, :]
            q = sps.norm.cdf(z0[:, None] + zz / (1 - a[:, None] * zz))
        low[start:start + c] = _row_quantiles(boot, q[:, 0])
        high[start:start + c] = _row_quantiles(boot, q[:, 1])
    return low, high


def batch_interval(values, method: str, *, level: float = LEVEL, n_boot: int = 2000,
                   rng: np.random.Generator | None = None):
    """Interval of the mean of each row of ``values`` (one row per study, one column per person).

    Parameters
    ----------
    values : array_like, shape (n_studies, n_persons)
        Per-person values (e.g. paired Dice differences); n_persons >= 2, no NaN.
    method : {"t", "wilcoxon_hl", "bca", "percentile"}
    level : float, default 0.95
    n_boot : int, default 2000
        Bootstrap resamples (bootstrap methods).
    rng : numpy.random.Generator, optional
        Source of the bootstrap draws; default ``default_rng(0)``.

    Returns
    -------
    low, high : numpy.ndarray, shape (n_studies,)
    """
    check_choice(method, METHODS, name="method")
    v = np.atleast_2d(np.asarray(values, dtype=float))
    if v.shape[1] < 2 or not np.isfinite(v).all():
        raise ParameterError(f"values must be finite with at least 2 persons per row; got shape {v.shape}")
    if method == "t":
        return _t(v, level)
    if method == "wilcoxon_hl":
        return _wilcoxon_hl(v, level)
    return _bootstrap(v, level, bca=method == "bca", n_boot=int(n_boot),  # "bca" or "percentile"
                      rng=rng if rng is not None else np.random.default_rng(0))


def coverage(shape: str, *, n_persons: int, n_studies: int = 1000, n_boot: int = 2000, seed: int = 0,
             methods: Sequence[str] = METHODS) -> dict[str, float]:
    """Fraction of ``n_studies`` simulated studies whose interval covers the true mean, per method.

    Every method sees the same simulated studies (drawn from ``default_rng(seed)``).
    """
    rng = np.random.default_rng(seed)
    values, truth = simulate_differences(shape, n_persons=n_persons, n_studies=n_studies, rng=rng)
    out = {}
    for method in methods:
        low, high = batch_interval(values, method, n_boot=n_boot, rng=rng)
        out[method] = float(np.mean((low <= truth) & (truth <= high)))
    return out


# --------------------------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------------------------


def derive_rule(measured: Mapping[str, Mapping[int, Mapping[str, float]]], *,
                band: tuple[float, float] = COVERAGE_BAND) -> dict[str, dict[int, str | None]]:
    """Per case (``"regular"``: normal and skewed shapes; ``"failure"``: all three) and N, the method.

    A method qualifies for N when its coverage lies in ``band`` for every shape of the case; of
    the qualifying methods the one with the smallest worst-case distance to 0.95 is chosen (ties:
    the order of :data:`METHODS`). None when no method qualifies.
    """
    cases = {"regular": ("normal", "skewed"), "failure": SHAPES}
    rule: dict[str, dict[int, str | None]] = {}
    for case, shapes in cases.items():
        rule[case] = {}
        ns = sorted(set.intersection(*(set(measured.get(s, {})) for s in shapes)))
        for n in ns:
            best, best_gap = None, math.inf
            for method in METHODS:
                covs = [measured[s][n].get(method, math.nan) for s in shapes]
                if all(band[0] <= c <= band[1] for c in covs):
                    gap = max(abs(c - LEVEL) for c in covs)
                    if gap < best_gap:
                        best, best_gap = method, gap
            rule[case][int(n)] = best
    return rule


RULE: dict[str, dict[int, str | None]] = derive_rule(MEASURED_COVERAGE)
"""N -> interval method (or None) per case, derived from :data:`MEASURED_COVERAGE`."""


_NAMES = {"t": "t interval", "wilcoxon_hl": "Hodges-Lehmann (Wilcoxon signed-rank) interval",
          "bca": "BCa bootstrap", "percentile": "percentile bootstrap"}


def choose_method(n_persons: int, *, with_failures: bool = False) -> tuple[str | None, str]:
    """The interval method the measured rule gives for ``n_persons`` persons, and why.

    N between simulated values uses the rule of the largest simulated N below it (coverage grows
    with N for every candidate); N above 30 uses N = 30's; fewer than 4 persons: none (coverage not
    measured).

    Returns
    -------
    method : str or None
    reason : str
        For a method: which one and its measured coverage range; for None: why no interval.
    """
    case = "failure" if with_failures else "regular"
    table = RULE.get(case, {})
    below = [n for n in table if n <= n_persons]
    if not below:
        return None, (f"no interval: {n_persons} person(s), fewer than the {min(TABULATED_N)} for which coverage "
                      "was measured (benchmarks/ci_coverage.py)")
    n = max(below)
    method = table[n]
    shapes = ("normal", "skewed", "failure") if with_failures else ("normal", "skewed")
    what = "with a failed scan among them" if with_failures else "without failed scans"
    at = f"{n_persons} persons" + ("" if n == n_persons else f" (rule of N = {n}, the largest simulated N below)")

    def _range(m: str) -> str:
        covs = [MEASURED_COVERAGE[s][n][m] for s in shapes]
        return f"{min(covs):.3f}-{max(covs):.3f}"

    if method is None:
        closest = min(METHODS, key=lambda m: max(abs(MEASURED_COVERAGE[s][n][m] - LEVEL) for s in shapes))
        return None, (f"no interval: no candidate kept {COVERAGE_BAND[0]:.2f}-{COVERAGE_BAND[1]:.2f} measured "
                      f"coverage for {at} {what} (benchmarks/ci_coverage.py; closest: {_NAMES[closest]}, "
                      f"{_range(closest)})")
    return method, f"{_NAMES[method]} (measured coverage {_range(method)} for {at} {what}, benchmarks/ci_coverage.py)"


def person_interval(values, *, with_failures: bool = False, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of per-person values with the 95% interval the measured rule allows.

    Parameters
    ----------
    values : array_like of float
        One value per person (e.g. a person's mean paired Dice difference); NaN values are dropped.
    with_failures : bool, default False
        Whether a failed scan (empty prediction) is among the persons: the rule then requires the
        interval to hold for the failure shape too.
    n_boot : int, default 2000
        Bootstrap resamples, when the rule picks a bootstrap.
    seed : int, default 0
        Seed of the bootstrap draws.

    Returns
    -------
    dict
        ``mean, ci_low, ci_high`` (NaN when no interval), ``n_persons``, ``method`` (None when no
        interval) and ``interval_note`` (the method and its measured coverage, or why none).
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    out = {"mean": float(v.mean()) if v.size else math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "n_persons": int(v.size), "method": None, "interval_note": ""}
    method, reason = choose_method(int(v.size), with_failures=with_failures)
    out["interval_note"] = reason
    if method is None:
        return out
    if np.ptp(v) == 0:
        out["interval_note"] = f"no interval: all {v.size} per-person values are equal"
        return out
    low, high = batch_interval(v[None, :], method, n_boot=n_boot, rng=np.random.default_rng(seed))
    out.update(ci_low=float(low[0]), ci_high=float(high[0]), method=method)
    return out
