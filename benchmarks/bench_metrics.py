"""Benchmark of pedgm_kit.metrics.per_slice_metrics on 300 synthetic GM-like slices.

Run from the repository root::

    python benchmarks/bench_metrics.py [--slices 300] [--size 200] [--repeats 3]

Builds a seeded stack of ``size x size`` slices holding a grey-matter "butterfly" (union of
ellipses: two dorsal horns, two ventral horns and a commissure) that drifts and changes shape
along the stack, and a prediction that perturbs each slice by a few pixels (dilation or erosion,
a shift, small spurious blobs and bites). It times all ten metrics with ``per_slice_metrics``
(best of ``--repeats``) against the target of 10 s for 300 slices, and a naive Python loop of
``slice_metrics`` over the same slices, in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pedgm_kit.metrics import METRICS, _skeletonize_stack, per_slice_metrics, slice_metrics  # noqa: E402
from reference_thinning import skeletonize_stack as previous_skeletons  # noqa: E402  (the replaced code)

TARGET_S = 10.0
SPACING_MM = (0.25, 0.25, 5.0)  # sct_deepseg_gm works on 200 x 200 crops at 0.25 mm in-plane


def _ellipse(yy, xx, cy, cx, ry, rx, angle):
    c, s = np.cos(angle), np.sin(angle)
    u = (yy - cy) * c + (xx - cx) * s
    v = -(yy - cy) * s + (xx - cx) * c
    return (u / ry) ** 2 + (v / rx) ** 2 <= 1.0


def gm_slice(rng: np.random.Generator, size: int, center: tuple[float, float], scale: float) -> np.ndarray:
    """A butterfly-shaped GM mask (rows = anterior-posterior, columns = left-right)."""
    yy, xx = np.indices((size, size), dtype=float)
    cy, cx = center
    j = lambda: rng.normal(0.0, 0.08)  # noqa: E731  (small shape jitter)
    parts = [_ellipse(yy, xx, cy, cx, 2.5 * scale, 9 * scale, 0.0)]  # grey commissure
    for side in (-1, 1):
        # ventral (anterior) horns: wide and short; dorsal (posterior) horns: thin, long, slanted
        ventral = (cy + 6 * scale, cx + side * 7 * scale, (6 + j()) * scale, (4.5 + j()) * scale, side * (0.3 + j()))
        dorsal = (cy - 8 * scale, cx + side * 6 * scale, (10 + j()) * scale, (1.8 + j()) * scale, -side * (0.45 + j()))
        parts += [_ellipse(yy, xx, *ventral), _ellipse(yy, xx, *dorsal)]
    return np.logical_or.reduce(parts)


def perturb(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """A plausible prediction: erode by 1 or dilate by 1-2 px, shift by up to 2 px, add/remove small blobs."""
    pred = truth.copy()
    k = int(rng.integers(-1, 3))
    if k > 0:
        pred = ndi.binary_dilation(pred, iterations=k)
    elif k < 0:
        pred = ndi.binary_erosion(pred, iterations=-k)
    pred = np.roll(pred, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
    yy, xx = np.indices(pred.shape)
    edge = np.argwhere(pred ^ ndi.binary_erosion(pred))
    if len(edge):
        for cy, cx in edge[rng.integers(0, len(edge), size=3)]:
            r = rng.uniform(1.5, 3.5)
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            pred = pred | blob if rng.random() < 0.5 else pred & ~blob
    return pred


def make_stack(n_slices: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pred, truth) bool arrays of shape (size, size, n_slices); slices along axis 2."""
    rng = np.random.default_rng(seed)
    truth = np.empty((size, size, n_slices), dtype=bool)
    pred = np.empty_like(truth)
    for k in range(n_slices):
        phase = 2 * np.pi * k / max(n_slices, 1)
        drift = np.array([6 * np.sin(phase), 4 * np.cos(1.3 * phase)]) * size / 200
        center = tuple(size / 2 + drift + rng.normal(0, 1, size=2))
        scale = size / 200 * (1.0 + 0.15 * np.sin(3 * phase) + rng.normal(0, 0.03))
        truth[:, :, k] = gm_slice(rng, size, center, scale)
        pred[:, :, k] = perturb(rng, truth[:, :, k])
    return pred, truth


def skeleton_ratio(stack: np.ndarray, rounds: int = 5) -> tuple[float, float]:
    """Median seconds of the previous and the current skeleton path, alternating rounds; asserts equality."""
    old, new = [], []
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            result = previous_skeletons(stack) if which == 0 else _skeletonize_stack(stack)
            (old if which == 0 else new).append(time.perf_counter() - t0)
            if which == 0:
                reference = result
            else:
                current = result
        np.testing.assert_array_equal(current, reference)
    return float(np.median(old)), float(np.median(new))


def _best_of(repeats: int, func):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    pred, truth = make_stack(args.slices, args.size)
    print(
        f"data: {args.slices} slices of {args.size}x{args.size} px, spacing {SPACING_MM} mm, "
        f"GM {truth.sum() / args.slices:.0f} px/slice on average (built in {time.perf_counter() - t0:.1f} s)"
    )

    t_batch, frame = _best_of(args.repeats, lambda: per_slice_metrics(pred, truth, spacing_mm=SPACING_MM, axis=2))
    in_plane = SPACING_MM[:2]

    def naive():
        return [slice_metrics(pred[:, :, k], truth[:, :, k], spacing_mm=in_plane) for k in range(args.slices)]

    t_naive, rows = _best_of(args.repeats, naive)

    # the two paths must agree before their timings mean anything
    expected = np.array([[row[m] for m in METRICS] for row in rows])
    np.testing.assert_allclose(frame[list(METRICS)].to_numpy(), expected, rtol=1e-12, atol=1e-12, equal_nan=True)

    print(f"per_slice_metrics (all {len(METRICS)} metrics): {t_batch:.3f} s, {args.slices / t_batch:.0f} slices/s "
          f"(best of {args.repeats})")
    print(f"naive loop of slice_metrics:           {t_naive:.3f} s, {args.slices / t_naive:.0f} slices/s "
          f"(best of {args.repeats})")
    print(f"speed-up of per_slice_metrics over the loop: {t_naive / t_batch:.2f}x")
    scaled = t_batch * 300 / args.slices
    verdict = "holds" if scaled < TARGET_S else "MISSED"
    print(f"target < {TARGET_S:.0f} s for 300 slices: {verdict} ({scaled:.3f} s scaled to 300 slices)")
    print("mean metrics:", ", ".join(f"{m}={frame[m].mean():.3g}" for m in METRICS))
    stack = np.moveaxis(truth | pred, 2, 0)
    t_old, t_new = skeleton_ratio(stack)
    print(f"skeletons of {args.slices} slices: previous hand-written Guo-Hall {t_old:.3f} s, scikit-image thin "
          f"(one packed call) {t_new:.3f} s; new/previous time ratio {t_new / t_old:.2f} (<= 1: no slower); "
          "skeletons identical")
    return 0 if scaled < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
