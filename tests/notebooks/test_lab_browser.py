"""JupyterLab itself in a real browser: the slice viewer notebook run from the UI, slider, Dice readout.

Debian's chromium through Playwright (tests/lab_harness.py): JupyterLab serves a copy of
``tests/viewer_app.ipynb`` on a sample scan with the challenge model's mask; the test runs all cells
from the UI (``notebook:run-all-cells``), checks no cell shows an error, moves the slice slider with
the keyboard and asserts the Dice readout changes to the value :func:`pedgm_kit.metrics.dice` gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import pytest

from pedgm_kit.geometry import Canonical
from pedgm_kit.metrics import dice
from pedgm_kit.segment import segment_image

pytest_plugins = ["lab_harness"]
pytestmark = [pytest.mark.slow, pytest.mark.browser]

NOTEBOOK = Path(__file__).resolve().parents[1] / "viewer_app.ipynb"
START_SLICE = 3


def test_viewer_notebook_runs_in_jupyterlab_and_the_slider_moves_dice(lab, lab_page, t2s_dir, tmp_path):
    predicted = tmp_path / "t2s_challenge_gmseg.nii.gz"
    segment_image(t2s_dir / "t2s.nii.gz", model="challenge").to_filename(predicted)
    truth = Canonical(nib.load(t2s_dir / "t2s_gmseg_manual.nii.gz")).data == 1
    pred = Canonical(nib.load(predicted)).data == 1
    expected = {z: f"{dice(pred[..., z], truth[..., z]):.4f}" for z in (START_SLICE, START_SLICE + 1)}
    assert expected[START_SLICE] != expected[START_SLICE + 1], "pick slices whose Dice differs"

    notebook = lab.add_notebook(NOTEBOOK, "viewer")
    (notebook.parent / "viewer_params.json").write_text(json.dumps({
        "image": str(t2s_dir / "t2s.nii.gz"), "manual": str(t2s_dir / "t2s_gmseg_manual.nii.gz"),
        "predicted": str(predicted), "slice_index": START_SLICE}))
    lab.open_notebook(lab_page, notebook)
    assert lab.run_all(lab_page) is True, "Run All reported a failing cell"
    assert lab.error_outputs(lab_page) == []
    before = lab.wait_for_text(lab_page, ".jp-OutputArea .pedgm-dice", r"^\d\.\d{4}$")
    assert before == expected[START_SLICE]
    handle = lab_page.locator(".jp-OutputArea .widget-slider.pedgm-slice-slider .noUi-handle")
    assert handle.count() == 1
    handle.focus()
    lab_page.keyboard.press("ArrowRight")
    after = lab.wait_for_text(lab_page, ".jp-OutputArea .pedgm-dice", "^" + expected[START_SLICE + 1].replace(".", r"\.") + "$")
    assert after == expected[START_SLICE + 1]
    assert lab_page.inner_text(".jp-OutputArea .pedgm-slice") == str(START_SLICE + 1)
    assert lab.error_outputs(lab_page) == []
    lab_page.screenshot(path=str(tmp_path / "jupyterlab_viewer.png"))
    shutil.rmtree(notebook.parent, ignore_errors=True)
