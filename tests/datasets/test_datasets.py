"""Tests of pedgm_kit.datasets: BIDS and folder-layout discovery, reports and fatal checks."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import require_shared

from pedgm_kit.datasets import (
    DatasetIndex,
    DatasetWarning,
    Scan,
    discover_bids,
    discover_folders,
    mask_array,
    read_id_list,
    validate_scan,
)
from pedgm_kit.exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    InputFileError,
    PedgmError,
)

# gm_challenge (the real BIDS sample, fetched through the registry) comes from conftest.py
REPO = Path(__file__).resolve().parents[2]
SEED_REFERENCE = REPO.parent / "shared" / "seed-reference"

ABSENT_PARTICIPANTS = {"sub-9605", "sub-9611Ses1", "sub-9611Ses2", "sub-9611Ses3", "sub-20210728"}


# ------------------------------------------------------------------------------------------
# helpers and fixtures
# ------------------------------------------------------------------------------------------


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _bids_scan(
    root: Path,
    subject: str = "sub-01",
    *,
    image: np.ndarray | None = None,
    gm: np.ndarray | None = None,
    cord: np.ndarray | None = None,
    image_affine: np.ndarray | None = None,
    mask_affine: np.ndarray | None = None,
    run: int = 1,
) -> Path:
    """Write one tiny BIDS scan (and the masks given) under ``root``; return the image path."""
    rng = np.random.default_rng(0)
    stem = f"{subject}_run-{run}_T2starw"
    if image is None:
        image = rng.normal(100, 10, (8, 8, 3)).astype(np.float32)
    img_path = _save(root / subject / "anat" / f"{stem}.nii.gz", image, image_affine)
    labels = root / "derivatives" / "labels" / subject / "anat"
    affine = image_affine if mask_affine is None else mask_affine
    if gm is not None:
        _save(labels / f"{stem}_gmseg-manual.nii.gz", gm, affine)
    if cord is not None:
        _save(labels / f"{stem}_seg-manual.nii.gz", cord, affine)
    return img_path


def _binary(shape=(8, 8, 3), dtype=np.uint8) -> np.ndarray:
    mask = np.zeros(shape, dtype=dtype)
    mask[2:5, 2:5, :] = 1
    return mask


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def gm_index(gm_challenge) -> tuple[DatasetIndex, list[warnings.WarningMessage]]:
    """The real gm-challenge data, discovered and validated once for the module."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = discover_bids(gm_challenge)
    return index, list(caught)


@pytest.fixture()
def folder_copy(tmp_path, gm_challenge) -> Path:
    """The gm-challenge scans re-arranged into the original study's folder layout."""
    root = tmp_path / "folders"

    def link(folder: str, subject: str, *, with_mask: bool = True) -> None:
        stem = f"{subject}_run-1_T2starw"
        (root / folder).mkdir(parents=True)
        (root / folder / "mFFE_crop_r.nii.gz").symlink_to(
            gm_challenge / subject / "anat" / f"{stem}.nii.gz")
        if with_mask:
            (root / folder / "mFFE_crop_r_gmseg.nii.gz").symlink_to(
                gm_challenge / "derivatives" / "labels" / subject / "anat"
                / f"{stem}_gmseg-manual.nii.gz")

    link("9418", "sub-9418")
    link("9584", "sub-9584")
    link("9709", "sub-9709Ses1")
    link("9709_second", "sub-9709Ses2")
    link("10062", "sub-10062Ses1")
    link("10062_second", "sub-10062Ses2")
    link("9604_second", "sub-9604")  # a person with only a second scan
    link("9669", "sub-9669", with_mask=False)  # an image still without a mask
    (root / "Controls.txt").write_text("9418\n9584\n9709\n10062\n9669\n9999\n")
    (root / "Controls_second.txt").write_text("9709\n10062\n9604\n")
    return root


# ------------------------------------------------------------------------------------------
# real data: gm-challenge BIDS
# ------------------------------------------------------------------------------------------


def test_bids_real_finds_labelled_scans_and_persons(gm_index):
    index, _ = gm_index
    assert len(index) == 8
    assert len(index.persons()) == 6
    assert index.persons()["sub-9709"] == [
        "sub-9709Ses1_run-1_T2starw", "sub-9709Ses2_run-1_T2starw"]
    assert index.persons()["sub-10062"] == [
        "sub-10062Ses1_run-1_T2starw", "sub-10062Ses2_run-1_T2starw"]
    assert all(scan.gm_mask is not None and scan.cord_mask is not None for scan in index)
    assert index.layout == "bids"


