"""`pedgm run` end to end: the demo_cv profile (k-fold CV, simulated shift, data-efficiency curve) at tiny
sizes, the report in a real browser, failures and run ids."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pedgm_kit.cli import main
from pedgm_kit.exceptions import PedgmError
from pedgm_kit.runner import run_pipeline


@pytest.fixture(scope="module")
def cv_run(tiny_cv_run):
    return tiny_cv_run  # conftest.py: one tiny demo_cv run per session (test_resume.py compares with it too)


@pytest.mark.slow
def test_demo_cv_end_to_end(cv_run, capsys):
    run, params = cv_run
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    results = json.loads((run / "evaluation" / "results.json").read_text())
    folds = manifest["folds"]
    assert len(folds) == 2 and results["folds"] == 2
    person = {r["scan_id"]: r["person_id"] for r in pd.read_csv(run / "preprocess" / "preprocessed" / "index.csv",
                                                               dtype=str).to_dict("records")
              if r["scan_id"] not in manifest["locked_test"]["scans"]}  # the locked person: test_locked_test.py
    tested = [s for fold in folds for s in fold["test"]]
    assert sorted(tested) == sorted(person) == sorted(results["scans"])  # every scan tested once, pooled
    for fold in folds:
        roles = {name: {person[s] for s in ids} for name, ids in fold.items()}
        assert not (roles["train"] & roles["val"]) and not (roles["train"] | roles["val"]) & roles["test"]
    for k in (1, 2):
        for variant in ("scratch_noaug", "pretrained_adapted"):
            assert (run / "train" / f"fold-{k}" / variant / "best.hdf5").is_file()
            meta = json.loads((run / "train" / f"fold-{k}" / variant / "best.json").read_text())
            assert meta["threshold"] == (0.5 if variant == "pretrained_adapted" else 0.999)  # Dice + BCE: probabilities
        assert (run / "train" / f"fold-{k}" / "persons-1" / "pretrained_adapted" / "summary.json").is_file()
    # the simulated shift is named in the outputs and the report, and the data really is shifted
    assert results["shift"] == "simulated contrast inversion"
    assert (run / "preprocess" / "simulated-invert" / "SIMULATED.txt").is_file()
    page = (run / "index.html").read_text()
    assert "SIMULATED DATA: simulated contrast inversion" in page and "pediatric" in page
    headline = pd.read_csv(run / "evaluation" / "headline.csv")
    assert set(headline["model"]) == {"challenge", "large", "scratch_noaug", "pretrained_adapted"}
    assert (headline["n_persons"] == 5).all()  # 6 persons, one of them locked away
    # 5 persons: below the 14 for which an interval's coverage was measured to hold, so none is shown
    assert headline["ci_low"].isna().all() and headline["interval_note"].str.startswith("no interval").all()
    assert "Recommended model:" in page  # the stated rule applied (no interval at 6 persons: no evidence)
    per_fold = pd.read_csv(run / "evaluation" / "per_fold_dsc.csv")
    assert {"fold 1", "fold 2", "mean", "sd"} <= set(per_fold.columns)
    efficiency = pd.read_csv(run / "evaluation" / "efficiency.csv")
    assert set(efficiency["variant"]) == {"baseline", "pretrained_adapted"}
    assert (efficiency.loc[efficiency["variant"] == "pretrained_adapted", "n_folds"] == 2).all()
    runs = pd.read_csv(run / "evaluation" / "efficiency_runs.csv")
    assert (runs["threshold"] == 0.5).all()  # the curve's variant (Dice + BCE) scored at its own threshold
    assert runs["threshold_rule"].str.startswith("fixed a priori by the loss").all() and runs["test_dice"].notna().all()
    # a second run with the same id is refused; the first is untouched
    before = (run / "index.html").stat().st_mtime_ns
    assert main(["run", "--params", str(params), "--outputs", str(run.parent), "--run-id", "r1"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (run / "index.html").stat().st_mtime_ns == before


@pytest.mark.slow
@pytest.mark.browser
def test_report_in_a_real_browser(cv_run):
    """index.html at 1280x900: no horizontal scroll, no Markdown, every image loaded, the headline table."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lab_harness import CHROMIUM_ARGS, chromium_path
    from playwright.sync_api import sync_playwright

    run, _ = cv_run
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((run / "index.html").as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            assert "|---" not in page.inner_text("body")
            broken = page.evaluate("Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                                   ".map(i => i.getAttribute('src'))")
            assert broken == []
            assert page.evaluate("document.images.length") >= 5
            assert page.locator("table.headline").count() == 1
            assert page.locator("table.headline tr").count() == 5  # header and four models
            assert page.locator("pre").count() == 0  # no raw text blocks: every table is a table
            page.screenshot(path=str(run / "report_1280.png"), full_page=False)
            page.screenshot(path=str(run / "report_1280_full.png"), full_page=True)
        finally:
            browser.close()
    assert (run / "report_1280.png").stat().st_size > 10_000


def test_failing_notebook_is_named_and_finished_work_kept(tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump({"preprocess": {"data_dir": str(tmp_path / "no-such-dataset")}}))
    with pytest.raises(PedgmError, match=r"01_preprocess.ipynb failed in cell \d+ \(.*no-such-dataset"):
        run_pipeline(params, outputs=tmp_path, run_id="r", progress=False)
    assert (tmp_path / "r" / "preprocess" / "01_preprocess.ipynb").is_file()  # the executed notebook is kept
