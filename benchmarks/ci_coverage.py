"""Do the toolkit's 95% intervals over persons cover 95%? Simulated studies, every candidate interval.

For each shape of per-person paired Dice differences (normal; skewed with a long tail of losses;
normal with 10% failure outliers, see :func:`pedgm_kit.stats.intervals.simulate_differences`) and
each number of persons N = 4, 6, 10, 14, 30, 1,000 studies are simulated (seed 0) and each candidate
95% interval of the mean is computed on every study: percentile bootstrap, BCa bootstrap (2,000
resamples each), Student's t on the per-person differences, and the Hodges-Lehmann interval of the
Wilcoxon signed-rank test. Printed: the coverage of the true mean, method x N x shape, the
Monte-Carlo standard error, the rule derived from the table (:func:`pedgm_kit.stats.intervals.derive_rule`:
for each N, a method whose coverage lies in 0.93-0.97; none where none does) and the table as a
Python literal for ``MEASURED_COVERAGE`` in ``pedgm_kit/stats/intervals.py``.

Usage: python benchmarks/ci_coverage.py [--studies 1000] [--boot 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import pprint
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> None:
    from pedgm_kit.stats.intervals import COVERAGE_BAND, METHODS, SHAPES, TABULATED_N, coverage, derive_rule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000, help="simulated studies per cell")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples per interval")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    measured: dict[str, dict[int, dict[str, float]]] = {}
    for k, shape in enumerate(SHAPES):
        measured[shape] = {}
        for j, n in enumerate(TABULATED_N):
            cov = coverage(shape, n_persons=n, n_studies=args.studies, n_boot=args.boot,
                           seed=args.seed + 100 * k + j)
            measured[shape][n] = {m: round(c, 3) for m, c in cov.items()}
    seconds = time.perf_counter() - start

    se = math.sqrt(0.95 * 0.05 / args.studies)
    print(f"coverage of the true mean by nominal 95% intervals ({args.studies} studies per cell, "
          f"{args.boot} bootstrap resamples; Monte-Carlo SE at 0.95: {se:.3f}); in band "
          f"{COVERAGE_BAND[0]:.2f}-{COVERAGE_BAND[1]:.2f} marked *")
    header = "| method | shape | " + " | ".join(f"N={n}" for n in TABULATED_N) + " |"
    print(header)
    print("|" + "---|" * (2 + len(TABULATED_N)))
    for method in METHODS:
        for shape in SHAPES:
            cells = []
            for n in TABULATED_N:
                c = measured[shape][n][method]
                cells.append(f"{c:.3f}{'*' if COVERAGE_BAND[0] <= c <= COVERAGE_BAND[1] else ''}")
            print(f"| {method} | {shape} | " + " | ".join(cells) + " |")
    rule = derive_rule(measured)
    print("\nrule (N -> method; none = no interval shown):")
    for case, table in rule.items():
        what = "no failed scan (normal, skewed)" if case == "regular" else "a failed scan (all three shapes)"
        print(f"  {what}: " + ", ".join(f"N>={n}: {m or 'none'}" for n, m in table.items()))
    print(f"\n{seconds:.0f} s")
    print("\nMEASURED_COVERAGE = ", end="")
    pprint.pprint(measured, sort_dicts=False, width=110)


if __name__ == "__main__":
    main()
