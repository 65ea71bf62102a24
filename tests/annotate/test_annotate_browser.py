"""The correction editor in a real browser: JupyterLab serves tests/notebooks/correction_editor.ipynb.

For a LAS scan (sub-9418) and an LPS scan (sub-9604) of the gm-challenge sample, with the scan's
manual GM mask as the draft: run all cells, wait until the draft is NiiVue's drawing, then

1. Save with no edit: the file equals the draft voxel for voxel (the bitmap order is proven in
   the browser, not assumed);
2. zoom on the cord, draw a pen stroke and an erase stroke with the mouse, Save: the file differs
   from the draft only within one voxel of the strokes' paths (where the screen geometry puts
   them), on the displayed slice, and is on the image's grid (shape, affine, qform/sform codes);
3. Undo, Save: the erase stroke is gone; Accept: the manual-mask file equals the saved one and
   the review log says "accepted".

The notebook is copied into the server's temporary root with a ``correction_editor.json`` beside
it (JupyterLab cannot pass papermill parameters). Server and browser come from
``tests/lab_harness.py``; they skip locally when Chromium or JupyterLab is missing, and fail in
CI (``CI=true`` / ``PEDGM_REQUIRE_SHARED=1``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from pedgm_kit.annotate._niivue_grid import (
    frac_to_stored,
    niivue_affine,
    perm_ras,
    stored_to_frac,
)

pytest_plugins = ["lab_harness"]  # the lab, browser and lab_page fixtures
pytestmark = [pytest.mark.slow, pytest.mark.browser]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "correction_editor.ipynb"
STATUS = ".jp-OutputArea .pedgm-annotate-status"
ZOOM, ZOOM_LABEL = 8.0, "cord 8x"
# subject: (stored orientation, starting zoom, uncertainty overlay); zoom 1: the test clicks the zoom
# button, 8: the editor zooms when the image has loaded
CASES = {"sub-9418": ("LAS", 1.0, False), "sub-9604": ("LPS", ZOOM, True)}
TIMINGS: dict[str, dict[str, float]] = {}


def _scan_files(root: Path, subject: str) -> tuple[Path, Path]:
    image = root / subject / "anat" / f"{subject}_run-1_T2starw.nii.gz"
    manual = root / "derivatives" / "labels" / subject / "anat" / f"{subject}_run-1_T2starw_gmseg-manual.nii.gz"
    return image, manual


class _Screen:
    """Where NiiVue's axial view puts a position: pixels <-> frac, at a zoom centred on ``centre``.

    Unzoomed, NiiVue fits the slice's field of view (``dims_ras * pixdim_ras`` mm) into the canvas
    keeping its aspect ratio, centred; screen right is frac x (patient right), screen up is frac y
    (anterior). Zoom ``z`` centred on frac ``c`` scales that picture by ``z`` about the canvas
    centre, which then shows ``c``.
    """

    def __init__(self, img, box: dict, *, zoom: float, centre_frac):
        perm = perm_ras(niivue_affine(img))
        shape, zooms = img.shape[:3], img.header.get_zooms()[:3]
        width_mm = shape[abs(perm[0]) - 1] * zooms[abs(perm[0]) - 1]
        height_mm = shape[abs(perm[1]) - 1] * zooms[abs(perm[1]) - 1]
        scale = min(box["width"] / width_mm, box["height"] / height_mm)
        self.w, self.h = width_mm * scale, height_mm * scale  # the unzoomed picture, pixels
        self.cx, self.cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.zoom, self.centre = zoom, centre_frac
        self.img = img

    def to_px(self, frac) -> tuple[float, float]:
        return (float(self.cx + self.zoom * self.w * (frac[0] - self.centre[0])),
                float(self.cy - self.zoom * self.h * (frac[1] - self.centre[1])))

    def to_voxel(self, x: float, y: float, z_frac: float) -> tuple[int, int, int]:
        fx = self.centre[0] + (x - self.cx) / (self.zoom * self.w)
        fy = self.centre[1] - (y - self.cy) / (self.zoom * self.h)
        return frac_to_stored([fx, fy, z_frac], self.img)

    def line_voxels(self, p0, p1, z_frac: float) -> np.ndarray:
        points = {self.to_voxel(p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1]), z_frac)
                  for t in np.linspace(0.0, 1.0, 600)}
        return np.array(sorted(points))


def _chebyshev(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """For each point, the Chebyshev distance (voxels) to the nearest point of ``ref``."""
    return np.array([np.abs(ref - q).max(axis=1).min() for q in points]) if len(points) else np.zeros(0)


def _stroke(page, p0, p1, steps: int = 24) -> None:
    page.mouse.move(float(p0[0]), float(p0[1]))
    page.mouse.down()
    page.mouse.move(float(p1[0]), float(p1[1]), steps=steps)
    page.mouse.up()


def _save(lab, page, n: int) -> str:
    lab.output_button(page, "Save").click()
    return lab.wait_for_text(page, STATUS, rf"^saved #{n}:")


def _assert_on_image_grid(path: Path, image: Path) -> np.ndarray:
    saved, ref = nib.load(path), nib.load(image)
    assert saved.shape == ref.shape[:3]
    assert np.array_equal(saved.affine, ref.affine)
    for code in ("qform_code", "sform_code"):
        assert int(saved.header[code]) == int(ref.header[code]), code
    assert np.allclose(saved.header.get_qform(), ref.header.get_qform(), atol=1e-5)
    assert saved.get_data_dtype() == np.uint8
    data = np.asarray(saved.dataobj)
    assert set(np.unique(data).tolist()) <= {0, 1}
    return data


@pytest.mark.parametrize("subject", list(CASES), ids=[f"{s}-{c[0]}" for s, c in CASES.items()])
def test_strokes_are_saved_on_the_image_grid(subject, gm_challenge, lab, lab_page):
    page, t0, timing = lab_page, time.monotonic(), {}
    image, manual = _scan_files(gm_challenge, subject)
    img = nib.load(image)
    orientation, start_zoom, with_uncertainty = CASES[subject]
    assert "".join(nib.aff2axcodes(img.affine)) == orientation

    case = lab.root_dir / subject
    notebook = lab.add_notebook(NOTEBOOK, subject)
    draft_path = Path(shutil.copy(manual, case / manual.name))
    out_dir = case / "out"
    accept_to = case / "derivatives" / "labels" / subject / "anat" / manual.name
    params = {"image": str(image), "draft": str(draft_path), "output_dir": str(out_dir),
              "accept_to": str(accept_to), "zoom": start_zoom}
    draft = (np.asarray(nib.load(draft_path).dataobj) == 1).astype(np.uint8)
    if with_uncertainty:  # a stand-in map on the image's grid: high near the draft's edges
        edges = np.abs(ndimage.gaussian_filter(draft.astype(np.float32), (1.5, 1.5, 0)) - 0.5)
        uncertainty = case / "uncertainty.nii.gz"
        header = img.header.copy()
        header.set_data_dtype(np.float32)
        nib.save(nib.Nifti1Image(np.clip(1 - 2 * edges, 0, 1).astype(np.float32), img.affine, header), uncertainty)
        params["uncertainty"] = str(uncertainty)
    (case / "correction_editor.json").write_text(json.dumps(params))

    timing["open_s"] = lab.open_notebook(page, notebook)
    assert lab.run_all(page) is True, f"a cell raised: {lab.error_outputs(page)}"
    assert lab.error_outputs(page) == []
    results = json.loads((out_dir / "correction_editor_results.json").read_text())
    output, k = Path(results["output"]), int(results["slice_index"])
    assert output == out_dir / f"{subject}_run-1_T2starw_gmseg-corrected.nii.gz"
    lab.wait_for_text(page, STATUS, r"^ready: ")
    timing["ready_s"] = time.monotonic() - t0
    canvas = page.locator(".jp-OutputArea .pedgm-annotate canvas").first
    assert canvas.evaluate("c => !!c.getContext('webgl2')"), "no WebGL2 context"
    overlay = page.locator(".jp-OutputArea .widget-checkbox", has_text="uncertainty overlay")
    assert overlay.count() == (1 if with_uncertainty else 0)

    # 1. round trip: draft -> NiiVue's drawing -> Save, no edit
    _save(lab, page, 1)
    assert np.array_equal(_assert_on_image_grid(output, image), draft), "round trip changed voxels"

    # 2. zoom on the cord, pen stroke beside the GM, erase stroke through it, on slice k
    if start_zoom != ZOOM:  # else the editor zoomed when the image loaded, before 'ready'
        page.locator(".jp-OutputArea .widget-toggle-button", has_text=ZOOM_LABEL).click()
        lab.wait_for_text(page, STATUS, rf"^zoom: {ZOOM_LABEL}")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    perm = perm_ras(niivue_affine(img))
    slice_axis = abs(perm[2]) - 1
    centre = stored_to_frac(np.argwhere(draft).mean(axis=0), img)  # where the editor centres its zoom
    screen = _Screen(img, box, zoom=ZOOM, centre_frac=centre)
    ijk = [0, 0, 0]
    ijk[slice_axis] = k
    z_frac = stored_to_frac(ijk, img)[2]

    ras_vox_px = float(screen.zoom * screen.w / img.shape[abs(perm[0]) - 1])  # pixels per voxel on screen
    gm = np.argwhere(np.take(draft, k, axis=slice_axis) > 0)
    target = gm[np.argmin(np.abs(gm - gm.mean(axis=0)).sum(axis=1))].tolist()  # a GM voxel mid-slice
    target.insert(slice_axis, k)
    tx, ty = screen.to_px(stored_to_frac(target, img))
    # pen: an asymmetric, slanted stroke 5-7 voxels anterior of the target (a flip would show)
    pen0, pen1 = (tx - 6.3 * ras_vox_px, ty - 5.4 * ras_vox_px), (tx + 4.6 * ras_vox_px, ty - 7.2 * ras_vox_px)
    _stroke(page, pen0, pen1)
    erase0, erase1 = (tx - 2.3 * ras_vox_px, ty + 0.2 * ras_vox_px), (tx + 2.4 * ras_vox_px, ty + 0.2 * ras_vox_px)
    page.locator(".jp-OutputArea .widget-toggle-button", has_text="erase (0)").click()
    lab.wait_for_text(page, STATUS, r"^tool: erase \(0\)")
    _stroke(page, erase0, erase1, steps=12)
    _save(lab, page, 2)
    timing["strokes_saved_s"] = time.monotonic() - t0
    saved = _assert_on_image_grid(output, image)

    added, removed = np.argwhere(saved > draft), np.argwhere(saved < draft)
    changed = np.argwhere(saved != draft)
    assert len(changed) and set(changed[:, slice_axis].tolist()) == {k}, "changes outside the displayed slice"
    pen_line = screen.line_voxels(pen0, pen1, z_frac)
    erase_line = screen.line_voxels(erase0, erase1, z_frac)
    fresh = pen_line[draft[tuple(pen_line.T)] == 0]  # voxels under the pen that the draft does not have
    assert len(fresh) >= 8, f"the pen stroke covers only {len(fresh)} new voxels"
    assert _chebyshev(added, pen_line).max() <= 1, "pen voxels away from the stroke"
    assert _chebyshev(fresh, added).max() <= 1, "part of the stroke was not drawn"
    hit = _chebyshev(fresh, added) == 0
    assert hit.mean() >= 0.8, f"only {hit.sum()} of {len(fresh)} voxels under the pen stroke were added"
    assert len(removed) > 0 and _chebyshev(removed, erase_line).max() <= 1, "erased voxels away from the stroke"
    assert draft[tuple(np.asarray(target))] == 1 and saved[tuple(np.asarray(target))] == 0

    # 3. Undo takes the erase stroke back; Accept promotes the saved file
    lab.output_button(page, "Undo").click()
    lab.wait_for_text(page, STATUS, r"^drawing: ")
    _save(lab, page, 3)
    undone = _assert_on_image_grid(output, image)
    assert np.array_equal(undone, np.maximum(draft, saved)), "Undo did not restore exactly the erased voxels"
    lab.output_button(page, "Accept").click()
    lab.wait_for_text(page, STATUS, r"^accepted: ")
    assert accept_to.read_bytes() == output.read_bytes()
    log = pd.read_csv(out_dir / "review.csv", dtype=str, keep_default_na=False)
    assert log.set_index("scan_id").loc[f"{subject}_run-1_T2starw", "status"] == "accepted"
    assert lab.error_outputs(page) == []

    timing["total_s"] = time.monotonic() - t0
    TIMINGS[subject] = {key: round(v, 1) for key, v in timing.items()}
    print(f"{subject}: +{len(added)} -{len(removed)} voxels on slice {k}; pen line {len(pen_line)} voxels, "
          f"{ras_vox_px:.1f} px/voxel; {TIMINGS[subject]}")