def test_bids_real_run2_images_are_unlabelled(gm_index):
    index, _ = gm_index
    assert len(index.unlabelled) == 8
    assert all("_run-2_" in s.scan_id and s.gm_mask is None for s in index.unlabelled)
    assert all(s.metadata["run"] == 2 for s in index.unlabelled)
    assert not set(s.scan_id for s in index.unlabelled) & set(index.scan_ids())
    assert index.person_of()["sub-9709Ses2_run-2_T2starw"] == "sub-9709"


def test_bids_real_absent_participants_reported(gm_index):
    index, caught = gm_index
    assert set(index.missing) == ABSENT_PARTICIPANTS
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert any("sub-9605" in m and "sub-20210728" in m for m in messages)
    assert messages == list(index.warnings)


def test_bids_real_warns_with_pytest_warns(gm_challenge):
    with pytest.warns(DatasetWarning, match=r"8 image\(s\) have no GM mask .*run-2"):
        with pytest.warns(DatasetWarning, match=r"5 subject\(s\) listed .*sub-9605.*sub-20210728"):
            discover_bids(gm_challenge, validate=False)


def test_bids_real_metadata_carried(gm_index):
    index, _ = gm_index
    frame = index.to_frame()
    assert list(frame.columns[:6]) == [
        "scan_id", "person_id", "image", "gm_mask", "cord_mask", "labelled"]
    assert "Site" in frame.columns
    site = dict(zip(frame["scan_id"], frame["Site"]))
    assert site["sub-9418_run-1_T2starw"] == "UCL"
    assert site["sub-9709Ses2_run-1_T2starw"] == "Milan"
    assert index["sub-9709Ses1_run-1_T2starw"].metadata["Field Strength [T]"] == 1.5
    assert index["sub-9604_run-1_T2starw"].metadata["age"] is None  # "n/a" in participants.tsv
    assert frame["Site"].nunique() == 6
    assert len(index.to_frame(include_unlabelled=True)) == 16


def test_bids_real_float64_masks_pass_and_load_binary(gm_index):
    index, _ = gm_index
    scan = index["sub-9418_run-1_T2starw"]
    assert nib.load(scan.gm_mask).get_data_dtype() == np.float64
    gm = mask_array(scan)
    assert gm.dtype == np.uint8 and set(np.unique(gm)) == {0, 1}
    assert mask_array(scan, which="cord").sum() > gm.sum()


def test_bids_real_sub9604_needs_the_default_affine_tolerance(gm_challenge):
    # sub-9604's GM mask affine differs from its image's by 2.2e-4 (sform vs qform rounding)
    with pytest.warns(DatasetWarning):
        with pytest.raises(GridMismatchError, match=r"sub-9604_run-1_T2starw: .*gmseg-manual\.nii\.gz: GM mask affine differs .*0\.000219 mm"):
            discover_bids(gm_challenge, affine_atol=1e-4)


def test_bids_all_runs_and_person_rule(gm_challenge):
    with pytest.warns(DatasetWarning):
        index = discover_bids(
            gm_challenge, labelled_runs_only=False, person_strip_regex=None, validate=False)
    assert len(index) == 16 and len(index.unlabelled) == 8
    assert len(index.persons()) == 8  # no Ses stripping: sessions are separate persons
    assert index.to_frame()["labelled"].sum() == 8


# ------------------------------------------------------------------------------------------
# folder layout
# ------------------------------------------------------------------------------------------


def test_folders_from_id_files(folder_copy):
    with pytest.warns(DatasetWarning, match=r"have no GM mask 'mFFE_crop_r_gmseg.nii.gz': 9669"):
        with pytest.warns(DatasetWarning, match=r"1 listed ID\(s\) have no .* skipped: 9999"):
            index = discover_folders(folder_copy)
    assert index.scan_ids() == [
        "9418", "9584", "9709", "10062", "9709_second", "10062_second", "9604_second"]
    person_of = index.person_of()
    assert person_of["9709_second"] == "9709"
    assert person_of["9604_second"] == "9604"
    assert list(index.persons()) == ["9418", "9584", "9709", "10062", "9604"]
    assert [s.scan_id for s in index.unlabelled] == ["9669"]
    assert index.missing == ("9999",)
    assert index["9709_second"].metadata == {"scan_number": 2}
    assert index.layout == "folders"


def test_folders_without_id_files(folder_copy):
    with pytest.warns(DatasetWarning, match="9669"):
        index = discover_folders(folder_copy, ids_file=None)
    assert sorted(index.scan_ids()) == sorted(
        ["10062", "10062_second", "9418", "9584", "9604_second", "9709", "9709_second"])
    assert index.missing == ()
    assert index.person_of()["10062_second"] == "10062"


def test_folders_second_file_optional_unless_named(folder_copy):
    (folder_copy / "Controls_second.txt").unlink()
    with pytest.warns(DatasetWarning):
        index = discover_folders(folder_copy, validate=False)
    assert not any(s.endswith("_second") for s in index.scan_ids())
    with pytest.raises(InputFileError, match="second.txt does not exist"):
        discover_folders(folder_copy, second_ids_file="second.txt", validate=False)


