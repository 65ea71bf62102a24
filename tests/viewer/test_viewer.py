"""Headless tests of pedgm_kit.viewer: drawing, readout, orientation, widgets, review log.

The widgets run without a kernel: setting a control's ``value`` fires the same observers a browser
would, so the readout and the PNG in ``viewer.image.value`` can be checked directly. The real-browser
test is tests/viewer/test_viewer_browser.py.
"""

from __future__ import annotations

import io
import math
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import pedgm_kit._utils as utils_mod
from pedgm_kit.datasets import discover_bids
from pedgm_kit.exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    InputFileError,
    ParameterError,
)
from pedgm_kit.geometry import Canonical
from pedgm_kit.metrics import dice
from pedgm_kit.viewer import (
    COLOURS,
    LABEL_MARGIN_PX,
    REVIEW_STATUSES,
    ReviewLog,
    SliceViewer,
    ViewerScan,
    glyph,
    orientation_labels,
    render_slice,
    slice_readout,
    to_png,
)

M = LABEL_MARGIN_PX
LAS = np.diag([-0.5, 0.8, 3.0, 1.0])
RADIOLOGICAL = {"top": "A", "bottom": "P", "left": "R", "right": "L"}


# ------------------------------------------------------------------------------ synthetic scan


@pytest.fixture
def volume(rng):
    """(20, 16, 3) LAS image; manual GM square on slices 0-1 (slice 2 unlabelled); two models."""
    n0, n1, n2 = 20, 16, 3
    image = (rng.normal(100, 5, size=(n0, n1, n2)) + np.arange(n0)[:, None, None] * 3).astype(np.float32)
    manual = np.zeros((n0, n1, n2), np.uint8)
    manual[6:12, 5:11, :2] = 1
    shifted = np.zeros_like(manual)  # manual moved 2 voxels toward the subject's left (+i in LAS)
    shifted[8:14, 5:11, :] = 1
    shrunk = np.zeros_like(manual)
    shrunk[7:11, 6:10, :2] = 1
    shrunk[7:9, 6:8, 1] = 0
    return {"image": image, "manual": manual, "masks": {"shifted": shifted, "shrunk": shrunk}}


