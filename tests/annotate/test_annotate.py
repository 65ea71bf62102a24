"""Headless tests of pedgm_kit.annotate: NiiVue's voxel order, saving, accepting, input checks.

No browser: the drawing bitmap that NiiVue would send is built with the conversion under test (or
by hand), and setting ``editor.nv.draw_bitmap`` fires the same observer a browser reply would. The
real-browser test (mouse strokes on LAS and LPS scans) is tests/annotate/test_annotate_browser.py.
"""

from __future__ import annotations

import gzip
import itertools
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import pedgm_kit.io as io_mod
from pedgm_kit.annotate import CorrectionEditor
from pedgm_kit.annotate._niivue_grid import (
    bitmap_to_stored,
    frac_to_stored,
    niivue_affine,
    perm_ras,
    ras_shape,
    stored_to_bitmap,
    stored_to_frac,
)
from pedgm_kit.exceptions import (
    GridMismatchError,
    ImageContentError,
    InputFileError,
    OutputExistsError,
    ParameterError,
)
from pedgm_kit.viewer import ReviewLog

SCANS = {"sub-9418": "LAS", "sub-9604": "LPS"}


def _scan(root, subject):
    image = root / subject / "anat" / f"{subject}_run-1_T2starw.nii.gz"
    manual = root / "derivatives" / "labels" / subject / "anat" / f"{subject}_run-1_T2starw_gmseg-manual.nii.gz"
    return image, manual


def _canonical_bitmap(data, img):
    """Independent reference: nibabel's closest canonical (RAS) array of NiiVue's affine, x fastest."""
    can = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data), niivue_affine(img)))
    return np.asarray(can.dataobj).ravel(order="F")


def _signed_permutation_image(order, signs, shape=(5, 6, 7), zooms=(0.5, 0.6, 3.0), qcode=1, scode=1):
    """A synthetic image whose stored axis ``s`` runs along world axis ``order[s]`` with ``signs[s]``."""
    affine = np.zeros((4, 4))
    for s, (w, sign) in enumerate(zip(order, signs)):
        affine[w, s] = sign * zooms[s]
    affine[:3, 3] = (-10.0, 20.0, 5.0)
    affine[3, 3] = 1
    stored_shape = tuple(shape[s] for s in range(3))
    img = nib.Nifti1Image(np.zeros(stored_shape, np.float32), affine)
    img.set_qform(affine, code=qcode)
    img.set_sform(affine, code=scode)
    return img


# ------------------------------------------------------------------------------ NiiVue's voxel order


@pytest.mark.parametrize("subject", list(SCANS))
def test_round_trip_exact_on_real_scans(gm_challenge, subject, rng):
    image, manual = _scan(gm_challenge, subject)
    img = nib.load(image)
    assert "".join(nib.aff2axcodes(img.affine)) == SCANS[subject]
    mask = (np.asarray(nib.load(manual).dataobj) == 1).astype(np.uint8)
    noise = rng.integers(0, 256, img.shape[:3], dtype=np.uint8)
    for data in (mask, noise):
        bitmap = stored_to_bitmap(data, img)
        assert bitmap.dtype == np.uint8 and bitmap.ndim == 1 and bitmap.size == data.size
        back = bitmap_to_stored(bitmap, img)
        assert back.shape == img.shape[:3] and back.flags.c_contiguous
        assert np.array_equal(back, data)
        assert np.array_equal(bitmap, _canonical_bitmap(data, img))
    expected = {"sub-9418": (-1, 2, 3), "sub-9604": (-1, -2, 3)}[subject]
    assert perm_ras(niivue_affine(img)) == expected
    assert ras_shape(img) == img.shape[:3]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("signs", list(itertools.product((1, -1), repeat=3)))
