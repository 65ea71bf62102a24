"""Inference engines give the Keras path's masks; small fields of view segment close to the whole scan."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.exceptions import ParameterError
from pedgm_kit.metrics import dice, labelled_slices
from pedgm_kit.segment import DEFAULT_PADDING, ENGINES, Segmenter
from pedgm_kit.simulate import crop_fov

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def labelled_scans(gm_challenge, t2s_dir):
    """(name, image, GM mask, cord mask) of every labelled sample scan."""
    from pedgm_kit.datasets import discover_bids

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    scans = [("t2s_uncropped", t2s_dir / "t2s_uncropped.nii.gz", t2s_dir / "t2s_uncropped_gmseg_manual.nii.gz", None)]
    return scans + [(s.metadata["subject"], s.image, s.gm_mask, s.cord_mask) for s in index.scans]


def test_every_engine_gives_the_keras_masks(labelled_scans):
    keras_path = Segmenter("challenge", engine="keras")
    others = {name: Segmenter("challenge", engine=name) for name in ENGINES if name not in ("auto", "keras")}
    assert set(others) == {"xla", "onnx", "openvino"}
    for name, image, _, _ in labelled_scans:
        reference = np.asanyarray(keras_path.segment(image).dataobj)
        for engine, seg in others.items():
            out = seg.segment(image)
            assert out.extra["pedgm_segment"]["engine"] == engine
            assert np.array_equal(np.asanyarray(out.dataobj), reference), (engine, name)


def test_auto_engine_and_bad_names():
    assert Segmenter("challenge").engine.name == "openvino"  # the fastest measured, with identical masks
    with pytest.raises(ParameterError, match="engine must be one of"):
        Segmenter("challenge", engine="tensorrt")
    with pytest.raises(ParameterError, match="padding must be one of"):
        Segmenter("challenge", padding="zeros")


@pytest.mark.parametrize("size_mm", [36.0, 30.0])
def test_small_fields_of_view_stay_within_003_dice(labelled_scans, size_mm):
    """Simulated small-FOV crops (36 and 30 mm around the cord) of every labelled sample scan.

    Measured with benchmarks/small_fov.py (challenge weights, default padding 'reflect'): the
    largest drop from the uncropped scan is 0.026 (sub-10062Ses1/Ses2 at 30 mm).
    """
    seg = Segmenter("challenge")
    assert seg.padding == DEFAULT_PADDING == "reflect"
    for name, image, gm, cord in labelled_scans:
        imgs = {"image": nib.load(image), "gm": nib.load(gm)}
        if cord is not None:
            imgs["cord"] = nib.load(cord)
        crop = crop_fov(imgs, around="cord" if cord is not None else "gm", size_mm=size_mm)
        truth_full = np.asanyarray(imgs["gm"].dataobj) > 0.5
        truth_crop = np.asanyarray(crop["gm"].dataobj) > 0.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = np.asanyarray(seg.segment(imgs["image"]).dataobj) > 0
            small = np.asanyarray(seg.segment(crop["image"]).dataobj) > 0
        keep_full, keep_crop = labelled_slices(truth_full), labelled_slices(truth_crop)
        d_full = dice(full[..., keep_full], truth_full[..., keep_full])
        d_crop = dice(small[..., keep_crop], truth_crop[..., keep_crop])
        assert crop["image"].shape[0] < imgs["image"].shape[0]
        assert d_crop >= d_full - 0.03, (name, size_mm, d_full, d_crop)
