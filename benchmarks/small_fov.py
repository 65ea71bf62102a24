"""Small fields of view: which padding of the 200x200 window segments best (simulated crops of real scans).

For every labelled sample scan (SCT's t2s_uncropped and the 8 gm-challenge run-1 scans), the scan
and its masks are cropped in-plane to a square of 36 mm and of 30 mm around the cord
(:func:`pedgm_kit.simulate.crop_fov`, an exact sub-grid: simulated small-FOV acquisitions), and
segmented with the challenge weights under each padding of :data:`pedgm_kit.segment.PADDINGS`:

- ``reflect``: the image mirrored at its edge (pedgm_kit until now);
- ``mean``: the volume mean (0 after standardisation);
- ``background``: the image's 1st intensity percentile (its dark background);
- ``none``: SCT's rule: the network on the whole slice at its own size when it fits the window.

Prints Dice on the labelled slices per scan, crop size and padding, the uncropped Dice, and the mean
per padding; the README's table and the default of ``pedgm segment`` come from this run.

Usage: python benchmarks/small_fov.py [--sizes 36 30]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cases():
    """(name, image, GM mask, cord mask or None) of every labelled sample scan."""
    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.registry import fetch_group

    t2s = fetch_group("sct_testing_data") / "t2s"
    out = [("t2s_uncropped", t2s / "t2s_uncropped.nii.gz", t2s / "t2s_uncropped_gmseg_manual.nii.gz", None)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(fetch_group("gm-challenge-data"))
    out += [(s.metadata["subject"], s.image, s.gm_mask, s.cord_mask) for s in index.scans]
    return out


def dice_labelled(pred: np.ndarray, truth: np.ndarray) -> float:
    from pedgm_kit.metrics import dice, labelled_slices

    keep = labelled_slices(truth)
    return float(dice(pred[..., keep], truth[..., keep]))


def run(sizes=(36.0, 30.0)):
    import nibabel as nib
    import pandas as pd

    from pedgm_kit.segment import PADDINGS, Segmenter
    from pedgm_kit.simulate import crop_fov

    segmenters = {p: Segmenter("challenge", padding=p) for p in PADDINGS}
    rows = []
    for name, image, gm, cord in cases():
        imgs = {"image": nib.load(image), "gm": nib.load(gm)}
        if cord is not None:
            imgs["cord"] = nib.load(cord)
        truth = np.asanyarray(imgs["gm"].dataobj) > 0.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = np.asanyarray(segmenters["reflect"].segment(imgs["image"]).dataobj) > 0
        uncropped = dice_labelled(full, truth)
        for size in sizes:
            crop = crop_fov(imgs, around="cord" if cord is not None else "gm", size_mm=size)
            crop_truth = np.asanyarray(crop["gm"].dataobj) > 0.5
            for padding, seg in segmenters.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pred = np.asanyarray(seg.segment(crop["image"]).dataobj) > 0
                rows.append({"scan": name, "fov_mm": size, "padding": padding, "dice": dice_labelled(pred, crop_truth),
                             "uncropped": uncropped})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[36.0, 30.0], help="square FOV sides, mm")
    args = parser.parse_args()
    table = run(tuple(args.sizes))
    wide = table.pivot_table(index=["scan", "fov_mm"], columns="padding", values="dice")
    wide["uncropped"] = table.groupby(["scan", "fov_mm"])["uncropped"].first()
    print("Dice on the labelled slices, simulated small-FOV crops (challenge weights):")
    print(wide.round(3).to_string())
    means = table.groupby(["fov_mm", "padding"])["dice"].mean().unstack()
    print("\nmean Dice per crop size and padding:")
    print(means.round(3).to_string())
    overall = table.groupby("padding")["dice"].mean().sort_values(ascending=False)
    worst = (table.assign(drop=table["uncropped"] - table["dice"]).groupby("padding")["drop"].max())
    print("\nmean over all crops:", ", ".join(f"{p} {v:.3f}" for p, v in overall.items()))
    print("largest drop vs uncropped:", ", ".join(f"{p} {v:.3f}" for p, v in worst.items()))
    print(f"best by mean Dice: {overall.index[0]}")


if __name__ == "__main__":
    main()