def test_round_trip_exact_on_every_axis_order(order, signs, rng):
    img = _signed_permutation_image(order, signs)
    data = rng.integers(0, 256, img.shape, dtype=np.uint8)
    bitmap = stored_to_bitmap(data, img)
    assert np.array_equal(bitmap_to_stored(bitmap, img), data)
    assert np.array_equal(bitmap, _canonical_bitmap(data, img))
    perm = perm_ras(img.affine)
    for s, (w, sign) in enumerate(zip(order, signs)):  # stored axis s becomes RAS axis w
        assert perm[w] == sign * (s + 1)
    assert ras_shape(img) == tuple(img.shape[abs(p) - 1] for p in perm)
    ijk = (1, 4, 6)
    assert frac_to_stored(stored_to_frac(ijk, img), img) == ijk


def test_bitmap_order_hand_checked():
    """LAS 2x2x2: RAS x runs against stored i, so bitmap[x + 2y + 4z] = a[1 - x, y, z]."""
    img = _signed_permutation_image((0, 1, 2), (-1, 1, 1), shape=(2, 2, 2))
    a = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)  # a[i, j, k] = 4i + 2j + k
    assert stored_to_bitmap(a, img).tolist() == [4, 0, 6, 2, 5, 1, 7, 3]
    # stored axes (S, L, P), a 3-cycle: RAS x <- stored 1 flipped, y <- stored 2 flipped, z <- stored 0
    assert perm_ras(_signed_permutation_image((2, 0, 1), (1, -1, -1)).affine) == (-2, -3, 1)
    # (P, L, S), an axis swap
    assert perm_ras(_signed_permutation_image((1, 0, 2), (-1, -1, 1)).affine) == (-2, -1, 3)
    # frac is the voxel centre on the RAS grid: stored i = 0 of a LAS image is the rightmost x
    assert stored_to_frac((0, 0, 1), img) == [0.75, 0.25, 0.75]
    assert frac_to_stored([0.75, 0.25, 0.75], img) == (0, 0, 1)


def test_niivue_affine_follows_niivue_not_nibabel():
    las = _signed_permutation_image((0, 1, 2), (-1, 1, 1)).affine
    swapped = _signed_permutation_image((1, 0, 2), (1, 1, 1)).affine
    # qform_code > sform_code: NiiVue takes the qform, nibabel the sform
    img = nib.Nifti1Image(np.zeros((5, 6, 7), np.float32), None)
    img.set_qform(las, code=2)
    img.set_sform(swapped, code=1)
    assert np.allclose(img.affine, swapped)
    assert np.allclose(niivue_affine(img), las) and perm_ras(niivue_affine(img)) == (-1, 2, 3)
    # equal codes: the sform
    img.set_qform(las, code=1)
    assert perm_ras(niivue_affine(img)) == (2, 1, 3)
    # no codes: diag(pixdim), without nibabel's x flip
    img.set_qform(las, code=0)
    img.set_sform(swapped, code=0)
    assert np.allclose(niivue_affine(img), np.diag([*img.header.get_zooms()[:3], 1.0]))
    assert perm_ras(niivue_affine(img)) == (1, 2, 3) and perm_ras(img.affine) == (-1, 2, 3)
    # an sform with a zero row is not usable: NiiVue falls back to the qform
    broken = swapped.copy()
    broken[2, :3] = 0
    img.set_qform(las, code=1)
    img.header.set_sform(broken, code=2)
    assert perm_ras(niivue_affine(img)) == (-1, 2, 3)


def test_greedy_axis_rule_on_oblique_affine():
    """NiiVue picks stored axis 0's world axis first, then axis 1's among the rest."""
    a = np.eye(4)
    a[:3, :3] = [[0.6, 0.7, 0.0],  # stored 0 -> world y (0.8 > 0.6); stored 1 -> x (0.7 > 0.1)
                 [0.8, -0.1, 0.0],
                 [0.0, 0.1, 1.0]]
    assert perm_ras(a) == (2, 1, 3)
    a[:3, :3] = [[-0.9, 0.3, 0.1], [0.2, 0.9, -0.3], [0.1, 0.4, 2.9]]  # 15-20 degrees off LAS
    assert perm_ras(a) == (-1, 2, 3)


