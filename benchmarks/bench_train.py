"""Training throughput with and without on-the-fly augmentation, and peak memory vs materialised x16.

Prints, measured in one run (each mode in its own child process so peak RSS is its own):
- training slices/s without augmentation and with on-the-fly augmentation, and their ratio
  (target >= 0.85: augmentation hides behind the training step in the tf.data pipeline);
- peak RSS of an augmented run vs a run on the materialised x16 copies of the same slices.

The slices are real: the bundled sample scans, preprocessed as notebook 01 does.

Usage: python benchmarks/bench_train.py [--slices 32] [--epochs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_slices(n: int, folder: Path) -> Path:
    """Preprocess sample scans until ``n`` slices; save images/masks to ``folder/slices.npz``."""
    import numpy as np

    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.preprocess import preprocess_scan, standardise
    from pedgm_kit.registry import fetch_group

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(fetch_group("gm-challenge-data"))
    images, masks = [], []
    for scan in index.scans:
        pre = preprocess_scan(scan)
        images.append(np.moveaxis(standardise(pre.image), 2, 0))
        masks.append(np.moveaxis(pre.gm_mask, 2, 0))
        if sum(len(i) for i in images) >= n:
            break
    path = folder / "slices.npz"
    np.savez(path, images=np.concatenate(images)[:n], masks=np.concatenate(masks)[:n])
    return path


def child(mode: str, path: str, epochs: int) -> None:
    """One measurement in this process; prints a JSON line."""
    import keras
    import numpy as np

    from pedgm_kit.augment import materialise
    from pedgm_kit.model import build_model, dice_coefficient, dice_loss
    from pedgm_kit.train import make_dataset

    keras.utils.set_random_seed(0)
    with np.load(path, allow_pickle=False) as data:
        images, masks = data["images"], data["masks"]
    if mode == "materialised":
        images, masks, _ = materialise(images, masks, multiplier=16, seed=0)
    x, y = images[..., None].astype(np.float32), masks[..., None].astype(np.float32)
    model = build_model(32, input_shape=(200, 200, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=dice_loss,
                  metrics=[keras.metrics.MeanMetricWrapper(dice_coefficient, name="dice")])
    data = make_dataset(x, y, batch_size=4, augment=mode == "augmented", seed=0)
    steps = None if mode != "materialised" else 8  # memory only: a few steps of the x16 set

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.last = time.perf_counter() - self.start

    timer = Timer()
    model.fit(data, epochs=epochs, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False)
    trained = (len(x) // 4) * 4 if steps is None else steps * 4
    print(json.dumps({"mode": mode, "slices": int(len(x)), "slices_per_s": trained / timer.last,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32, help="real slices to train on (default 32)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs; the last one is timed (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs per mode (default 2)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.epochs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = make_slices(args.slices, Path(tmp))
        results = {}
        # plain and augmented interleaved, best of --repeats each (this machine is noisy)
        for mode in ("plain", "augmented") * args.repeats + ("materialised",):
            out = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs), "--child", mode, str(path)],
                                 check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if mode not in results or result["slices_per_s"] > results[mode]["slices_per_s"]:
                results[mode] = result
    plain, aug, mat = results["plain"], results["augmented"], results["materialised"]
    ratio = aug["slices_per_s"] / plain["slices_per_s"]
    print(f"slices: {plain['slices']} real slices, batch 4, last of {args.epochs} epochs timed (CPU, TensorFlow)")
    print(f"training without augmentation:  {plain['slices_per_s']:6.2f} slices/s")
    print(f"training with on-the-fly aug.:  {aug['slices_per_s']:6.2f} slices/s")
    print(f"ratio augmented/plain: {ratio:.2f}  (target >= 0.85: {'ok' if ratio >= 0.85 else 'MISSED'})")
    print(f"peak RSS, on-the-fly augmented run: {aug['peak_rss_mb']:7.0f} MB")
    print(f"peak RSS, materialised x16 run ({mat['slices']} slices): {mat['peak_rss_mb']:7.0f} MB "
          f"(ratio {mat['peak_rss_mb'] / aug['peak_rss_mb']:.2f})")


if __name__ == "__main__":
    main()
