"""Which fine-tuning recipe adapts the pretrained network to a simulated new domain (and at what budget)?

On the demo's person-grouped split of the sample data (train 3 persons, val 2, test 1: sub-9584),
every array is shifted (``invert``: a simulated contrast inversion, ``-x`` of the standardised slices,
exactly what inverting the scan and standardising again gives), and each recipe of
:data:`pedgm_kit.train.RECIPES` is trained from the challenge weights with ``train_variant`` (no
augmentation, Adam, batch 4, ``--slices`` training slices, ``--epochs`` epochs without early
stopping), next to training from scratch at the same budget and the untrained baseline. Each run is
its own process (deterministic, seeded). Prints the held-out (test person) Dice at each model's own
threshold (fixed a priori by its loss), the best hard validation Dice and the validation curve.

Usage: python benchmarks/adapt_recipes.py --data outputs/<run>/data/data [--slices 48] [--epochs 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shifted_copy(data: Path, out: Path, shift: str) -> Path:
    """The split arrays with the simulated shift applied (invert only: -x of standardised slices)."""
    import numpy as np

    from pedgm_kit.data_creation import load_split, save_npz

    if shift != "invert":
        raise SystemExit("this study simulates 'invert' on the arrays; scale shifts go through notebook 01")
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        arrays = load_split(data / f"{split}.npz")
        arrays["images"] = (-arrays["images"]).astype(np.float32)
        save_npz(arrays, out / f"{split}.npz")
    return out


def child(recipe: str, data: str, slices: int, epochs: int, batch_size: int = 4, learning_rate: float = 1e-3) -> dict:
    from pedgm_kit.train import RECIPES, TrainConfig, train_variant

    settings = {} if recipe == "scratch" else RECIPES[recipe]
    config = TrainConfig(pretrained=recipe != "scratch", augment=False, epochs=epochs, sweep=True, max_slices=slices,
                         seed=0, batch_size=batch_size, learning_rate=learning_rate, **settings)
    with tempfile.TemporaryDirectory() as out:
        summary = train_variant(data, out, config, verbose=0)
        import csv

        with open(Path(out) / summary["variant"] / "history.csv") as fh:
            curve = [float(row[summary["selection_metric"]]) for row in csv.DictReader(fh)]
    return {"recipe": recipe, "test": summary["test_dice"], "threshold": summary["threshold"],
            "baseline": summary["baseline_test_dice"], "best_val": summary["best_val_dice"],
            "best_epoch": summary["best_epoch"], "val_curve": curve, "seconds": summary["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="notebook 02's data/ folder of the demo split")
    parser.add_argument("--shift", default="invert")
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--recipes", nargs="+", default=["original", "dice_bce", "adabn", "adabn_dice_bce", "scratch"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("json:" + json.dumps(child(args.child[0], args.child[1], args.slices, args.epochs, args.batch_size, args.lr)))
        return
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        data = shifted_copy(Path(args.data), Path(tmp) / "data", args.shift)
        rows = []
        for recipe in args.recipes:
            out = subprocess.run([sys.executable, __file__, "--data", args.data, "--slices", str(args.slices),
                                  "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                                  "--child", recipe, str(data)],
                                 check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads([r for r in out.splitlines() if r.startswith("json:")][-1][5:])
            rows.append(row)
            print(f"{recipe:24s} test Dice {row['test']:.3f} (threshold {row['threshold']:g})  "
                  f"best hard val Dice {row['best_val']:.3f} (epoch {row['best_epoch']})  {row['seconds']:.0f} s  "
                  f"val: {' '.join(f'{v:.2f}' for v in row['val_curve'])}", flush=True)
    base = rows[0]
    print(f"baseline (challenge weights, untrained): test Dice {base['baseline']:.3f} (its own threshold)")
    print(f"simulated shift: {args.shift}; {args.slices} training slices, {args.epochs} epochs, batch {args.batch_size}, "
          f"Adam {args.lr:g}")
    print("json:", json.dumps(rows))


if __name__ == "__main__":
    main()
