"""Segmentation speed on this machine: engines, `segment` end to end, SCT's runtime, cohort mode.

Prints, measured in one run (run it alone: this machine is noisy):
(a) slices/s of the bare forward of every engine on the same 200x200 windows (batch 8; rounds
    alternate between engines, best round kept): keras, xla, onnx (ONNX Runtime, SCT's runtime),
    openvino, and the JAX backend's keras forward (in a child process);
(b) slices/s of `Segmenter.segment` end to end on the 9 labelled sample scans with the default
    engine (loading, reorientation, resampling, cord location, windows, inverse mapping included),
    and the windows it predicted;
(c) = the ONNX Runtime bare forward of (a); ratios (b)/(c) (target >= 1.5) and (b)/(a);
(d) `pedgm segment <folder>` on the 9 scans in one process vs 9 separate `pedgm segment` processes
    (wall time, model loading and start-up included; target >= 3x).

Usage: python benchmarks/bench_segment.py [--model challenge] [--rounds 3] [--skip-cohort]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENGINES = ("keras", "xla", "onnx", "openvino")


def _windows(n: int):
    import numpy as np

    return np.random.default_rng(0).normal(size=(n, 200, 200)).astype(np.float32)


def bare_rates(model: str, rounds: int, n: int = 64) -> dict[str, float]:
    """Bare forward slices/s per engine, alternating engines round by round."""
    from pedgm_kit.segment import Segmenter

    windows = _windows(n)
    segmenters = {name: Segmenter(model, engine=name) for name in ENGINES}
    for seg in segmenters.values():
        seg.predict_windows(windows[:16])  # compile / trace for the batch shapes
    best = dict.fromkeys(ENGINES, 0.0)
    for r in range(rounds):
        order = ENGINES if r % 2 == 0 else ENGINES[::-1]
        for name in order:
            start = time.perf_counter()
            segmenters[name].predict_windows(windows)
            best[name] = max(best[name], n / (time.perf_counter() - start))
    return best


def jax_rate(model: str, n: int = 32) -> float | None:
    """The JAX backend's bare forward (keras engine), in a child process."""
    code = (
        "import sys, time, numpy as np; sys.path.insert(0, %r); "
        "from pedgm_kit.segment import Segmenter; s = Segmenter(%r, engine='keras'); "
        "w = np.random.default_rng(0).normal(size=(%d, 200, 200)).astype(np.float32); s.predict_windows(w[:16]); "
        "t = time.perf_counter(); s.predict_windows(w); print(%d / (time.perf_counter() - t))"
    ) % (str(REPO), model, n, n)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    try:
        return float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def end_to_end(model: str, images: list[Path], rounds: int) -> tuple[float, int, int]:
    """Best slices/s of segment() over the scans with the default engine; slices and windows."""
    import nibabel as nib

    from pedgm_kit.segment import Segmenter

    seg = Segmenter(model)
    seg.segment(images[0])
    n_slices = sum(nib.load(p).shape[2] for p in images)
    best, windows = 0.0, 0
    for _ in range(rounds):
        seg.windows_predicted = 0
        start = time.perf_counter()
        for image in images:
            seg.segment(image)
        best = max(best, n_slices / (time.perf_counter() - start))
        windows = seg.windows_predicted
    return best, n_slices, windows, seg.engine.name


def cohort_vs_processes(images: list[Path]) -> tuple[float, float]:
    """Wall seconds: one `pedgm segment <folder>` vs one `pedgm segment <image>` process per scan."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pedgm = [sys.executable, "-m", "pedgm_kit.cli", "segment"]
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp) / "cohort", Path(tmp) / "separate"
        for folder in (one, many):
            folder.mkdir()
            for image in images:
                shutil.copy(image, folder / image.name)
        start = time.perf_counter()
        subprocess.run([*pedgm, str(one)], check=True, capture_output=True, env=env)
        t_cohort = time.perf_counter() - start
        start = time.perf_counter()
        for image in sorted(many.iterdir()):
            subprocess.run([*pedgm, str(image)], check=True, capture_output=True, env=env)
        t_separate = time.perf_counter() - start
    return t_cohort, t_separate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="challenge")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds, best kept (default 3)")
    parser.add_argument("--skip-cohort", action="store_true", help="skip (d), the slowest part")
    args = parser.parse_args()

    from pedgm_kit.demo import sample_cases

    images = [image for _, image, _ in sample_cases()]
    rates = bare_rates(args.model, args.rounds)
    rates_jax = jax_rate(args.model)
    e2e, n_slices, windows, engine = end_to_end(args.model, images, args.rounds)
    onnx = rates["onnx"]
    result = {"bare": rates, "jax_keras": rates_jax, "end_to_end": e2e, "engine": engine, "slices": n_slices,
              "windows": windows}
    print("(a) bare forward, 200x200, batch 8 (slices/s): "
          + ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
          + (f", keras on JAX {rates_jax:.1f}" if rates_jax else ", keras on JAX: not measured"))
    print(f"(b) segment end to end, {len(images)} scans, {n_slices} slices ({windows} windows predicted), "
          f"engine {engine}: {e2e:.1f} slices/s")
    print(f"(c) ONNX Runtime bare forward (SCT's runtime): {onnx:.1f} slices/s")
    print(f"ratio (b)/(c): {e2e / onnx:.2f}  (target >= 1.5: {'ok' if e2e / onnx >= 1.5 else 'MISSED'}); "
          f"(b)/(a {engine}): {e2e / rates[engine]:.2f}; best bare engine / ONNX Runtime: "
          f"{max(rates.values()) / onnx:.2f}")
    if not args.skip_cohort:
        t_cohort, t_separate = cohort_vs_processes(images)
        speedup = t_separate / t_cohort
        result.update(cohort_s=t_cohort, separate_s=t_separate)
        print(f"(d) {len(images)} scans: one `pedgm segment <folder>` {t_cohort:.1f} s, {len(images)} separate "
              f"processes {t_separate:.1f} s: {speedup:.1f}x  (target >= 3: {'ok' if speedup >= 3 else 'MISSED'})")
    print("json:", json.dumps(result))


if __name__ == "__main__":
    main()
