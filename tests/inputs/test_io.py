import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    InputFileError,
    OutputExistsError,
)
from pedgm_kit.geometry import Canonical
from pedgm_kit.io import (
    check_output_path,
    check_same_grid,
    default_output_path,
    load_image,
    save_like,
)


def _save(tmp_path, name, data, affine=None):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return path


def test_load_ok_and_float32(tiny_image):
    img = load_image(tiny_image)
    assert img.get_data_dtype() == np.float32 and img.shape == (24, 20, 4)


def test_load_4d_singleton_is_3d(tmp_path, rng):
    path = _save(tmp_path, "s.nii.gz", rng.normal(size=(5, 6, 3, 1)).astype(np.float32))
    assert load_image(path).shape == (5, 6, 3)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="No such file.*nope.nii.gz"):
        load_image(tmp_path / "nope.nii.gz")


def test_text_file_named_nifti(tmp_path):
    path = tmp_path / "fake.nii.gz"
    path.write_text("this is not an image\n")
    with pytest.raises(InputFileError, match="Cannot read .*fake.nii.gz' as a NIfTI"):
        load_image(path)


@pytest.mark.parametrize("shape,ndim", [((8, 8), 2), ((6, 6, 3, 2), 4)])
def test_wrong_dimensions(tmp_path, rng, shape, ndim):
    path = _save(tmp_path, f"d{ndim}.nii.gz", rng.normal(size=shape).astype(np.float32))
    with pytest.raises(DimensionError, match=f"d{ndim}.nii.gz: expected a 3D image, got {ndim}D"):
        load_image(path)


def test_nan_voxels(tmp_path, rng):
    data = rng.normal(size=(6, 6, 3)).astype(np.float32)
    data[1, 2, 0] = np.nan
    with pytest.raises(ImageContentError, match="nan.nii.gz: image has 1 NaN"):
        load_image(_save(tmp_path, "nan.nii.gz", data))


def test_constant_image(tmp_path):
    path = _save(tmp_path, "flat.nii.gz", np.full((6, 6, 3), 7, np.int16))
    with pytest.raises(ImageContentError, match="flat.nii.gz: image is constant"):
        load_image(path)
    assert load_image(path, allow_constant=True).shape == (6, 6, 3)


def test_grid_mismatch(tiny_image, tmp_path):
    other = nib.Nifti1Image(np.zeros((24, 20, 5), np.float32), tiny_image.affine)
    with pytest.raises(GridMismatchError, match=r"shape \(24, 20, 5\) differs"):
        check_same_grid(tiny_image, other)
    moved = nib.Nifti1Image(np.zeros((24, 20, 4), np.float32), tiny_image.affine @ np.diag([1, 1, 2, 1]))
    with pytest.raises(GridMismatchError, match="affine differs"):
        check_same_grid(tiny_image, moved)


@pytest.mark.parametrize("codes", ["LAS", "LPS", "RAS", "SLA", "PIR"])
def test_working_orientation_round_trip(tiny_image, codes):
    data = tiny_image.get_fdata(dtype=np.float32)
    target = nib.orientations.axcodes2ornt(tuple(codes))
    ornt = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("L", "A", "S")), target)
    img = tiny_image.as_reoriented(ornt)
    assert "".join(nib.aff2axcodes(img.affine)) == codes
    can = Canonical(img)
    assert nib.aff2axcodes(can.affine) == ("L", "A", "S")
    np.testing.assert_array_equal(can.data, data)  # back to the LAS grid the test started from
    np.testing.assert_allclose(can.spacing_mm, [0.5, 0.5, 2.0])
    np.testing.assert_array_equal(can.to_original(can.data), img.get_fdata(dtype=np.float32))


def test_save_like_keeps_grid_and_codes(tmp_path, tiny_image):
    like = nib.Nifti1Image(tiny_image.get_fdata(), tiny_image.affine)
    like.set_qform(tiny_image.affine, code=1)
    like.set_sform(tiny_image.affine, code=0)
    out = save_like(np.ones(like.shape, np.uint8), like, tmp_path / "o.nii.gz")
    back = nib.load(out)
    assert back.shape == like.shape and back.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(back.affine, like.affine)
    assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (1, 0)
    assert [p.name for p in tmp_path.iterdir()] == ["o.nii.gz"]  # no temp file left


def test_output_path_checks(tmp_path):
    assert default_output_path(tmp_path / "a.nii.gz") == tmp_path / "a_gmseg.nii.gz"
    assert default_output_path(tmp_path / "a.nii") == tmp_path / "a_gmseg.nii"
    with pytest.raises(InputFileError, match="Output folder does not exist"):
        check_output_path(tmp_path / "missing" / "o.nii.gz")
    with pytest.raises(InputFileError, match="must end in .nii or .nii.gz"):
        check_output_path(tmp_path / "o.png")
    (tmp_path / "o.nii.gz").write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="exists; pass --overwrite"):
        check_output_path(tmp_path / "o.nii.gz")
    assert check_output_path(tmp_path / "o.nii.gz", overwrite=True)


def test_outputs_get_normal_permissions(tmp_path, tiny_image):
    import os

    umask = os.umask(0o022)
    try:
        out = save_like(np.zeros(tiny_image.shape, np.uint8), tiny_image, tmp_path / "m.nii.gz")
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644
