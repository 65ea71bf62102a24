"""The cohort QC page: written by `pedgm segment` on several scans, checked in Chromium from file://.

The cohort: four sample scans whose outputs are already there (the manual GM masks stand in for
them, so `pedgm segment` skips the network and writes the summary, morphometrics and QC page), one
truncated scan (a failed row), and per-slice uncertainty scores written beside each output in the
format of ``--uncertainty`` (test data: their values set the ranking the page must show).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from pedgm_kit.cli import main
from pedgm_kit.qc import qc_rows
from pedgm_kit.segment import uncertainty_paths

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SUBJECTS = ("sub-9418", "sub-9604", "sub-9669", "sub-9584")
UNCERTAINTY = {"sub-9418": 0.02, "sub-9604": 0.30, "sub-9669": 0.05, "sub-9584": 0.03}


@pytest.fixture
def cohort(tmp_path, gm_challenge):
    scans = tmp_path / "scans"
    scans.mkdir()
    for sub in SUBJECTS:
        image = scans / f"{sub}_run-1_T2starw.nii.gz"
        shutil.copy(gm_challenge / f"{sub}/anat/{image.name}", image)
        output = scans / f"{sub}_run-1_T2starw_gmseg.nii.gz"
        shutil.copy(gm_challenge / f"derivatives/labels/{sub}/anat/{sub}_run-1_T2starw_gmseg-manual.nii.gz", output)
        pd.DataFrame({"slice": range(3), "score": [UNCERTAINTY[sub]] * 3, "gm_voxels": [50] * 3,
                      "method": "tta"}).to_csv(uncertainty_paths(output)[1], index=False)
    bad = scans / "sub-9999_run-1_T2starw.nii.gz"
    bad.write_bytes((scans / f"{SUBJECTS[0]}_run-1_T2starw.nii.gz").read_bytes()[:4000])
    return scans


def test_segment_writes_a_qc_page_that_sorts_filters_and_loads(cohort, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lab_harness import CHROMIUM_ARGS, chromium_path
    from playwright.sync_api import sync_playwright

    assert main(["segment", str(cohort)]) == 2  # the truncated scan fails, the others are skipped
    out = capsys.readouterr().out
    assert "0 segmented, 4 skipped (output exists), 1 failed" in out
    page_path = cohort / "qc" / "index.html"
    assert f"QC page: {page_path}" in out
    html = page_path.read_text()
    assert html.count('loading="lazy"') == 4 and "http" not in html.replace("http-equiv", "")
    rows = qc_rows(pd.read_csv(cohort / "gmseg_summary.csv"))
    assert rows.set_index("scan").loc["sub-9999_run-1_T2starw", "flags"] == ["failed"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.as_uri(), wait_until="load")
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            assert page.locator("#qc tbody tr").count() == 5
            # sort by uncertainty: most uncertain first on the second click (descending), missing values last
            header = page.locator("th[data-key=uncertainty]")
            header.click()
            header.click()
            order = page.eval_on_selector_all("#qc tbody tr", "rows => rows.map(r => r.dataset.scan)")
            expected = sorted(UNCERTAINTY, key=UNCERTAINTY.get, reverse=True)
            assert order == [f"{s}_run-1_T2starw" for s in expected] + ["sub-9999_run-1_T2starw"]
            ranks = page.eval_on_selector_all("#qc tbody tr", "rows => rows.map(r => r.dataset.rank)")
            assert ranks == ["1", "2", "3", "4", ""]
            # the rank column sorts ascending on the first click
            page.locator("th[data-key=rank]").click()
            assert page.eval_on_selector_all("#qc tbody tr", "rows => rows.map(r => r.dataset.rank)")[:4] == ["1", "2", "3", "4"]
            # flagged only: the failed scan (and any other flagged one) stays, the rest hide
            page.locator("#flagged-only").check()
            visible = page.eval_on_selector_all(
                "#qc tbody tr", "rows => rows.filter(r => r.offsetParent !== null).map(r => r.dataset.scan)")
            flagged = [f"{s}" for s, f in zip(rows["scan"], rows["flags"]) if f]
            assert "sub-9999_run-1_T2starw" in visible and sorted(visible) == sorted(flagged)
            assert page.inner_text("#shown-count") == str(len(flagged))
            page.locator("#flagged-only").uncheck()
            # every montage loads once scrolled into view (lazy loading)
            for img in page.locator("#qc img").all():
                img.scroll_into_view_if_needed()
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
            broken = page.evaluate("Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                                   ".map(i => i.getAttribute('src'))")
            assert broken == [] and page.evaluate("document.images.length") == 4
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            page.screenshot(path=str(cohort / "qc_1280.png"), full_page=True)
        finally:
            browser.close()

