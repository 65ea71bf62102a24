"""The report leads with the answer, rendered from a real evaluation run, checked in Chromium.

The run folder: notebook 05 executed (papermill) on every labelled sample scan (8 sessions of 6
persons, two persons with two sessions) with two "models" given as folders of masks, so no network
runs: ``baseline`` = the manual masks moved by one voxel, ``variant`` = the manual masks except one
scan left empty (a failed prediction). Breakdown by ``Site``. The page must show the verdicts and the
first figure within the first 900 px of a 1280-px window, and no table or cell may clip its content.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pedgm_kit.datasets import discover_bids
from pedgm_kit.evaluate import DEFAULT_MASK_PATTERN
from pedgm_kit.report import write_report
from pedgm_kit.stats import FAILURE_PENALTY_MM

pytest_plugins = ["lab_harness"]  # the module-scoped `browser` fixture (Debian's Chromium via Playwright)

REPO = Path(__file__).resolve().parents[2]
FAILED_SCAN = "sub-9604_run-1_T2starw"


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, gm_challenge):
    import papermill as pm

    tmp = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    folders = {"baseline": tmp / "masks" / "baseline", "variant": tmp / "masks" / "variant"}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for scan in index.scans:
        img = nib.load(scan.gm_mask)
        manual = np.asanyarray(img.dataobj) > 0.5
        shifted = np.roll(manual, 1, axis=0)  # a one-voxel offset: a plausible, imperfect baseline
        variant = np.zeros_like(manual) if scan.scan_id == FAILED_SCAN else manual
        name = DEFAULT_MASK_PATTERN.format(scan_id=scan.scan_id)
        for key, data in (("baseline", shifted), ("variant", variant)):
            nib.Nifti1Image(data.astype(np.uint8), img.affine).to_filename(folders[key] / name)
    run = tmp / "run"
    (run / "evaluation").mkdir(parents=True)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), old) if p)
    try:
        pm.execute_notebook(
            str(REPO / "notebooks" / "05_evaluate.ipynb"), str(run / "evaluation" / "05_evaluate.ipynb"),
            kernel_name="python3", cwd=str(tmp), progress_bar=False, log_output=False,
            parameters={
                "data_dir": str(gm_challenge), "output_dir": str(run), "seed": 0, "smoke": False, "n_boot": 200,
                "models": {k: str(v) for k, v in folders.items()}, "baseline": "baseline", "split": "all",
                "split_manifest": "", "train_dir": "", "retest": False, "uncertainty": "", "by": ["Site"],
                "stat_metrics": ["DSC", "HSD"], "n_summary_slices": 2,
            },
        )
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    write_report(run, params={"evaluate": {"by": ["Site"], "baseline": "baseline"}})
    return run


@pytest.mark.slow
def test_evaluation_counts_persons_failures_and_sites(report_run):
    ev = report_run / "evaluation"
    results = json.loads((ev / "results.json").read_text())
    assert len(results["scans"]) == 8 and len(results["persons"]) == 6
    stats = pd.read_csv(ev / "stats.csv")
    dsc = stats[(stats["level"] == "scan") & (stats["metric"] == "DSC")].iloc[0]
    assert dsc["n_persons"] == 6 and dsc["n_scans"] == 8  # two sessions of one person: one pair
    assert dsc["failed_persons"] == 1 and np.isnan(dsc["ci_low"])  # 6 persons and a failure: no interval
    assert "no claim" in dsc["verdict"] and "improves" not in dsc["verdict"]
    assert results["verdicts"][0] == dsc["verdict"]
    hsd = stats[(stats["level"] == "scan") & (stats["metric"] == "HSD")].iloc[0]
    assert hsd["n_persons"] == 6  # the failed scan's distance is penalised, not dropped
    slices = stats[stats["level"] == "slice"]
    assert slices["p_value"].isna().all() and slices["inference"].str.startswith("descriptive").all()
    failures = pd.read_csv(ev / "failures.csv").set_index("model")
    assert failures.loc["variant", "failed_scans"] == 1 and failures.loc["variant", "scans"] == FAILED_SCAN
    assert failures.loc["baseline", "failed_scans"] == 0
    assert results["failure_penalty_mm"] == pytest.approx(FAILURE_PENALTY_MM)
    groups = pd.read_csv(ev / "groups.csv")
    assert set(groups["covariate"]) == {"Site"}
    assert groups.groupby("model")["n_persons"].sum().to_dict() == {"baseline": 6, "variant": 6}
    for name in ("person_dice.png", "groups_forest.png", "failures.csv"):
        assert (ev / name).is_file()


@pytest.mark.slow
@pytest.mark.browser
def test_report_leads_with_the_answer_and_clips_nothing(report_run, browser):
    html = (report_run / "index.html").read_text()
    assert html.index('id="answer"') < html.index("person_dice.png") < html.index('id="headline"')
    assert "<details>" in html and 'href="evaluation/stats.csv"' in html and 'href="evaluation/metrics.xlsx"' in html
    # the recommendation by the stated rule: 6 persons allow no interval, so no evidence: keep the baseline
    assert "Recommended model: baseline" in html and "no evidence that fine-tuning helped" in html
    assert "pedgm segment &lt;scans&gt; --model baseline" in html
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto((report_run / "index.html").as_uri(), wait_until="load")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
        verdict = page.locator("li.verdict").first
        assert "variant vs baseline" in verdict.inner_text()
        box = verdict.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 900
        figure = page.locator("figure.lead-figure img").first
        fbox = figure.bounding_box()
        assert fbox is not None and fbox["y"] < 900 and fbox["height"] > 100
        assert figure.get_attribute("src") == "evaluation/person_dice.png"
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        clipped = page.evaluate(
            "Array.from(document.querySelectorAll('table, th, td, .table-wrap, figure, dd, li'))"
            ".filter(e => e.scrollWidth > e.clientWidth + 1)"
            ".map(e => e.tagName + ': ' + e.textContent.slice(0, 60))")
        assert clipped == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                               ".map(i => i.getAttribute('src'))")
        assert broken == []
        page.screenshot(path=str(report_run / "report_1280.png"), full_page=False)
    finally:
        page.close()
