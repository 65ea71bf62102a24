"""Single paired tests: Wilcoxon signed-rank, person bootstrap CI of the mean difference, Holm."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..exceptions import ParameterError

__all__ = ["MIN_WILCOXON_PAIRS", "bootstrap_mean_diff", "holm", "wilcoxon_signed_rank"]

MIN_WILCOXON_PAIRS = 6
"""Fewest non-zero paired differences for which a p-value is reported.

With 5 pairs the smallest attainable two-sided exact p-value is 2/2**5 = 0.0625, so the test can
never reject at 0.05; below 6 pairs the p-value is NaN and the ``note`` says why."""


# --------------------------------------------------------------------------------------------
# Single tests
# --------------------------------------------------------------------------------------------


def wilcoxon_signed_rank(
    differences, *, alternative: str = "two-sided", min_pairs: int = MIN_WILCOXON_PAIRS
) -> dict[str, float | int | str]:
    """Wilcoxon signed-rank test of paired differences (model minus baseline).

    Zero differences are dropped (Wilcoxon's original method, ``zero_method="wilcox"``), NaN
    differences too; the exact null distribution is used when scipy can (no ties, n <= 50),
    the normal approximation otherwise (``method="auto"``).

    Parameters
    ----------
    differences : array_like of float
        Paired differences, one per scan (or slice).
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        As in :func:`scipy.stats.wilcoxon`.
    min_pairs : int, default :data:`MIN_WILCOXON_PAIRS` (6)
        Fewest non-zero differences for which a p-value is computed.

    Returns
    -------
    dict
        ``n`` (finite differences), ``n_nonzero``, ``statistic`` (scipy's W, NaN if not
        computed), ``p_value`` (NaN if not computed) and ``note`` ("" when the test ran, else the
        reason: too few pairs, all differences zero, NaN differences dropped).

    Raises
    ------
    ParameterError
        If ``alternative`` is not one of the three values.

    Examples
    --------
    >>> wilcoxon_signed_rank([0.1, 0.2, -0.05, 0.3, 0.02, 0.04])["p_value"]
    0.15625
    >>> wilcoxon_signed_rank([0.0, 0.0, 0.0])["note"]
    'all 3 differences are zero: no test'
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ParameterError(f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}")
    d = np.asarray(differences, dtype=float).ravel()
    finite = d[np.isfinite(d)]
    nonzero = finite[finite != 0]
    out: dict[str, float | int | str] = {
        "n": int(finite.size), "n_nonzero": int(nonzero.size),
        "statistic": math.nan, "p_value": math.nan, "note": "",
    }
    notes = []
    if finite.size < d.size:
        notes.append(f"{d.size - finite.size} NaN difference(s) dropped")
    if finite.size and nonzero.size == 0:
        notes.append(f"all {finite.size} differences are zero: no test")
    elif nonzero.size < min_pairs:
        notes.append(f"{nonzero.size} non-zero pair(s) < {min_pairs}: too few for a signed-rank test")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's notes on ties/approximations: reported below
            res = sps.wilcoxon(nonzero, zero_method="wilcox", alternative=alternative, method="auto")
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
        if nonzero.size < finite.size:
            notes.append(f"{finite.size - nonzero.size} zero difference(s) dropped")
    out["note"] = "; ".join(notes)
    return out


def bootstrap_mean_diff(
    differences,
    *,
    groups,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, float | int | str]:
    """Percentile bootstrap CI of the mean paired difference, resampling groups (persons).

    Not used for the reported intervals: with few persons it covers far less than its nominal
    level (0.76-0.87 for 4-6 persons, ``benchmarks/ci_coverage.py``); reports use
    :func:`pedgm_kit.stats.person_interval`, which applies the measured rule.

    Each of ``n_boot`` resamples draws as many persons as there are, with replacement, and takes
    the mean of all differences of the drawn persons (a person drawn twice counts twice). The
    point estimate is the plain mean of all differences. Vectorised: per-person sums and counts,
    one ``(n_boot, n_persons)`` index draw.

    Parameters
    ----------
    differences : array_like of float
        Paired differences (model minus baseline), one per scan or slice. NaN entries are dropped.
    groups : array_like
        Person id of each difference, same length.
    n_boot : int, default 2000
        Number of bootstrap resamples (>= 1).
    seed : int, default 0
        Seed of ``numpy.random.default_rng``: the same input and seed give the same interval.
    ci : float, default 0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    dict
        ``mean_diff``, ``ci_low``, ``ci_high``, ``n`` (differences used), ``n_persons`` and
        ``note``. With fewer than 2 persons the interval is NaN (resampling one person only
        reproduces its own mean) and the note says so.

    Raises
    ------
    ParameterError
        If the lengths differ, ``n_boot < 1`` or ``ci`` is not in (0, 1).
    """
    d = np.asarray(differences, dtype=float).ravel()
    g = np.asarray(groups, dtype=object).ravel()
    if d.shape != g.shape:
        raise ParameterError(f"differences has {d.size} values but groups has {g.size}; expected equal lengths")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ParameterError(f"n_boot must be an integer >= 1; got {n_boot!r}")
    if not 0 < ci < 1:
        raise ParameterError(f"ci must be in (0, 1); got {ci!r}")
    keep = np.isfinite(d)
    d, g = d[keep], g[keep]
    codes, uniques = pd.factorize(pd.Series(g, dtype=object), sort=True)
    out: dict[str, float | int | str] = {
        "mean_diff": float(d.mean()) if d.size else math.nan,
        "ci_low": math.nan, "ci_high": math.nan,
        "n": int(d.size), "n_persons": int(len(uniques)), "note": "",
    }
    if len(uniques) < 2:
        out["note"] = f"{len(uniques)} person(s): no bootstrap interval"
        return out
    sums = np.bincount(codes, weights=d, minlength=len(uniques))
    counts = np.bincount(codes, minlength=len(uniques)).astype(float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(uniques), size=(int(n_boot), len(uniques)))
    means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    tail = (1.0 - ci) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    out["ci_low"], out["ci_high"] = float(low), float(high)
    if len(uniques) < 5:
        out["note"] = f"only {len(uniques)} persons: the interval is rough"
    return out


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control).

    Sort the m finite p-values ascending, multiply the k-th smallest (k = 1..m) by ``m - k + 1``,
    make the sequence non-decreasing by a running maximum, clip at 1, and return in input order.
    NaN p-values (tests not run) are left NaN and do not count in m.

    Parameters
    ----------
    p_values : array_like of float
        Raw p-values, NaN allowed.

    Returns
    -------
    numpy.ndarray of float
        Adjusted p-values, same shape as the input.

    Raises
    ------
    ParameterError
        If a finite p-value is outside [0, 1].

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=float)
    flat = p.ravel()
    ok = np.isfinite(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ParameterError(f"p-values must be in [0, 1]; got {flat[ok][(flat[ok] < 0) | (flat[ok] > 1)].tolist()}")
    out = np.full(flat.shape, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size:
        order = idx[np.argsort(flat[idx], kind="stable")]
        m = idx.size
        scaled = flat[order] * (m - np.arange(m))
        out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out.reshape(p.shape)