def picture_pixel(rgb, i, j, *, n1, scale, margin=M):
    """RGB of LAS voxel (i, j) in a full-FOV picture: rot90 puts row n1-1-j, column i."""
    r, c = n1 - 1 - j, i
    return tuple(int(v) for v in rgb[margin + r * scale + scale // 2, margin + c * scale + scale // 2])


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def make_viewer(volume, **kwargs):
    kwargs = {"zoom": "full", "scale": 4, "opacity": 1.0, **kwargs}
    return SliceViewer.from_arrays(
        volume["image"], manual=volume["manual"], masks=volume["masks"], affine=LAS, scan_id="synth", **kwargs
    )


# ------------------------------------------------------------------------------ render_slice


def test_render_agreement_colours_and_grey():
    img = np.tile(np.linspace(0.0, 100.0, 8), (6, 1))
    truth = np.zeros((6, 8), bool)
    truth[1:4, 1:4] = True
    pred = np.zeros((6, 8), bool)
    pred[1:4, 2:6] = True
    rgb = render_slice(img, manual=truth, predicted=pred, mode="agreement", opacity=1.0, vmin=0.0, vmax=100.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 8, 3)
    assert tuple(rgb[2, 2]) == COLOURS["tp"]
    assert tuple(rgb[2, 4]) == COLOURS["fp"]
    assert tuple(rgb[2, 1]) == COLOURS["fn"]
    grey = round(255 * img[5, 6] / 100.0)
    assert tuple(rgb[5, 6]) == (grey, grey, grey)


def test_render_opacity_blends_and_modes():
    img = np.full((5, 5), 50.0)
    img[0, 0] = 0.0
    img[4, 4] = 100.0
    truth = np.zeros((5, 5), np.uint8)
    truth[1:4, 1:4] = 1
    half = render_slice(img, manual=truth, mode="manual", opacity=0.5, vmin=0, vmax=100)
    g = round(255 * 0.5)
    assert tuple(half[2, 2]) == tuple(round(0.5 * g + 0.5 * c) for c in COLOURS["manual"])
    assert tuple(half[0, 1]) == (g, g, g)
    none = render_slice(img, manual=truth, mode="manual", opacity=0.0, vmin=0, vmax=100)
    assert tuple(none[2, 2]) == (g, g, g)
    # "predicted" ignores the manual mask; "both" fills the model mask and outlines the manual one
    pred_only = render_slice(img, manual=truth, predicted=truth.T, mode="predicted", opacity=1.0)
    assert tuple(pred_only[2, 2]) == COLOURS["predicted"]
    big = np.zeros((12, 12), bool)
    big[2:10, 2:10] = True
    both = render_slice(np.zeros((12, 12)), manual=big, predicted=big, mode="both", opacity=1.0, outline_px=2)
    assert tuple(both[2, 5]) == COLOURS["manual"] and tuple(both[3, 5]) == COLOURS["manual"]
    assert tuple(both[5, 5]) == COLOURS["predicted"]  # inside the outline: the model's fill
    assert tuple(both[0, 0]) == (0, 0, 0)


def test_render_zoom_scale_and_labels():
    img = np.arange(48.0).reshape(6, 8)
    out = render_slice(img, zoom_box=(1, 4, 2, 7), scale=(3, 2), vmin=0, vmax=47)
    assert out.shape == (9, 10, 3)
    assert tuple(out[0, 0]) == (round(255 * 10 / 47),) * 3  # pixel (1, 2) of the slice
    labelled = render_slice(img, scale=10, labels=RADIOLOGICAL)
    assert labelled.shape == (60 + 2 * M, 80 + 2 * M, 3)
    g = glyph("A")
    x = (labelled.shape[1] - g.shape[1]) // 2
    top = labelled[(M - g.shape[0]) // 2:(M - g.shape[0]) // 2 + g.shape[0], x:x + g.shape[1]]
    assert np.array_equal(top.min(axis=2) > 200, g)  # the letter A, and nothing else, above
    assert not np.array_equal(glyph("A"), glyph("P"))


def test_png_roundtrip(rng):
    rgb = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    assert np.array_equal(decode(to_png(rgb)), rgb)
    with pytest.raises(DimensionError, match=r"expected an \(H, W, 3\) uint8 array"):
        to_png(rgb[..., 0])


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"mode": "outline"}, ParameterError, "mode must be one of 'manual', 'predicted', 'both', 'agreement'; got 'outline'"),
        ({"opacity": 1.5}, ParameterError, r"opacity must be a number in \[0, 1\]; got 1.5"),
        ({"zoom_box": (0, 9, 0, 2)}, ParameterError, r"zoom_box must be integers .* shape \(4, 5\)"),
        ({"scale": 0}, ParameterError, "scale must be a positive integer"),
        ({"manual": np.zeros((5, 4))}, GridMismatchError, r"manual mask shape \(5, 4\) differs from image slice shape \(4, 5\)"),
        ({"predicted": np.full((4, 5), 0.5)}, ImageContentError, "predicted: mask must hold only 0 and 1"),
        ({"predicted": np.zeros((4, 5)), "mode": "agreement"}, ParameterError, "'agreement' needs both"),
    ],
)
def test_render_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        render_slice(np.ones((4, 5)), **kwargs)


def test_render_rejects_bad_image():
    with pytest.raises(DimensionError, match="non-empty 2D array; got shape"):
        render_slice(np.ones((2, 3, 4)))
    with pytest.raises(ImageContentError, match="NaN or infinite"):
        render_slice(np.array([[1.0, np.nan]]))


# ------------------------------------------------------------------------------ orientation


def test_orientation_labels_las_lps_ras():
    assert orientation_labels(np.diag([-0.5, 0.5, 5.0, 1.0])) == RADIOLOGICAL
    lps = orientation_labels(np.diag([-0.5, -0.5, 5.0, 1.0]))
    assert lps == {"top": "P", "bottom": "A", "left": "R", "right": "L"}  # upside down if shown raw
    assert orientation_labels(np.diag([0.5, 0.5, 5.0, 1.0]))["right"] == "R"
    assert orientation_labels(np.diag([-1.0, 1.0, 1.0, 1.0]), slice_axis=0) == {
        "top": "S", "bottom": "I", "left": "P", "right": "A"}
    with pytest.raises(ParameterError, match="slice_axis must be 0, 1 or 2; got 3"):
        orientation_labels(np.eye(4), slice_axis=3)


