"""Cohort QC page at 500 scans: generation time, page weight and load time in Chromium.

The 500 rows are the 8 labelled gm-challenge run-1 scans REPEATED (symbolic links under 500
distinct names, the manual GM masks standing in for the outputs): every row gets its own montage,
so generation time and page weight are those of a real 500-scan cohort, but the images are not
500 different scans. Per-slice uncertainty scores are drawn at random (seeded) so the page has an
uncertainty column to sort.

Measured in one run (Debian's Chromium through Playwright, 1280x900 viewport, from file://):

- seconds to write the page and its 500 montages (:func:`pedgm_kit.qc.write_qc_page`);
- the HTML's size, the total size of the montages, and what loads at first paint: images the lazy
  loading fetched in the first viewport vs all;
- time to the ``load`` event, time to sort 500 rows by uncertainty, and to filter "flagged only".

Usage: python benchmarks/qc_page.py [--scans 500] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def build_cohort(folder: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """A summary table of ``n`` rows over the sample scans repeated (links), with uncertainty CSVs."""
    from pedgm_kit.registry import fetch_group
    from pedgm_kit.segment import uncertainty_paths

    root = fetch_group("gm-challenge-data")
    pairs = sorted((p, root / "derivatives/labels" / p.parent.parent.name / "anat" /
                    p.name.replace("_T2starw.nii.gz", "_T2starw_gmseg-manual.nii.gz"))
                   for p in root.glob("sub-*/anat/*_run-1_T2starw.nii.gz"))
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        image, mask = pairs[k % len(pairs)]
        name = f"sub-{k:04d}_{image.name}"
        link, out = folder / name, folder / name.replace(".nii.gz", "_gmseg.nii.gz")
        os.symlink(image, link)
        os.symlink(mask, out)
        pd.DataFrame({"slice": range(3), "score": rng.gamma(2.0, 0.02, 3), "gm_voxels": 50,
                      "method": "tta"}).to_csv(uncertainty_paths(out)[1], index=False)
        rows.append({"file": str(link), "output": str(out), "status": "skipped", "error": "", "gm_area_mean_mm2": 0.0})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=500)
    parser.add_argument("--keep", help="write the cohort here instead of a temporary folder")
    args = parser.parse_args(argv)

    from lab_harness import CHROMIUM_ARGS, chromium_path
    from playwright.sync_api import sync_playwright

    from pedgm_kit.morphometrics import cohort_morphometrics
    from pedgm_kit.qc import write_qc_page

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        summary = build_cohort(folder, args.scans)
        t0 = time.perf_counter()
        morpho = cohort_morphometrics(summary, per_scan_dir=folder / "morphometrics")
        t1 = time.perf_counter()
        page_path = write_qc_page(summary, folder / "qc", morphometrics=morpho)
        t2 = time.perf_counter()
        html_kb = page_path.stat().st_size / 1024
        pngs = sorted((folder / "qc" / "scans").glob("*.png"))
        png_kb = {p.name: p.stat().st_size / 1024 for p in pngs}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                start = time.perf_counter()
                page.goto(page_path.as_uri(), wait_until="load")
                load_s = time.perf_counter() - start
                nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())")
                loaded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
                                       ".map(i => i.getAttribute('src').split('/').pop())")
                sort_ms = page.evaluate("""() => { const t = performance.now();
                    const h = document.querySelector('th[data-key=uncertainty]'); h.click(); h.click();
                    document.body.offsetHeight; return performance.now() - t; }""")
                filter_ms = page.evaluate("""() => { const t = performance.now();
                    const c = document.getElementById('flagged-only'); c.click();
                    document.body.offsetHeight; return performance.now() - t; }""")
                width = page.evaluate("document.documentElement.scrollWidth")
            finally:
                browser.close()
    import json

    nav = json.loads(nav)
    first = sum(png_kb[name] for name in loaded)
    print(f"cohort: {args.scans} rows (the 8 sample run-1 scans repeated; uncertainty scores simulated)")
    print(f"morphometrics {t1 - t0:.1f} s, QC page + {len(pngs)} montages {t2 - t1:.1f} s "
          f"({(t2 - t1) / args.scans * 1000:.0f} ms per scan)")
    print(f"page weight: HTML {html_kb:.0f} KiB, montages {sum(png_kb.values()):.0f} KiB in all "
          f"({np.mean(list(png_kb.values())):.1f} KiB each)")
    print(f"first view (lazy loading): {len(loaded)} of {len(pngs)} montages loaded, HTML + those = "
          f"{html_kb + first:.0f} KiB = {(html_kb + first) / (html_kb + sum(png_kb.values())):.1%} of everything")
    print(f"chromium: load event {load_s * 1000:.0f} ms (DOMContentLoaded at {nav['domContentLoadedEventEnd']:.0f} ms, "
          f"load at {nav['loadEventEnd']:.0f} ms after navigation start); sort 500 rows by uncertainty "
          f"(2 clicks) {sort_ms:.0f} ms; filter flagged {filter_ms:.0f} ms; page width {width} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
