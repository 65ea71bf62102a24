"""``make demo``: segment the bundled sample scans with SCT's weights and print their Dice.

Runs SCT's fixed centre crop and pedgm_kit's cord-centred windows side by side on SCT's reference
scan (t2s_uncropped) and every labelled gm-challenge-data run-1 scan, writes the masks and a
``dice.csv`` under ``outputs/<run-id>/``, and prints the table. Dice is computed on the slices the
raters labelled (:func:`pedgm_kit.metrics.labelled_slices`).

Usage: ``python -m pedgm_kit.demo [--model challenge|large] [--output-dir outputs]``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .datasets import DatasetWarning, discover_bids
from .evaluate import load_mask
from .io import save_like
from .metrics import dice, labelled_slices
from .registry import fetch_group
from .segment import Segmenter


def sample_cases() -> list[tuple[str, Path, Path]]:
    """(name, image, manual GM mask) of every labelled sample scan, fetched through the registry.

    SCT's reference scan first, then the labelled gm-challenge-data scans as discovery finds them
    (masks checked: grid and binary).
    """
    t2s = fetch_group("sct_testing_data") / "t2s"
    cases = [("t2s_uncropped", t2s / "t2s_uncropped.nii.gz", t2s / "t2s_uncropped_gmseg_manual.nii.gz")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # the unlabelled run-2 rescans are expected
        index = discover_bids(fetch_group("gm-challenge-data"))
    cases += [(scan.metadata["subject"], scan.image, scan.gm_mask) for scan in index.scans]
    return cases


def run(model: str = "challenge", output_dir: str | Path = "outputs") -> pd.DataFrame:
    """Segment every sample case twice (SCT centre crop, cord-centred) and return the Dice table."""
    run_dir = Path(output_dir) / time.strftime("segment-demo-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=False)
    segmenter = Segmenter(model)
    rows = []
    for name, image, manual in tqdm(sample_cases(), desc="segmenting", unit="scan"):
        truth = load_mask(manual, what="manual GM mask")[1]
        keep = labelled_slices(truth)
        row = {"scan": name, "slices": int(truth.shape[2]), "labelled": int(keep.sum())}
        for label, centred in (("sct_centre_crop", False), ("pedgm_cord_centred", True)):
            start = time.perf_counter()
            seg = segmenter.segment(image, centre_on_cord=centred)
            row[f"{label}_seconds"] = round(time.perf_counter() - start, 2)
            pred = np.asanyarray(seg.dataobj) > 0
            row[label] = round(dice(pred[..., keep], truth[..., keep]), 3)
            if centred:
                save_like(np.asanyarray(seg.dataobj), seg, run_dir / f"{name}_gmseg.nii.gz")
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(run_dir / "dice.csv", index=False)
    print(f"\nDice vs manual GM ({model} weights, labelled slices), masks in {run_dir}:")
    print(table[["scan", "labelled", "sct_centre_crop", "pedgm_cord_centred"]].to_string(index=False))
    print(f"mean: SCT centre crop {table['sct_centre_crop'].mean():.3f}, "
          f"cord-centred {table['pedgm_cord_centred'].mean():.3f}")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pedgm_kit.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="challenge", help="challenge (default), large, or a .hdf5 path")
    parser.add_argument("--output-dir", default="outputs", help="parent folder of the run folder (default outputs)")
    args = parser.parse_args(argv)
    run(args.model, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
