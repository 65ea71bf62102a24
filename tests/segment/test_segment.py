"""Accuracy and grid tests of `segment_image` on the real sample scans.

Dice is computed on the slices the raters labelled (slices with manual GM); the gm-challenge-data
labels leave the top slices of some scans unlabelled, and GM predicted there is not an error.
"""

import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.exceptions import GridMismatchError
from pedgm_kit.metrics import dice
from pedgm_kit.segment import Segmenter, segment_image

RUN1 = ["sub-10062Ses1", "sub-10062Ses2", "sub-9418", "sub-9584", "sub-9604", "sub-9669", "sub-9709Ses1", "sub-9709Ses2"]


def labelled_dice(seg, manual_path) -> float:
    pred = np.asanyarray(seg.dataobj) > 0
    truth = nib.load(manual_path).get_fdata() > 0.5
    labelled = truth.any(axis=(0, 1))
    return dice(pred[..., labelled], truth[..., labelled])


def scan(gm_challenge, sub, what=""):
    if not what:
        return gm_challenge / sub / "anat" / f"{sub}_run-1_T2starw.nii.gz"
    return gm_challenge / "derivatives" / "labels" / sub / "anat" / f"{sub}_run-1_T2starw_{what}.nii.gz"


@pytest.mark.slow
def test_t2s_uncropped_challenge(t2s_dir, challenge_segmenter):
    seg = segment_image(t2s_dir / "t2s_uncropped.nii.gz", model=challenge_segmenter)
    assert labelled_dice(seg, t2s_dir / "t2s_uncropped_gmseg_manual.nii.gz") >= 0.87


@pytest.mark.slow
def test_t2s_uncropped_large(t2s_dir):
    seg = segment_image(t2s_dir / "t2s_uncropped.nii.gz", model="large")
    assert labelled_dice(seg, t2s_dir / "t2s_uncropped_gmseg_manual.nii.gz") >= 0.88


@pytest.mark.slow
@pytest.mark.parametrize("sub", RUN1)
def test_gm_challenge_run1(gm_challenge, challenge_segmenter, sub):
    image = scan(gm_challenge, sub)
    seg = segment_image(image, model=challenge_segmenter)
    assert labelled_dice(seg, scan(gm_challenge, sub, "gmseg-manual")) >= 0.87
    src = nib.load(image)
    assert seg.shape == src.shape
    np.testing.assert_array_equal(seg.affine, src.affine)
    for code in ("qform_code", "sform_code"):
        assert int(seg.header[code]) == int(src.header[code])
    assert seg.get_data_dtype() == np.uint8 and set(np.unique(np.asanyarray(seg.dataobj))) <= {0, 1}


@pytest.mark.slow
def test_off_centre_cord_is_found(gm_challenge, challenge_segmenter):
    """sub-9604: LPS, cord ~25 mm off the image centre (SCT's centre crop scores 0 there)."""
    seg = segment_image(scan(gm_challenge, "sub-9604"), model=challenge_segmenter)
    info = seg.extra["pedgm_segment"]
    assert info["centring"] == "auto" and info["recentred_slices"] > 0
    assert nib.aff2axcodes(seg.affine) == ("L", "P", "S")


@pytest.mark.slow
def test_cord_mask_centring_and_mismatch(gm_challenge, challenge_segmenter, tmp_path):
    image = scan(gm_challenge, "sub-9604")
    seg = segment_image(image, model=challenge_segmenter, cord_mask=scan(gm_challenge, "sub-9604", "seg-manual"))
    assert seg.extra["pedgm_segment"]["centring"] == "cord mask"
    assert labelled_dice(seg, scan(gm_challenge, "sub-9604", "gmseg-manual")) >= 0.87
    with pytest.raises(GridMismatchError, match="cord mask shape"):
        segment_image(image, model=challenge_segmenter, cord_mask=scan(gm_challenge, "sub-9418", "seg-manual"))


@pytest.mark.slow
def test_soft_output_and_no_mutation(t2s_dir, challenge_segmenter):
    src = nib.load(t2s_dir / "t2s.nii.gz")
    before = np.asanyarray(src.dataobj).copy()
    soft = segment_image(src, model=challenge_segmenter, threshold=0)
    data = np.asanyarray(soft.dataobj)
    assert soft.get_data_dtype() == np.float32 and data.min() >= 0 and data.max() <= 1 and data.max() > 0.99
    np.testing.assert_array_equal(np.asanyarray(src.dataobj), before)


@pytest.mark.slow
def test_tta_is_seeded(t2s_dir, challenge_segmenter):
    image = t2s_dir / "t2s.nii.gz"
    a = segment_image(image, model=challenge_segmenter, tta=True, seed=3, threshold=0)
    b = segment_image(image, model=challenge_segmenter, tta=True, seed=3, threshold=0)
    c = segment_image(image, model=challenge_segmenter, tta=True, seed=4, threshold=0)
    np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    assert not np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(c.dataobj))
    hard = (np.asanyarray(a.dataobj) > 0.999).astype(np.uint8)
    assert np.count_nonzero(hard) > 0


def test_segmenter_arguments():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        Segmenter("challenge", batch_size=0)


@pytest.mark.slow
def test_result_does_not_depend_on_batch_size(gm_challenge):
    image = scan(gm_challenge, "sub-9604")
    a = np.asanyarray(segment_image(image, batch_size=1).dataobj)
    b = np.asanyarray(segment_image(image, batch_size=8).dataobj)
    np.testing.assert_array_equal(a, b)
