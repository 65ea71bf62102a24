"""Training speed of the code path users run (`train_variant`) against the bare network, and memory.

Prints, measured in one run, each measurement in its own child process (so peak RSS is its own),
modes interleaved over ``--repeats`` rounds and the best kept (this machine is noisy):

- ``train_variant`` (pretrained, no augmentation): training slices/s from its own ``summary.json``
  (every training step but the first, which traces the train function) and its wall time split
  (first step, validation, the rest);
- the bare fwd+bwd loop: ``model.train_on_batch`` on the same batches with the same model, loss and
  optimizer; ratio train_variant / bare (target >= 0.8);
- ``train_variant`` with on-the-fly augmentation: slices/s and the ratio to plain (target >= 0.85);
- deterministic training (the default: op determinism, augmentation not overlapped with the step)
  against ``deterministic=False``, both augmented: the cost, as a ratio;
- peak RSS of an augmented run vs a run on the materialised x16 copies of the same slices.

The slices are real: the bundled sample scans, preprocessed as notebook 01 does.

Usage: python benchmarks/bench_train.py [--slices 32] [--epochs 3] [--repeats 2]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_data(n: int, folder: Path) -> Path:
    """train.npz (``n`` slices) and small val/test splits from preprocessed sample scans."""
    import numpy as np

    from pedgm_kit.data_creation import save_npz
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
        if sum(len(i) for i in images) >= n + 16:
            break
    images, masks = np.concatenate(images), np.concatenate(masks)
    data = folder / "data"
    data.mkdir()
    for name, part in (("train", slice(0, n)), ("val", slice(n, n + 8)), ("test", slice(n + 8, n + 16))):
        save_npz({"images": images[part], "masks": masks[part]}, data / f"{name}.npz")
    return data


def child(mode: str, data: str, epochs: int) -> dict:
    """One measurement in this process."""
    import numpy as np

    from pedgm_kit.train import TrainConfig, load_arrays, train_variant

    if mode in ("variant", "variant_aug", "variant_nondeterministic"):
        config = TrainConfig(pretrained=True, augment=mode != "variant", epochs=epochs, sweep=True, seed=0,
                             deterministic=mode != "variant_nondeterministic")
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = train_variant(data, out, config, verbose=0)
            wall = time.perf_counter() - start
        return {"mode": mode, "slices_per_s": summary["train_slices_per_s"], "wall_s": wall,
                "fit_s": summary["seconds"], "first_step_s": summary["first_step_seconds"],
                "validation_s": summary["validation_seconds"], "peak_rss_mb": _rss()}
    from pedgm_kit._backend import keras
    from pedgm_kit.train.loop import build_for_training

    x, y = load_arrays(data, "train")
    if mode == "materialised":
        from pedgm_kit.augment import materialise

        xi, yi, _ = materialise(x[..., 0], y[..., 0].astype(np.uint8), multiplier=16, seed=0)
        x, y = xi[..., None].astype(np.float32), yi[..., None].astype(np.float32)
    keras.utils.set_random_seed(0)
    model = build_for_training(TrainConfig(pretrained=True, augment=False), x.shape[1:])
    steps = (len(x) // 4) * epochs if mode == "bare" else 8
    model.train_on_batch(x[:4], y[:4])  # traces, as train_variant's first step does (not timed there either)
    start = time.perf_counter()
    for step in range(steps):
        i = (step * 4) % (len(x) - len(x) % 4)
        model.train_on_batch(x[i : i + 4], y[i : i + 4])
    return {"mode": mode, "slices_per_s": steps * 4 / (time.perf_counter() - start), "peak_rss_mb": _rss()}


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32, help="real training slices (default 32)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each run (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best of each mode is kept (default 2)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("json:" + json.dumps(child(args.child[0], args.child[1], args.epochs)))
        return
    results: dict[str, dict] = {}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(args.slices, Path(tmp))
        modes = ("variant", "bare", "variant_aug", "variant_nondeterministic")
        for mode in modes * args.repeats + ("materialised",):
            out = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs), "--child", mode, str(data)],
                                 check=True, capture_output=True, text=True, env=env).stdout
            line = [row for row in out.splitlines() if row.startswith("json:")][-1]
            result = json.loads(line[5:])
            if mode not in results or result["slices_per_s"] > results[mode]["slices_per_s"]:
                results[mode] = result
    v, bare, aug, nondet, mat = (results[m] for m in (*modes, "materialised"))
    rest = v["wall_s"] - v["fit_s"]
    print(f"{args.slices} real training slices, batch 4, {args.epochs} epochs (CPU, TensorFlow), best of {args.repeats}")
    print(f"train_variant, pretrained, no augmentation: {v['slices_per_s']:.2f} slices/s (its summary); wall "
          f"{v['wall_s']:.1f} s = fit {v['fit_s']:.1f} s (first step {v['first_step_s']:.1f} s, validation "
          f"{v['validation_s']:.1f} s) + build, baseline, final scores, ONNX export {rest:.1f} s")
    print(f"bare train_on_batch loop, same model and batches:  {bare['slices_per_s']:.2f} slices/s")
    ratio = v["slices_per_s"] / bare["slices_per_s"]
    print(f"ratio train_variant / bare: {ratio:.2f}  (target >= 0.8: {'ok' if ratio >= 0.8 else 'MISSED'})")
    aug_ratio = aug["slices_per_s"] / v["slices_per_s"]
    print(f"train_variant with on-the-fly augmentation: {aug['slices_per_s']:.2f} slices/s; ratio to plain "
          f"{aug_ratio:.2f}  (target >= 0.85: {'ok' if aug_ratio >= 0.85 else 'MISSED'})")
    print(f"augmented, deterministic (default) vs deterministic=False: {aug['slices_per_s']:.2f} vs "
          f"{nondet['slices_per_s']:.2f} slices/s; ratio {aug['slices_per_s'] / nondet['slices_per_s']:.2f}")
    print(f"peak RSS, on-the-fly augmented run: {aug['peak_rss_mb']:7.0f} MB; materialised x16 "
          f"({args.slices * 16} slices): {mat['peak_rss_mb']:7.0f} MB (ratio {mat['peak_rss_mb'] / aug['peak_rss_mb']:.2f})")
    print("json:", json.dumps(results))


if __name__ == "__main__":
    main()