def test_lps_file_is_shown_exactly_like_las(tmp_path, volume):
    """The same anatomy stored LAS and LPS gives the same picture, letters and readout."""
    n1 = volume["image"].shape[1]
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    flip[1, 3] = n1 - 1  # voxel j of the LPS copy is voxel n1-1-j of the LAS one
    lps_affine = LAS @ flip
    paths = {}
    for tag, affine, data in [("las", LAS, volume), ("lps", lps_affine, {
            k: (v[:, ::-1] if k != "masks" else {n: m[:, ::-1] for n, m in v.items()}) for k, v in volume.items()})]:
        nib.save(nib.Nifti1Image(data["image"], affine), tmp_path / f"{tag}.nii.gz")
        nib.save(nib.Nifti1Image(data["manual"], affine), tmp_path / f"{tag}_gm.nii.gz")
        nib.save(nib.Nifti1Image(data["masks"]["shifted"], affine), tmp_path / f"{tag}_pred.nii.gz")
        paths[tag] = ViewerScan(tag, tmp_path / f"{tag}.nii.gz", manual=tmp_path / f"{tag}_gm.nii.gz",
                                masks={"model": tmp_path / f"{tag}_pred.nii.gz"})
    assert nib.aff2axcodes(lps_affine) == ("L", "P", "S")
    las_v = SliceViewer([paths["las"]], mode="agreement", scale=3, slice_index=1)
    lps_v = SliceViewer([paths["lps"]], mode="agreement", scale=3, slice_index=1)
    assert np.array_equal(las_v.rendered, lps_v.rendered)
    assert las_v.current_readout.labels == lps_v.current_readout.labels == RADIOLOGICAL
    assert las_v.current_readout.dice == lps_v.current_readout.dice
    assert "stored LPS, shown as LAS" in lps_v.readout.value and "top A" in lps_v.readout.value
    assert "stored LAS" in las_v.readout.value


# ------------------------------------------------------------------------------ readout


def test_slice_readout_matches_metrics(volume):
    z = 1
    man = volume["manual"][..., z]
    masks = {n: m[..., z] for n, m in volume["masks"].items()}
    r = slice_readout(man, masks=masks, pixel_mm=(0.5, 0.8), slice_index=z, labels=RADIOLOGICAL)
    assert r.labelled and r.slice_index == 1 and r.labels == RADIOLOGICAL
    assert r.area_mm2["manual"] == pytest.approx(36 * 0.4)
    assert r.area_mm2["shrunk"] == pytest.approx(12 * 0.4)
    for name, mask in masks.items():
        assert r.dice[name] == pytest.approx(dice(mask, man))
    unlabelled = slice_readout(volume["manual"][..., 2], masks={"shifted": volume["masks"]["shifted"][..., 2]},
                               pixel_mm=(1, 1))
    assert not unlabelled.labelled and math.isnan(unlabelled.dice["shifted"])
    assert unlabelled.area_mm2 == {"manual": 0.0, "shifted": 36.0}
    with pytest.raises(ParameterError, match=r"pixel_mm must be 2 positive finite voxel sizes in mm; got \(0.5, -1\)"):
        slice_readout(man, masks={}, pixel_mm=(0.5, -1))
    with pytest.raises(GridMismatchError, match="slice masks have different shapes"):
        slice_readout(man, masks={"x": man[:4]}, pixel_mm=(1, 1))


# ------------------------------------------------------------------------------ the widget


