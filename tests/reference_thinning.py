"""The hand-written Guo & Hall (1989, algorithm A1) thinning pedgm_kit used before scikit-image's ``thin``.

Kept as an independent reference: ``tests/metrics/test_metrics_crosscheck.py`` shows the two agree pixel for
pixel, and ``benchmarks/bench_metrics.py`` times the switch. Not used by the package.
"""

from __future__ import annotations

import numpy as np


def guo_hall_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two sub-iterations, indexed by the 8-neighbour code.

    Bit ``k`` of the code is neighbour ``x_{k+1}``: x1 = east, then counter-clockwise.
    """
    x = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)
    xi = lambda i: x[:, (i - 1) % 8]  # noqa: E731  (1-based, x9 = x1)
    c = sum((~xi(2 * i - 1)) & (xi(2 * i) | xi(2 * i + 1)) for i in range(1, 5))
    n1 = sum(xi(2 * k - 1) | xi(2 * k) for k in range(1, 5))
    n2 = sum(xi(2 * k) | xi(2 * k + 1) for k in range(1, 5))
    n = np.minimum(n1, n2)
    common = (c == 1) & (n >= 2) & (n <= 3)
    return common & ~((xi(2) | xi(3) | ~xi(8)) & xi(1)), common & ~((xi(6) | xi(7) | ~xi(4)) & xi(5))


def skeletonize_stack(masks: np.ndarray) -> np.ndarray:
    """2D skeletons of every slice of a ``(n, rows, cols)`` bool stack, vectorised over foreground pixels."""
    n, rows, cols = masks.shape
    img = np.zeros((n, rows + 2, cols + 2), dtype=np.uint8)  # zero frame: no neighbour wraps
    img[:, 1:-1, 1:-1] = masks
    flat, w = img.reshape(-1), cols + 2
    offsets = np.array([1, 1 - w, -w, -w - 1, -1, w - 1, w, w + 1], dtype=np.intp)  # E, NE, N, ... SE
    weights = (1 << np.arange(8)).astype(np.intp)
    idx, luts = np.flatnonzero(flat), guo_hall_luts()
    while True:
        removed = False
        for lut in luts:
            kill = lut[flat[idx[:, None] + offsets] @ weights]
            if kill.any():
                flat[idx[kill]] = 0
                idx = idx[~kill]
                removed = True
        if not removed:
            return img[:, 1:-1, 1:-1].astype(bool)
