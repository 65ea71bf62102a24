import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.data_creation import (
    build_split_arrays,
    load_split,
    save_npz,
    verify_split,
)
from pedgm_kit.datasets import Scan, discover_bids
from pedgm_kit.exceptions import PedgmError
from pedgm_kit.geometry import ModelGrid
from pedgm_kit.io import load_image
from pedgm_kit.preprocess import (
    load_preprocessed,
    preprocess_scan,
    qc_montage,
    save_preprocessed,
    standardise,
)


@pytest.fixture(scope="module")
def index(gm_challenge):
    with pytest.warns(UserWarning):
        return discover_bids(gm_challenge)


def test_model_grid_affine_keeps_field_of_view(tiny_image):
    grid = ModelGrid(load_image(tiny_image), spacing_mm=0.25)
    assert grid.shape_2d == (48, 40) and grid.volume.shape == (48, 40, 4)
    np.testing.assert_allclose(nib.affines.voxel_sizes(grid.affine), [0.25, 0.25, 2.0])
    # pixel edges line up: the corner of model pixel (0, 0) is the corner of input voxel (0, 0)
    corner_model = grid.affine @ [-0.5, -0.5, 0, 1]
    corner_input = grid.canonical.affine @ [-0.5, -0.5, 0, 1]
    np.testing.assert_allclose(corner_model, corner_input, atol=1e-9)
    # linear up- then down-sampling returns a linear ramp unchanged away from the edges
    ramp = np.broadcast_to(np.arange(24, dtype=np.float32)[:, None, None], (24, 20, 4)) * 3.0 + 7
    back = ModelGrid(nib.Nifti1Image(np.ascontiguousarray(ramp), tiny_image.affine)).to_input(
        ModelGrid(nib.Nifti1Image(np.ascontiguousarray(ramp), tiny_image.affine)).volume
    )
    np.testing.assert_allclose(back[1:-1], ramp[1:-1], atol=1e-4)


def test_preprocess_real_scan_window_and_grid(index, tmp_path):
    scan = index["sub-9604_run-1_T2starw"]
    pre = preprocess_scan(scan)
    assert pre.image.shape == (200, 200, 20) and pre.gm_mask.shape == (200, 200, 20)
    assert pre.centring == "model" and pre.gm_mask.dtype == np.uint8  # placed as a new scan: by the model
    np.testing.assert_allclose(pre.spacing_mm, [0.25, 0.25, 3.0], atol=1e-3)
    # the manual GM lies in the middle of the window (the cord is ~25 mm off the image centre)
    rows, cols = np.nonzero(pre.gm_mask.any(axis=2))
    assert abs(rows.mean() - 100) < 25 and abs(cols.mean() - 100) < 25
    # GM area is preserved by the resampling (mm^2 per labelled slice, within 10 %)
    truth = nib.load(scan.gm_mask)
    area_in = np.asarray(truth.dataobj).sum(axis=(0, 1)) * np.prod(nib.affines.voxel_sizes(truth.affine)[:2])
    area_out = pre.gm_mask.sum(axis=(0, 1)) * 0.25 * 0.25
    labelled = area_in > 2.0  # slices with real GM (one slice has a single stray voxel)
    np.testing.assert_allclose(area_out[labelled], area_in[labelled], rtol=0.1)
    paths = save_preprocessed(pre, tmp_path)
    image, mask, affine = load_preprocessed(paths["image"])
    np.testing.assert_array_equal(image, pre.image)
    np.testing.assert_array_equal(mask, pre.gm_mask)
    np.testing.assert_allclose(affine, pre.affine, atol=1e-5)
    assert nib.aff2axcodes(affine) == ("L", "A", "S")
    assert qc_montage(pre).axes


def test_mask_centring_for_training_scans_only(index):
    scan = index["sub-9418_run-1_T2starw"]
    assert preprocess_scan(scan, centre_on="mask").centring == "cord mask"
    pre = preprocess_scan(Scan(scan.scan_id, scan.person_id, scan.image, gm_mask=scan.gm_mask), centre_on="mask")
    assert pre.centring == "gm mask"
    # the model's window and the mask's agree on a clean adult scan (within 2.5 mm in-plane)
    model = preprocess_scan(scan)
    assert model.centring == "model"
    assert np.abs(model.affine[:2, 3] - pre.affine[:2, 3]).max() < 2.5


def test_standardise_is_per_volume_and_pure(rng):
    v = rng.normal(5, 3, size=(10, 10, 4)).astype(np.float32)
    before = v.copy()
    s = standardise(v)
    assert abs(float(s.mean())) < 1e-5 and abs(float(s.std()) - 1) < 1e-5
    np.testing.assert_array_equal(v, before)


def test_split_arrays_round_trip_and_check(index, tmp_path):
    import pandas as pd

    rows = []
    for sid in ("sub-9418_run-1_T2starw", "sub-9709Ses1_run-1_T2starw"):
        pre = preprocess_scan(index[sid])
        paths = save_preprocessed(pre, tmp_path)
        rows.append({"scan_id": sid, "person_id": pre.person_id, "image": paths["image"].name})
    frame = pd.DataFrame(rows)
    arrays = build_split_arrays(frame, list(frame["scan_id"]), root=tmp_path, keep_empty_slices=False)
    assert arrays["images"].dtype == np.float32 and arrays["masks"].dtype == np.uint8
    assert arrays["masks"].any(axis=(1, 2)).all()
    assert set(arrays["person_id"].tolist()) == {"sub-9418", "sub-9709"}
    path = save_npz(arrays, tmp_path / "train.npz")
    assert verify_split(path, frame, root=tmp_path) == len(arrays["images"])
    loaded = load_split(path)
    loaded["images"][0, 0, 0] += 1
    save_npz(loaded, tmp_path / "bad.npz")
    with pytest.raises(PedgmError, match="image of sub-9418_run-1_T2starw slice 0 differs"):
        verify_split(tmp_path / "bad.npz", frame, root=tmp_path)
    with pytest.raises(PedgmError, match="not preprocessed: nope"):
        build_split_arrays(frame, ["nope"], root=tmp_path)