def test_controls_update_readout_and_picture(volume):
    v = make_viewer(volume, mode="agreement", model="shifted", cord_margin_mm=1.0)
    n1 = volume["image"].shape[1]
    assert v.slice_slider.value == 1 and v.slice_slider.max == 2  # labelled slices 0-1: idx[len // 2]
    assert v.model_dropdown.options == ("shifted", "shrunk")
    for z in (1, 0, 2):
        v.slice_slider.value = z
        r = v.current_readout
        assert r.slice_index == z and f"<span class='pedgm-slice'>{z}</span>" in v.readout.value
        truth = volume["manual"][..., z]
        for name, mask in volume["masks"].items():
            expected = dice(mask[..., z], truth) if truth.any() else math.nan
            assert r.dice[name] == pytest.approx(expected, nan_ok=True)
            assert r.area_mm2[name] == pytest.approx(np.count_nonzero(mask[..., z]) * 0.5 * 0.8)
        shown = v.readout.value.split("class='pedgm-dice' data-model='shifted'>")[1].split("<")[0]
        assert shown == (f"{r.dice['shifted']:.4f}" if truth.any() else "&ndash;")
    v.slice_slider.value = 1
    rgb = decode(v.image.value)
    assert np.array_equal(rgb, v.rendered)
    assert rgb.shape == (n1 * 4 + 2 * M, 20 * 4 + 2 * M, 3)
    # manual i 6..11, model i 8..13 (shifted toward the subject's left = picture's right)
    assert picture_pixel(rgb, 9, 8, n1=n1, scale=4) == COLOURS["tp"]
    assert picture_pixel(rgb, 13, 8, n1=n1, scale=4) == COLOURS["fp"]
    assert picture_pixel(rgb, 6, 8, n1=n1, scale=4) == COLOURS["fn"]
    fp_cols = np.nonzero((rgb == COLOURS["fp"]).all(axis=2).any(axis=0))[0]
    fn_cols = np.nonzero((rgb == COLOURS["fn"]).all(axis=2).any(axis=0))[0]
    assert fn_cols.max() < fp_cols.min()  # subject's left on the picture's right
    background = picture_pixel(rgb, 1, 1, n1=n1, scale=4)
    assert background[0] == background[1] == background[2]

    v.model_dropdown.value = "shrunk"  # model dropdown: readout and overlay follow
    assert "class='pedgm-dice' data-model='shrunk'>" + f"{dice(volume['masks']['shrunk'][..., 1], volume['manual'][..., 1]):.4f}" in v.readout.value
    rgb = decode(v.image.value)
    assert picture_pixel(rgb, 7, 8, n1=n1, scale=4) == COLOURS["tp"]
    assert picture_pixel(rgb, 12, 8, n1=n1, scale=4) != COLOURS["fp"]

    v.mode_buttons.value = "manual"
    assert picture_pixel(decode(v.image.value), 6, 8, n1=n1, scale=4) == COLOURS["manual"]
    v.opacity_slider.value = 0.0
    pix = picture_pixel(decode(v.image.value), 6, 8, n1=n1, scale=4)
    assert pix[0] == pix[1] == pix[2]
    v.zoom_buttons.value = "cord"  # manual GM box i 6..11, j 5..10, + 1 mm = 2 voxels each way
    assert v.rendered.shape == (10 * 4 + 2 * M, 10 * 4 + 2 * M, 3)
    assert np.array_equal(v.rendered[M:-M, M:-M], render_slice(
        np.rot90(volume["image"][..., 1]), zoom_box=(n1 - 13, n1 - 3, 4, 14), scale=4,
        vmin=v.current.vmin, vmax=v.current.vmax, manual=np.rot90(volume["manual"][..., 1]), mode="manual", opacity=0.0))


