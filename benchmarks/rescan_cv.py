"""Scan-rescan reproducibility of GM area on the sample: run-1 vs run-2, and session 1 vs session 2.

The gm-challenge sample holds, per session, two runs acquired without repositioning (run-1 and
run-2), and two persons scanned in two sessions (``sub-9709Ses1/Ses2``, ``sub-10062Ses1/Ses2``).
Every one of these scans is segmented with the chosen model through ``pedgm segment``'s cohort path
(:func:`pedgm_kit.segment.segment_files`, which also writes the morphometrics table), then:

- run-1 vs run-2: the within-pair coefficient of variation of GM area
  (:func:`pedgm_kit.stats.retest_cv`: per slice position, and of the scan's mean area), per pair;
- session 1 vs session 2: per person, the CV (SD/mean, ddof=1) of the sessions' mean GM area
  (mean over the slices with GM, averaged over the session's two runs; sessions are repositioned, so
  slices are not matched).

The published figure to compare with: SCORE (Prados et al., NeuroImage 2016), GM scan-rescan
relative SD <= 3.5%.

Usage: python benchmarks/rescan_cv.py [--model challenge] [--model outputs/run-x/train/<variant>]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCORE_PCT = 3.5


def measure(model: str, folder: Path) -> dict:
    from pedgm_kit.registry import fetch_group
    from pedgm_kit.segment import segment_files
    from pedgm_kit.stats import retest_cv

    root = fetch_group("gm-challenge-data")
    images = sorted(root.glob("sub-*/anat/*_T2starw.nii.gz"))
    table = segment_files(images, output_dir=folder, model=model, csv=folder / "summary.csv", progress=False)
    morpho = pd.read_csv(folder / "morphometrics.csv")
    rows = morpho[(morpho["metric"] == "gm_area_mm2") & morpho["slice"].notna()].copy()
    rows["session"] = rows["scan"].str.extract(r"^(sub-[A-Za-z0-9]+)_")[0]
    rows["run"] = rows["scan"].str.extract(r"_run-(\d+)_")[0].astype(int)
    rows = rows.rename(columns={"value": "gm_area_mm2"}).assign(model=model, pair=rows["session"])
    rows = rows[rows.groupby(["pair", "slice"])["gm_area_mm2"].transform("max") > 0]  # slices with GM in a run
    summary, per_pair = retest_cv(rows)
    scans = rows[rows["gm_area_mm2"] > 0].groupby(["person", "session", "run"])["gm_area_mm2"].mean().reset_index()
    sessions = scans.groupby(["person", "session"])["gm_area_mm2"].mean().reset_index()
    two = sessions.groupby("person").filter(lambda g: len(g) == 2)
    between = (two.groupby("person")["gm_area_mm2"].agg(lambda v: 100 * np.std(v, ddof=1) / np.mean(v))
               .rename("cv_sessions_pct").reset_index())
    return {"failed": int(table.attrs["failed"]), "summary": summary, "per_pair": per_pair, "sessions": between}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model(s) to measure (default: challenge)")
    args = parser.parse_args(argv)
    for model in args.model or ["challenge"]:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(model, Path(tmp))
        s = result["summary"].iloc[0]
        print(f"model {model}: {int(s['n_pairs'])} run-1/run-2 pairs of {int(s['n_persons'])} persons "
              f"({result['failed']} scans failed)")
        with pd.option_context("display.width", 160, "display.float_format", "{:.2f}".format):
            print(result["per_pair"][["person", "pair", "n_slices", "area_run_a_mm2", "area_run_b_mm2",
                                      "cv_slice_pct", "cv_mean_area_pct"]].to_string(index=False))
        print(f"run-1 vs run-2: CV of the scan's mean GM area {s['cv_mean_area_pct']:.2f}% (mean over pairs; "
              f"max {result['per_pair']['cv_mean_area_pct'].max():.2f}%), per slice position {s['cv_slice_pct']:.2f}%; "
              f"SCORE: <= {SCORE_PCT}%")
        for _, row in result["sessions"].iterrows():
            print(f"session 1 vs 2, {row['person']}: CV of mean GM area {row['cv_sessions_pct']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