def test_folders_missing_ids_file(tmp_path):
    with pytest.raises(InputFileError, match=r"Controls\.txt does not exist"):
        discover_folders(tmp_path)


def test_read_id_list_real_controls():
    path = require_shared(SEED_REFERENCE / "Controls.txt", "seed reference ID list")
    ids = read_id_list(path)
    assert len(ids) == 63 and ids[:3] == ["21", "37", "52"]
    assert read_id_list(SEED_REFERENCE / "Controls_second.txt") == [
        "92", "162", "166", "172", "173", "179"]


def test_read_id_list_format(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# first scans\n 21 \n\n37.0\r\nabc\n")
    assert read_id_list(path) == ["21", "37", "abc"]


# ------------------------------------------------------------------------------------------
# fatal cases
# ------------------------------------------------------------------------------------------


def test_mask_shape_mismatch_is_fatal(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    out.mkdir()
    _bids_scan(data, gm=_binary((8, 8, 4)))
    before = _tree(tmp_path)
    with pytest.raises(
        GridMismatchError,
        match=r"sub-01_run-1_T2starw: .*gmseg-manual\.nii\.gz: GM mask shape \(8, 8, 4\) "
        r"differs from image .*_T2starw\.nii\.gz shape \(8, 8, 3\)",
    ):
        discover_bids(data)
    assert _tree(tmp_path) == before
    assert list(out.iterdir()) == []


def test_mask_affine_mismatch_is_fatal(tmp_path):
    shifted = np.eye(4)
    shifted[0, 3] = 1.0  # 1 mm
    _bids_scan(tmp_path, gm=_binary(), mask_affine=shifted)
    with pytest.raises(
        GridMismatchError, match=r"sub-01_run-1_T2starw: .*: GM mask affine differs .* by up to 1 mm"
    ):
        discover_bids(tmp_path)


def test_cord_mask_grid_is_checked_too(tmp_path):
    _bids_scan(tmp_path, gm=_binary(), cord=_binary((8, 9, 3)))
    with pytest.raises(GridMismatchError, match=r"sub-01_run-1_T2starw: .*: cord mask shape \(8, 9, 3\)"):
        discover_bids(tmp_path)


def test_non_binary_mask_is_fatal_unless_binarize(tmp_path):
    gm = _binary(dtype=np.float32) * 0.8
    gm[0, 0, 0] = 2.0
    _bids_scan(tmp_path, subject="sub-07", gm=gm)
    with pytest.raises(
        ImageContentError, match=r"sub-07_run-1_T2starw: .*gmseg-manual\.nii\.gz: GM mask must hold only 0 and 1.*0\.8, 2.*binarize=True"
    ):
        discover_bids(tmp_path)
    index = discover_bids(tmp_path, binarize=True)
    scan = index["sub-07_run-1_T2starw"]
    assert scan.binarize_masks
    loaded = mask_array(scan)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, (gm >= 0.5).astype(np.uint8))
    with pytest.raises(ImageContentError, match="sub-07"):
        mask_array(dataclasses.replace(scan, binarize_masks=False))


def test_nan_mask_is_fatal(tmp_path):
    gm = _binary(dtype=np.float32)
    gm[1, 1, 1] = np.nan
    _bids_scan(tmp_path, gm=gm)
    with pytest.raises(ImageContentError, match=r"sub-01_run-1_T2starw: .*nan"):
        discover_bids(tmp_path)


def test_duplicate_id_in_id_file_is_fatal(tmp_path):
    (tmp_path / "Controls.txt").write_text("1\n2\n1\n")
    with pytest.raises(PedgmError, match=r"duplicate ID '1' in .*Controls\.txt: lines 1 and 3"):
        discover_folders(tmp_path)


def test_duplicate_scan_id_across_id_files_is_fatal(tmp_path):
    (tmp_path / "Controls.txt").write_text("4\n5_second\n")
    (tmp_path / "Controls_second.txt").write_text("5\n")
    with pytest.raises(
        PedgmError,
        match=r"duplicate scan id '5_second': listed at Controls\.txt line 2 and at "
        r"Controls_second\.txt line 1",
    ):
        discover_folders(tmp_path)


def test_duplicate_scan_id_in_bids_is_fatal(tmp_path):
    img = _bids_scan(tmp_path, gm=_binary())
    _save(img.with_name("sub-01_run-1_T2starw.nii"), np.zeros((8, 8, 3), np.float32))
    with pytest.raises(PedgmError, match=r"duplicate scan id 'sub-01_run-1_T2starw'"):
        discover_bids(tmp_path, image_pattern="*_T2starw.nii*", validate=False)


def test_duplicate_scan_in_hand_built_index_is_fatal(tmp_path):
    a = Scan("s1", "p1", tmp_path / "a.nii.gz")
    b = Scan("s1", "p2", tmp_path / "b.nii.gz")
    with pytest.raises(PedgmError, match=r"duplicate scan id 's1': .*a\.nii\.gz and .*b\.nii\.gz"):
        DatasetIndex(scans=(a, b))


def test_image_must_be_3d(tmp_path):
    _bids_scan(tmp_path, image=np.zeros((8, 8, 3, 2), np.float32), gm=_binary())
    with pytest.raises(DimensionError, match=r"sub-01_run-1_T2starw: image .* 3-D.*\(8, 8, 3, 2\)"):
        discover_bids(tmp_path)


def test_single_volume_4d_image_counts_as_3d(tmp_path):
    _bids_scan(tmp_path, image=np.ones((8, 8, 3, 1), np.float32), gm=_binary())
    assert len(discover_bids(tmp_path)) == 1


def test_unreadable_image(tmp_path):
    path = tmp_path / "sub-02" / "anat" / "sub-02_run-1_T2starw.nii.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a nifti file")
    with pytest.warns(DatasetWarning, match="no GM mask"):
        with pytest.raises(InputFileError, match=r"sub-02_run-1_T2starw: Cannot read '.*sub-02_run-1_T2starw\.nii\.gz' as a NIfTI image"):
            discover_bids(tmp_path, labelled_runs_only=False)