def test_viewer_on_real_lps_scan_from_index(gm_challenge, tmp_path):
    """from_index on the BIDS sample: sub-9604 is stored LPS; Dice against metrics on its own grid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    sid, unl = "sub-9604_run-1_T2starw", "sub-9604_run-2_T2starw"
    scan = index[sid]
    gm = nib.load(scan.gm_mask)
    shifted = np.roll(np.asarray(gm.dataobj).astype(np.uint8), 2, axis=0)
    nib.save(nib.Nifti1Image(shifted, gm.affine, gm.header), tmp_path / "shifted.nii.gz")
    draft_img = nib.load(index[unl].image)
    draft = np.zeros(draft_img.shape[:3], np.uint8)
    draft[40:50, 40:50, 1] = 1
    nib.save(nib.Nifti1Image(draft, draft_img.affine), tmp_path / "draft.nii.gz")

    v = SliceViewer.from_index(index, masks={"shifted": {sid: tmp_path / "shifted.nii.gz"},
                                             "draft": {unl: tmp_path / "draft.nii.gz"}})
    assert list(v.scan_dropdown.options) == [s.scan_id for s in index.scans] + [unl]
    assert v.model_dropdown.options == ()  # the first scan has no named mask
    v.scan_dropdown.value = sid
    assert v.model_dropdown.value == "shifted"
    truth = Canonical(gm).data == 1
    pred = Canonical(nib.load(tmp_path / "shifted.nii.gz")).data == 1
    labelled = np.nonzero(truth.any(axis=(0, 1)))[0]
    assert v.slice_slider.max == truth.shape[2] - 1
    assert v.slice_slider.value == labelled[len(labelled) // 2]
    pixel_area = float(np.prod(nib.affines.voxel_sizes(gm.affine)[:2]))
    for z in labelled[:3]:
        v.slice_slider.value = int(z)
        r = v.current_readout
        assert r.dice["shifted"] == pytest.approx(dice(pred[..., z], truth[..., z]))
        assert r.area_mm2["manual"] == pytest.approx(truth[..., z].sum() * pixel_area)
        assert f"{r.dice['shifted']:.4f}" in v.readout.value
    assert r.labels == RADIOLOGICAL and "stored LPS" in v.readout.value

    v.scan_dropdown.value = unl  # a draft without a manual mask
    assert v.model_dropdown.options == ("draft",)
    assert "no manual mask" in v.readout.value and math.isnan(v.current_readout.dice["draft"])
    with pytest.raises(ParameterError, match="masks\\['x'\\] names scan 'sub-nobody', which is not in the index"):
        SliceViewer.from_index(index, masks={"x": {"sub-nobody": tmp_path / "draft.nii.gz"}})


# ------------------------------------------------------------------------------ error paths


def test_grid_mismatch_names_the_mask_file(tmp_path, volume):
    nib.save(nib.Nifti1Image(volume["image"], LAS), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(volume["manual"][:, :10], LAS), tmp_path / "small_gm.nii.gz")
    nib.save(nib.Nifti1Image(volume["manual"], LAS @ np.diag([1, 1, 1.5, 1])), tmp_path / "thick_pred.nii.gz")
    img = tmp_path / "img.nii.gz"
    with pytest.raises(GridMismatchError, match=r"small_gm.nii.gz: manual GM mask shape \(20, 10, 3\) differs from image .*img.nii.gz"):
        SliceViewer([ViewerScan("s", img, manual=tmp_path / "small_gm.nii.gz")])
    for validate in (True, False):  # found from the headers up front, or when the scan is loaded
        with pytest.raises(GridMismatchError, match=r"thick_pred.nii.gz: 'model' GM mask affine differs from image .*img.nii.gz"):
            SliceViewer([ViewerScan("s", img, masks={"model": tmp_path / "thick_pred.nii.gz"})], validate=validate)
    with pytest.raises(GridMismatchError, match=r"<in-memory 'shifted' GM mask of scan 'synth'>: 'shifted' GM mask shape"):
        SliceViewer.from_arrays(volume["image"], masks={"shifted": volume["manual"][:5]}, scan_id="synth")


def test_other_input_errors(tmp_path, volume):
    nib.save(nib.Nifti1Image(volume["image"], LAS), tmp_path / "img.nii.gz")
    soft = volume["manual"] * 0.7
    nib.save(nib.Nifti1Image(soft.astype(np.float32), LAS), tmp_path / "soft.nii.gz")
    with pytest.raises(InputFileError, match="No such file or no access: '.*gone.nii.gz' \\(manual GM mask\\)"):
        SliceViewer([ViewerScan("s", tmp_path / "img.nii.gz", manual=tmp_path / "gone.nii.gz")])
    with pytest.raises(ImageContentError, match="soft.nii.gz: 'p' GM mask must hold only 0 and 1, but 72 voxel"):
        SliceViewer([ViewerScan("s", tmp_path / "img.nii.gz", masks={"p": tmp_path / "soft.nii.gz"})])
    with pytest.raises(ParameterError, match="duplicate scan id 'a'"):
        SliceViewer([ViewerScan("a", tmp_path / "img.nii.gz")] * 2)
    with pytest.raises(ParameterError, match="mask name must be a non-empty string other than 'manual'"):
        ViewerScan("a", tmp_path / "img.nii.gz", masks={"manual": tmp_path / "img.nii.gz"})
    with pytest.raises(ParameterError, match=r"slice_index must be an integer in \[0, 2\]"):
        make_viewer(volume, slice_index=3)
    with pytest.raises(ParameterError, match="model 'nope' is not the name of any scan's mask"):
        make_viewer(volume, model="nope")
    with pytest.raises(ParameterError, match="spacing_mm must be 3 positive finite voxel sizes in mm; got \\(1, 1\\)"):
        SliceViewer.from_arrays(volume["image"], spacing_mm=(1, 1))


def test_from_arrays_stack_on_axis0(volume):
    """(N, rows, cols) stacks as in the data-creation arrays; areas from spacing_mm."""
    images = np.moveaxis(volume["image"], 2, 0)
    masks = np.moveaxis(volume["manual"], 2, 0)
    v = SliceViewer.from_arrays(images, manual=masks.astype(bool), masks={"same": masks}, slice_axis=0,
                                spacing_mm=(0.25, 0.25, 1.0))
    assert v.slice_slider.max == 2
    assert v.current_readout.area_mm2["manual"] == pytest.approx(36 * 0.0625)
    assert v.current_readout.dice["same"] == 1.0


# ------------------------------------------------------------------------------ review log


def test_review_log_atomic_and_keeps_columns(tmp_path, monkeypatch):
    path = tmp_path / "review.csv"
    pd.DataFrame({"scan_id": ["a", "b"], "image": ["a.nii.gz", "b.nii.gz"], "draft": ["da", "db"],
                  "status": ["needs review"] * 2}).to_csv(path, index=False)
    log = ReviewLog(path, scan_ids=["b", "c"])
    assert log.mark("a", "accepted", note="fine") == path
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame["scan_id"]) == ["a", "b", "c"]
    assert list(frame["status"]) == ["accepted", "needs review", "needs review"]
    assert frame.loc[0, "draft"] == "da" and frame.loc[0, "note"] == "fine" and frame.loc[0, "reviewed_at"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review.csv"]  # no temporary file left

    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(utils_mod.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        log.mark("b", "needs correction", note="left horn")
    assert path.read_bytes() == before  # the old file, complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review.csv"]
    monkeypatch.undo()
    log.mark("b", "needs correction", note="left horn")
    assert ReviewLog(path).status("b") == "needs correction"
    with pytest.raises(ParameterError, match="status must be one of 'needs review', 'accepted', 'needs correction', 'corrected'; got 'ok'"):
        log.mark("a", "ok")


def test_review_log_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("scan_id,status\na,maybe\n")
    with pytest.raises(InputFileError, match="bad.csv': scan 'a' has status 'maybe'"):
        ReviewLog(bad)
    bad.write_text("id,status\na,accepted\n")
    with pytest.raises(InputFileError, match="has no scan_id column"):
        ReviewLog(bad)
    with pytest.raises(InputFileError, match="Review log folder does not exist"):
        ReviewLog(tmp_path / "nope" / "review.csv")
    assert REVIEW_STATUSES[0] == "needs review"


def test_viewer_review_buttons_write_csv(tmp_path, volume):
    log = ReviewLog(tmp_path / "review.csv")
    v = SliceViewer.from_arrays({"s1": volume["image"], "s2": volume["image"][::-1]},
                                manual={"s1": volume["manual"]}, masks={"draft": {"s2": volume["manual"][::-1]}},
                                review=log)
    assert "needs review" in v.readout.value and not (tmp_path / "review.csv").exists()
    v.accept_button.click()
    v.scan_dropdown.value = "s2"
    assert v.model_dropdown.value == "draft" and "no manual mask" in v.readout.value
    v.note_text.value = "posterior horn too thin"
    v.correction_button.click()
    assert "needs correction" in v.readout.value
    frame = pd.read_csv(tmp_path / "review.csv", dtype=str, keep_default_na=False)
    assert frame[["scan_id", "status", "note"]].values.tolist() == [
        ["s1", "accepted", ""], ["s2", "needs correction", "posterior horn too thin"]]


def test_model_choice_kept_across_scans(volume):
    shifted, shrunk = volume["masks"]["shifted"], volume["masks"]["shrunk"]
    v = SliceViewer.from_arrays(
        {"s1": volume["image"], "s2": volume["image"], "s3": volume["image"]},
        manual={k: volume["manual"] for k in ("s1", "s2", "s3")},
        masks={"shifted": {"s1": shifted, "s2": shifted, "s3": shifted}, "shrunk": {"s1": shrunk, "s3": shrunk}},
    )
    v.model_dropdown.value = "shrunk"
    v.scan_dropdown.value = "s2"  # has no "shrunk": falls back to its first mask
    assert v.model_dropdown.options == ("shifted",) and v.model_dropdown.value == "shifted"
    v.scan_dropdown.value = "s3"
    assert v.model_dropdown.value == "shrunk"
    z = v.slice_slider.value
    assert v.current_readout.dice["shrunk"] == pytest.approx(dice(shrunk[..., z], volume["manual"][..., z]))