def test_conversion_rejects_wrong_sizes(tiny_image):
    with pytest.raises(GridMismatchError, match=r"drawing bitmap has 5 voxels; the image grid \(24, 20, 4\) has 1920"):
        bitmap_to_stored(np.zeros(5, np.uint8), tiny_image)
    with pytest.raises(GridMismatchError, match=r"array shape \(2, 2, 2\) differs from the image grid"):
        stored_to_bitmap(np.zeros((2, 2, 2)), tiny_image)


# ------------------------------------------------------------------------------ the editor, headless


@pytest.fixture
def las_case(tiny_image, tmp_path):
    """The tiny LAS image, a 0/1 float draft with its own (sform-coded) header, an uncertainty map."""
    image = tmp_path / "sub-01_T2starw.nii.gz"
    nib.save(tiny_image, image)
    draft = np.zeros(tiny_image.shape, np.float64)
    draft[10:14, 8:12, 1:3] = 1
    draft[11, 13, 2] = 1
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    draft_path = drafts / "sub-01_T2starw_gmseg.nii.gz"
    nib.save(nib.Nifti1Image(draft, tiny_image.affine), draft_path)
    unc_path = drafts / "sub-01_T2starw_uncertainty.nii.gz"
    nib.save(nib.Nifti1Image(np.linspace(0, 1, draft.size).reshape(draft.shape).astype(np.float32),
                             tiny_image.affine), unc_path)
    return {"image": image, "draft": draft_path, "uncertainty": unc_path, "draft_data": draft.astype(np.uint8),
            "root": tmp_path}


def _assert_on_grid(path, image):
    out, ref = nib.load(path), nib.load(image)
    assert out.shape == ref.shape[:3]
    assert np.array_equal(out.affine, ref.affine)
    assert int(out.header["qform_code"]) == int(ref.header["qform_code"])
    assert int(out.header["sform_code"]) == int(ref.header["sform_code"])
    assert np.allclose(out.header.get_qform(), ref.header.get_qform())
    assert out.get_data_dtype() == np.uint8
    data = np.asarray(out.dataobj)
    assert set(np.unique(data).tolist()) <= {0, 1}
    return data


def test_editor_defaults_and_save_array(las_case):
    editor = CorrectionEditor(las_case["image"], las_case["draft"], uncertainty=las_case["uncertainty"])
    assert editor.scan_id == "sub-01_T2starw"
    assert editor.image_path == las_case["image"]
    assert editor.output == las_case["draft"].parent / "sub-01_T2starw_gmseg-corrected.nii.gz"
    assert editor.accept_button.disabled and editor.accept_to is None
    assert editor.slice_slider.max == 3 and editor.slice_slider.value == 2  # the slice with most draft voxels
    assert np.array_equal(editor.draft, las_case["draft_data"])
    fixed = las_case["draft_data"].copy()
    fixed[5, 5, 0] = 1
    assert editor.save_array(fixed.astype(bool)) == editor.output
    assert np.array_equal(_assert_on_grid(editor.output, las_case["image"]), fixed)
    assert editor.n_saved == 1
    assert sorted(p.name for p in editor.output.parent.iterdir()) == sorted(
        ["sub-01_T2starw_gmseg.nii.gz", "sub-01_T2starw_uncertainty.nii.gz", editor.output.name])
    # the overlay controls drive the uncertainty volume's opacity
    editor.opacity_slider.value = 0.7
    assert editor.nv.volumes[1].opacity == pytest.approx(0.7)
    editor.uncertainty_checkbox.value = False
    assert editor.nv.volumes[1].opacity == 0.0
    editor.close()


