"""Which uncertainty finds the bad slices: test-time augmentation spread or Monte-Carlo dropout?

On every labelled sample scan (SCT's t2s_uncropped and the 8 gm-challenge run-1 scans), as they are
and under a SIMULATED 0.7x anatomy scale (to have enough failing slices), each scan is segmented with
the challenge weights and each uncertainty method of :data:`pedgm_kit.segment.UNCERTAINTY_METHODS`
(9 seeded passes). Per labelled slice: the Dice against the manual mask and the uncertainty score.
Prints, per method and *within each condition*: slices, scans, failures (Dice < 0.8), the AUROC of
the score for finding them with a scan-clustered 95% interval (descriptive: resamples scans, since
slices of one scan are not independent; its coverage was not measured) and Spearman's rho of score
and Dice. The pooled row (both conditions together) is printed last and labelled: pooling rewards a
score for telling the conditions apart, so it is not the measure. The default of
``pedgm segment --uncertainty`` and the floor of ``tests/segment/test_uncertainty.py`` (within the SIMULATED
0.7x condition, where the failures are) come from this run.

Usage: python benchmarks/uncertainty.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cases():
    """(name, condition, image, GM mask) of every labelled sample scan, plain and simulated 0.7x."""
    import nibabel as nib

    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.registry import fetch_group
    from pedgm_kit.shift import Shift, apply_shift

    t2s = fetch_group("sct_testing_data") / "t2s"
    scans = [("t2s_uncropped", "t2s", t2s / "t2s_uncropped.nii.gz", t2s / "t2s_uncropped_gmseg_manual.nii.gz")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(fetch_group("gm-challenge-data"))
    scans += [(s.metadata["subject"], s.person_id, s.image, s.gm_mask) for s in index.scans]
    for name, person, image, gm in scans:
        img, mask = nib.load(image), nib.load(gm)
        yield name, person, "as acquired", img, mask
        shifted, masks = apply_shift(img, {"gm": mask}, Shift("scale", 0.7))
        yield name, person, "simulated 0.7x anatomy", shifted, masks["gm"]


def run() -> pd.DataFrame:
    from pedgm_kit.geometry import slice_axis
    from pedgm_kit.metrics import dice
    from pedgm_kit.segment import UNCERTAINTY_METHODS, Segmenter

    seg = Segmenter("challenge")
    rows = []
    for name, person, condition, img, mask in cases():
        truth = np.asanyarray(mask.dataobj) > 0.5
        axis = slice_axis(img.affine)
        for method in UNCERTAINTY_METHODS:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = seg.segment(img, uncertainty=method, seed=0)
            seconds = time.perf_counter() - start
            pred = np.asanyarray(out.dataobj) > 0
            scores = {r["slice"]: r["score"] for r in out.extra["pedgm_uncertainty"]["slices"]}
            for k in range(truth.shape[axis]):
                t = np.take(truth, k, axis=axis)
                if not t.any():
                    continue  # only labelled slices are scored
                rows.append({"scan": name, "person": person, "condition": condition, "method": method, "slice": k,
                             "dice": dice(np.take(pred, k, axis=axis), t), "score": scores[k], "seconds": seconds})
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    from scipy import stats

    from pedgm_kit.evaluate import clustered_auroc

    out = []
    groups = list(table.groupby(["method", "condition"])) + [
        ((m, "pooled (mixes conditions; not the measure)"), g) for m, g in table.groupby("method")]
    for (method, condition), grp in groups:
        failed = grp["dice"] < 0.8
        clustered = clustered_auroc(grp["score"], failed, grp["person"], n_boot=2000, seed=0)  # persons are the unit
        out.append({"method": method, "condition": condition, "slices": len(grp), "scans": grp["scan"].nunique(),
                    "persons": clustered["n_clusters"],
                    "failed": int(failed.sum()), "auroc": clustered["auroc"], "ci_low": clustered["ci_low"],
                    "ci_high": clustered["ci_high"],
                    "spearman": stats.spearmanr(grp["score"], grp["dice"]).statistic,
                    "seconds_per_scan": grp.drop_duplicates("scan")["seconds"].mean()})
    return pd.DataFrame(out)


def main() -> None:
    table = run()
    summary = summarise(table)
    print("per-slice uncertainty score vs Dice (labelled slices; challenge weights; failure: Dice < 0.8);")
    print("AUROC within each condition, 95% interval resampling persons (descriptive)")
    print(summary.round(3).to_string(index=False))
    within = summary[summary["condition"] == "simulated 0.7x anatomy"].sort_values("auroc", ascending=False)
    best = within.iloc[0]
    print(f"best by AUROC within the SIMULATED 0.7x condition: {best['method']} ({best['auroc']:.3f}, "
          f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}])")


if __name__ == "__main__":
    main()