def test_root_must_exist(tmp_path):
    with pytest.raises(InputFileError, match=r"nowhere is not a folder"):
        discover_bids(tmp_path / "nowhere")


def test_validation_can_be_deferred(tmp_path):
    _bids_scan(tmp_path, gm=_binary((8, 8, 4)))
    index = discover_bids(tmp_path, validate=False)
    with pytest.raises(GridMismatchError, match="sub-01"):
        validate_scan(index["sub-01_run-1_T2starw"])


# ------------------------------------------------------------------------------------------
# records
# ------------------------------------------------------------------------------------------


def test_bids_sessions_and_orphan_masks(tmp_path):
    _bids_scan(tmp_path, gm=_binary())
    # a ses- folder: same person, session entity in metadata
    ses = tmp_path / "sub-01" / "ses-02" / "anat"
    _save(ses / "sub-01_ses-02_run-1_T2starw.nii.gz", np.ones((8, 8, 3), np.float32))
    _save(tmp_path / "derivatives" / "labels" / "sub-01" / "ses-02" / "anat"
          / "sub-01_ses-02_run-1_T2starw_gmseg-manual.nii.gz", _binary())
    # a mask whose image is absent
    _save(tmp_path / "derivatives" / "labels" / "sub-03" / "anat"
          / "sub-03_run-1_T2starw_gmseg-manual.nii.gz", _binary())
    with pytest.warns(DatasetWarning, match=r"1 GM mask\(s\) .* no image.*sub-03"):
        index = discover_bids(tmp_path)
    assert index.scan_ids() == ["sub-01_run-1_T2starw", "sub-01_ses-02_run-1_T2starw"]
    assert set(index.person_of().values()) == {"sub-01"}
    assert index["sub-01_ses-02_run-1_T2starw"].metadata["session"] == "02"


def test_scan_is_frozen_and_keeps_a_copy_of_metadata(tmp_path):
    meta = {"Site": "A"}
    scan = Scan("s1", "p1", str(tmp_path / "a.nii.gz"), metadata=meta)
    meta["Site"] = "B"
    assert scan.metadata == {"Site": "A"}
    assert isinstance(scan.image, Path) and not scan.labelled
    with pytest.raises(dataclasses.FrozenInstanceError):
        scan.scan_id = "s2"
    with pytest.raises(PedgmError, match="non-empty"):
        Scan("", "p1", tmp_path / "a.nii.gz")


def test_subset_and_lookup(tmp_path):
    _bids_scan(tmp_path, "sub-01", gm=_binary())
    _bids_scan(tmp_path, "sub-02", gm=_binary())
    index = discover_bids(tmp_path)
    sub = index.subset(["sub-02_run-1_T2starw"])
    assert sub.scan_ids() == ["sub-02_run-1_T2starw"] and sub.root == index.root
    with pytest.raises(PedgmError, match=r"scan 'nope' is not a labelled scan"):
        index.subset(["nope"])
    with pytest.raises(KeyError, match="nope"):
        index["nope"]
    with pytest.raises(PedgmError, match=r"which must be 'gm' or 'cord'"):
        mask_array(index["sub-01_run-1_T2starw"], which="wm")
    with pytest.raises(PedgmError, match=r"sub-01_run-1_T2starw: scan has no cord mask"):
        mask_array(index["sub-01_run-1_T2starw"], which="cord")