@pytest.mark.parametrize("subject", list(SCANS))
def test_save_keeps_the_image_grid_of_real_scans(gm_challenge, subject, tmp_path):
    """sub-9604's image has only a qform (sform_code 0), its manual mask an sform: the output is the image's."""
    image, manual = _scan(gm_challenge, subject)
    editor = CorrectionEditor(image, manual, output=tmp_path / "corrected.nii.gz")
    data = _assert_on_grid(editor.save_array(editor.draft), image)
    assert np.array_equal(data, (np.asarray(nib.load(manual).dataobj) == 1))
    # the draft is sent to NiiVue with the image's header, so NiiVue orders it like the image
    sent = nib.Nifti1Image.from_bytes(gzip.decompress(editor._drawing_bytes))
    ref = nib.load(image)
    assert perm_ras(niivue_affine(sent)) == perm_ras(niivue_affine(ref))
    for code in ("qform_code", "sform_code"):
        assert int(sent.header[code]) == int(ref.header[code])
    assert sent.get_data_dtype() == np.uint8 and np.array_equal(np.asarray(sent.dataobj), editor.draft)


def test_save_from_the_browser_reply(las_case):
    """Save asks for the bitmap; the file is written when ``draw_bitmap`` arrives (simulated here)."""
    review = ReviewLog(las_case["root"] / "review.csv")
    editor = CorrectionEditor(las_case["image"], las_case["draft"], review=review)
    img = nib.load(las_case["image"])
    editor.save_button.click()  # nothing loaded in a viewer yet: refused, nothing written
    assert editor.status.value.startswith("the draft is not loaded") and not editor.output.exists()

    editor._on_image_loaded(editor.nv.volumes[0])  # the browser loaded the image: the draft is sent
    assert editor.status.value == "loading the draft..."
    editor.nv.draw_bitmap = stored_to_bitmap(editor.draft, img)  # ... and comes back as NiiVue's bitmap
    assert editor.status.value == f"ready: draft {las_case['draft'].name} has {int(editor.draft.sum())} GM voxels"

    edited = editor.draft
    edited[3, 4, 2] = 1
    edited[10, 8, 1] = 0
    editor.save_button.click()
    assert editor.status.value == "saving..." and not editor.output.exists()
    editor.nv.draw_bitmap = stored_to_bitmap(edited, img)
    assert editor.status.value == f"saved #1: {int(edited.sum())} GM voxels in {editor.output.name}"
    assert np.array_equal(_assert_on_grid(editor.output, las_case["image"]), edited)
    assert np.array_equal(editor.drawing, edited)
    assert review.status("sub-01_T2starw") == "corrected"
    assert "corrected: " in review.to_frame().set_index("scan_id").loc["sub-01_T2starw", "note"]

    # a bitmap that arrives without a request (Undo) only updates the status
    editor.nv.draw_bitmap = stored_to_bitmap(editor.draft, img)
    assert editor.status.value.startswith("drawing: ") and editor.n_saved == 1
    # a drawing with other values than 0/1 is reported, not saved
    editor.save_button.click()
    bad = edited.copy()
    bad[0, 0, 0] = 2
    editor.nv.draw_bitmap = stored_to_bitmap(bad, img)
    assert editor.status.value.startswith("error: the drawing: drawing must hold only 0 and 1")
    assert np.array_equal(_assert_on_grid(editor.output, las_case["image"]), edited)


def test_controls_drive_niivue(las_case):
    editor = CorrectionEditor(las_case["image"], las_case["draft"], zoom=1.0)
    img = nib.load(las_case["image"])
    editor.tool_buttons.value = 0
    assert editor.nv.opts.pen_value == 0 and editor.status.value == "tool: erase (0)"
    editor.filled_checkbox.value = True
    assert editor.nv.opts.is_filled_pen is True
    assert editor.nv.draw_opacity == pytest.approx(0.6)
    editor.mask_opacity_slider.value = 0.3
    assert editor.nv.draw_opacity == pytest.approx(0.3)
    editor.slice_slider.value = 1
    assert editor.nv.scene.crosshair_pos[2] == pytest.approx(stored_to_frac((0, 0, 1), img)[2])
    editor._on_location({"frac": [0.5, 0.5, stored_to_frac((0, 0, 3), img)[2]]})  # NiiVue moved
    assert editor.slice_slider.value == 3
    assert editor.nv.scene.crosshair_pos[2] == pytest.approx(stored_to_frac((0, 0, 1), img)[2])  # not echoed
    editor.zoom_buttons.value = 8.0  # the image is not in a browser: no ortho matrix, nothing to centre on
    assert editor.status.value == "zoom: cord 8x"
    editor.zoom_buttons.value = 1.0
    assert editor.nv.scene.pan2d_xyzmm == [0.0, 0.0, 0.0, 1.0]


