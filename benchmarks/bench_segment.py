"""Segmentation speed on this machine: bare model forward vs `segment` end to end (and ONNX).

Prints, measured in one run:
(a) slices/s of the bare model forward on 200x200 batches (predict_on_batch, batch 8),
(b) slices/s of `segment` end to end on the sample scans (loading, reorientation, resampling,
    cord location, windows, inverse mapping included), and the ratio (b)/(a) (target >= 0.8),
(c) if tf2onnx and onnxruntime are installed, the same weights exported to ONNX (SCT's runtime)
    on the same batches, and ours/ONNX.

Usage: python benchmarks/bench_segment.py [--model challenge] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from pedgm_kit.demo import sample_cases  # noqa: E402
from pedgm_kit.model import export_onnx  # noqa: E402
from pedgm_kit.segment import Segmenter  # noqa: E402


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="challenge")
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings (default 3)")
    args = parser.parse_args()

    segmenter = Segmenter(args.model)
    images = [image for _, image, _ in sample_cases()]
    n_slices = sum(nib.load(p).shape[2] for p in images)
    windows = np.random.default_rng(0).normal(size=(n_slices, 200, 200)).astype(np.float32)

    segmenter.predict_windows(windows[:16])  # compile for the fixed batch size and the remainder
    segmenter.segment(images[0])
    t_bare = best_of(lambda: segmenter.predict_windows(windows), args.repeats)
    counter = {}

    def end_to_end():
        segmenter.windows_predicted = 0
        for image in images:
            segmenter.segment(image)
        counter["windows"] = segmenter.windows_predicted

    t_e2e = best_of(end_to_end, args.repeats)
    bare, e2e = n_slices / t_bare, n_slices / t_e2e
    print(f"scans: {len(images)}, slices: {n_slices}, windows predicted end to end: {counter['windows']}")
    print(f"(a) bare model forward, 200x200, batch {segmenter.batch_size}: {bare:7.1f} slices/s")
    print(f"(b) segment end to end:                      {e2e:7.1f} slices/s")
    print(f"ratio (b)/(a): {e2e / bare:.2f}  (target >= 0.8: {'ok' if e2e / bare >= 0.8 else 'MISSED'})")

    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: ONNX comparison skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(segmenter.model, os.path.join(tmp, "model.onnx"))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def onnx_forward():
            for start in range(0, n_slices, segmenter.batch_size):
                session.run(None, {"input_1": windows[start : start + segmenter.batch_size, ..., None]})

        onnx_forward()
        t_onnx = best_of(onnx_forward, args.repeats)
        ref = segmenter.model.predict_on_batch(windows[:8, ..., None])
        diff = float(np.abs(session.run(None, {"input_1": windows[:8, ..., None]})[0] - ref).max())
    onnx = n_slices / t_onnx
    print(f"(c) ONNX Runtime forward (SCT's runtime), batch {segmenter.batch_size}: {onnx:7.1f} slices/s "
          f"(max |diff| vs Keras {diff:.1e})")
    print(f"ours/ONNX, bare forward: {bare / onnx:.2f}; end to end: {e2e / onnx:.2f}")


if __name__ == "__main__":
    main()