def test_save_is_atomic(las_case, monkeypatch):
    editor = CorrectionEditor(las_case["image"], las_case["draft"])
    folder = editor.output.parent
    before = sorted(p.name for p in folder.iterdir())

    def broken_save(img, filename):
        with open(filename, "wb") as handle:  # half a file, then the disk is full
            handle.write(b"\x1f\x8b partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io_mod.nib, "save", broken_save)
    with pytest.raises(OSError, match="No space left on device"):
        editor.save_array(editor.draft)
    assert sorted(p.name for p in folder.iterdir()) == before  # no output, no temporary file

    monkeypatch.undo()
    editor.save_array(editor.draft)
    good = editor.output.read_bytes()
    monkeypatch.setattr(io_mod.nib, "save", broken_save)
    with pytest.raises(OSError):
        editor.save_array(np.zeros_like(editor.draft))
    assert editor.output.read_bytes() == good  # the previous file, complete
    assert sorted(p.name for p in folder.iterdir()) == sorted([*before, editor.output.name])


def test_accept_promotes_and_refuses_an_existing_manual_mask(las_case):
    review = ReviewLog(las_case["root"] / "review.csv")
    manual = las_case["root"] / "derivatives" / "labels" / "sub-01" / "anat" / "sub-01_T2starw_gmseg-manual.nii.gz"
    editor = CorrectionEditor(las_case["image"], las_case["draft"], review=review, accept_to=manual)
    assert not editor.accept_button.disabled
    with pytest.raises(InputFileError, match="No corrected mask to accept: .*gmseg-corrected.nii.gz' does not exist"):
        editor.accept()
    editor.save_array(editor.draft)
    assert editor.accept() == manual  # its folder is created
    assert manual.read_bytes() == editor.output.read_bytes()
    assert review.status("sub-01_T2starw") == "accepted"
    assert sorted(p.name for p in manual.parent.iterdir()) == [manual.name]

    before = manual.read_bytes()
    editor.save_array(np.zeros_like(editor.draft))
    with pytest.raises(OutputExistsError, match=r"Manual mask '.*sub-01_T2starw_gmseg-manual.nii.gz' exists; "
                                                r"pass overwrite_manual=True"):
        editor.accept()
    assert manual.read_bytes() == before
    # the Accept button says so without saving
    editor._drawing = editor.draft
    n_saved = editor.n_saved
    editor.accept_button.click()
    assert editor.status.value.startswith("not accepted: Manual mask ") and editor.n_saved == n_saved

    replacing = CorrectionEditor(las_case["image"], las_case["draft"], accept_to=manual, overwrite_manual=True)
    replacing.save_array(np.zeros_like(editor.draft))
    replacing.accept()
    assert not np.asarray(nib.load(manual).dataobj).any()

    with pytest.raises(ParameterError, match="no accept_to path"):
        CorrectionEditor(las_case["image"], las_case["draft"]).accept()


def test_accept_from_the_button_saves_first(las_case):
    manual = las_case["root"] / "manual" / "sub-01_T2starw_gmseg-manual.nii.gz"
    editor = CorrectionEditor(las_case["image"], las_case["draft"], accept_to=manual)
    img = nib.load(las_case["image"])
    editor._on_image_loaded(editor.nv.volumes[0])
    editor.nv.draw_bitmap = stored_to_bitmap(editor.draft, img)
    edited = editor.draft
    edited[0, 0, 0] = 1
    editor.accept_button.click()
    editor.nv.draw_bitmap = stored_to_bitmap(edited, img)
    assert editor.status.value.startswith("accepted: sub-01_T2starw_gmseg-manual.nii.gz (saved #1: ")
    assert np.array_equal(np.asarray(nib.load(manual).dataobj), edited)


# ------------------------------------------------------------------------------ bad inputs


def test_bad_inputs_name_the_file(las_case, tiny_image):
    root, image, draft = las_case["root"], las_case["image"], las_case["draft"]
    shifted = tiny_image.affine.copy()
    shifted[0, 3] += 1.0
    other_grid = root / "other_grid.nii.gz"
    nib.save(nib.Nifti1Image(las_case["draft_data"], shifted), other_grid)
    with pytest.raises(GridMismatchError, match=r"other_grid.nii.gz: draft mask affine differs from image .*sub-01_T2starw"):
        CorrectionEditor(image, other_grid)
    cropped = root / "cropped.nii.gz"
    nib.save(nib.Nifti1Image(las_case["draft_data"][:-1], tiny_image.affine), cropped)
    with pytest.raises(GridMismatchError, match=r"cropped.nii.gz: draft mask shape \(23, 20, 4\) differs"):
        CorrectionEditor(image, cropped)
    soft = root / "soft.nii.gz"
    nib.save(nib.Nifti1Image(las_case["draft_data"] * 0.5, tiny_image.affine), soft)
    with pytest.raises(ImageContentError, match=r"soft.nii.gz: draft mask must hold only 0 and 1.*\(0.5\)"):
        CorrectionEditor(image, soft)
    with pytest.raises(InputFileError, match=r"No such file or no access: '.*missing.nii.gz' \(draft mask\)"):
        CorrectionEditor(image, root / "missing.nii.gz")
    with pytest.raises(InputFileError, match=r"No such file or no access: '.*nope.nii.gz' \(image\)"):
        CorrectionEditor(root / "nope.nii.gz", draft)
    with pytest.raises(GridMismatchError, match=r"other_grid.nii.gz: uncertainty map affine differs"):
        CorrectionEditor(image, draft, uncertainty=other_grid)
    with pytest.raises(InputFileError, match=r"Corrected mask folder does not exist: '.*no_such_dir'"):
        CorrectionEditor(image, draft, output=root / "no_such_dir" / "x.nii.gz")
    with pytest.raises(InputFileError, match=r"Corrected mask '.*sub-01_T2starw_gmseg.nii.gz' is the input file"):
        CorrectionEditor(image, draft, output=draft)
    with pytest.raises(InputFileError, match=r"Manual mask '.*sub-01_T2starw_gmseg.nii.gz' is the file"):
        CorrectionEditor(image, draft, accept_to=draft)
    with pytest.raises(InputFileError, match=r"Manual mask '.*manual.nii' must end in .nii.gz like the corrected mask"):
        CorrectionEditor(image, draft, accept_to=root / "manual.nii")
    with pytest.raises(ParameterError, match="zoom must be one of 1.0, 2.0, 4.0, 8.0; got 3"):
        CorrectionEditor(image, draft, zoom=3)
    with pytest.raises(ParameterError, match=r"slice_index must be an integer in \[0, 3\]; got 4"):
        CorrectionEditor(image, draft, slice_index=4)
    with pytest.raises(ParameterError, match="review must be a pedgm_kit.viewer.ReviewLog; got str"):
        CorrectionEditor(image, draft, review="review.csv")
    with pytest.raises(ParameterError, match="image must be the path of a NIfTI file; got Nifti1Image"):
        CorrectionEditor(tiny_image, draft)

    editor = CorrectionEditor(image, draft)
    with pytest.raises(GridMismatchError, match=r"gmseg-corrected.nii.gz: corrected mask array shape \(2, 2\) differs"):
        editor.save_array(np.zeros((2, 2)))
    with pytest.raises(ImageContentError, match="corrected mask array must hold only 0 and 1"):
        editor.save_array(np.full(tiny_image.shape, 3))
    assert not editor.output.exists()


def test_no_backend_import():
    code = ("import sys, pedgm_kit.annotate; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert out.stdout.strip() == "[]"
