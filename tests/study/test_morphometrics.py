"""GM morphometrics: areas from the affine (sheared, oblique, LPS), per level, the long table, the cohort files."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pedgm_kit.exceptions import GridMismatchError, ImageContentError, ParameterError
from pedgm_kit.metrics import area_per_slice_mm2, pixel_area_mm2
from pedgm_kit.morphometrics import COLUMNS, scan_morphometrics, slice_levels


def _img(data, affine):
    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, float))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    return img


def _rot_x(deg):
    t = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def _gm(shape=(10, 8, 4)):
    gm = np.zeros(shape, np.uint8)
    gm[2:5, 3:6, 0] = 1  # 9 voxels
    gm[2:4, 3:5, 1] = 1  # 4 voxels
    gm[4, 4, 3] = 1  # 1 voxel; slice 2 empty
    return gm


def test_area_on_a_sheared_oblique_grid_is_the_cross_product():
    # in-plane columns a (x) and b (sheared: 0.3 mm of x per row), 5 mm slices, the whole grid tilted 20 degrees
    a, b, c = np.array([0.5, 0, 0]), np.array([0.3, 0.5, 0]), np.array([0, 0, 5.0])
    rot = _rot_x(20)
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.column_stack([a, b, c])
    hand = 0.5 * 0.5  # |a x b| = |a| |b| sin(angle) = 0.5 * sqrt(0.34) * (0.5 / sqrt(0.34)), rotation-invariant
    assert pixel_area_mm2(affine) == pytest.approx(hand)
    assert np.prod(nib.affines.voxel_sizes(affine)[:2]) == pytest.approx(0.5 * np.sqrt(0.34))  # the old way: 17% off
    gm = _gm()
    expected = np.array([9, 4, 0, 1]) * hand
    assert area_per_slice_mm2(gm, affine) == pytest.approx(expected)
    table = scan_morphometrics(_img(gm, affine), scan="s")
    rows = table[(table["metric"] == "gm_area_mm2") & table["slice"].notna()]
    assert rows["value"].to_numpy() == pytest.approx(expected)
    whole = table[table["slice"].isna() & table["level"].isna()]
    assert whole["value"].item() == pytest.approx(np.mean([9, 4, 1]) * hand)  # mean over slices with GM


def test_lps_and_permuted_storage_give_the_same_areas():
    las = np.diag([-0.4, 0.6, 3.0, 1.0])  # x flipped: L A S
    gm = _gm()
    ref = area_per_slice_mm2(gm, las)
    assert ref == pytest.approx(np.array([9, 4, 0, 1]) * 0.24)
    # LPS: the A axis stored reversed
    lps = las.copy()
    lps[:3, 1] *= -1
    lps[:3, 3] = las[:3, :3] @ [0, gm.shape[1] - 1, 0]
    assert area_per_slice_mm2(gm[:, ::-1, :], lps) == pytest.approx(ref)
    # slices stored first (S, L, A order): the slice axis comes from the affine, not from the array order
    perm = np.eye(4)
    perm[:3, :3] = las[:3, :3][:, [2, 0, 1]]
    stored = np.transpose(gm, (2, 0, 1))
    assert area_per_slice_mm2(stored, perm) == pytest.approx(ref)
    t = scan_morphometrics(_img(stored, perm), scan="p")
    assert t.loc[t["slice"].notna(), "value"].to_numpy() == pytest.approx(ref)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-2, 2, allow_nan=False), min_size=9, max_size=9), st.integers(0, 2**32 - 1))
def test_area_times_slice_distance_is_the_voxel_volume(entries, seed):
    """sum over slices of area x (distance between slice planes) = voxel count x |det|, on any grid."""
    m = np.array(entries).reshape(3, 3) + np.diag([1.5, 1.5, 4.0])
    if abs(np.linalg.det(m)) < 0.05:
        return
    affine = np.eye(4)
    affine[:3, :3] = m
    rng = np.random.default_rng(seed)
    gm = rng.random((5, 6, 7)) > 0.6
    from pedgm_kit.geometry import slice_axis

    axis = slice_axis(affine)
    cols = [m[:, k] for k in range(3) if k != axis]
    normal = np.cross(*cols)
    distance = abs(m[:, axis] @ normal) / np.linalg.norm(normal)
    total = area_per_slice_mm2(gm, affine).sum() * distance
    assert total == pytest.approx(np.count_nonzero(gm) * abs(np.linalg.det(m)), rel=1e-9)


def test_cord_wm_and_ratio_per_level_with_a_vertebral_label_image():
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    gm = _gm((10, 8, 6))
    cord = np.zeros_like(gm)
    cord[1:7, 2:7, :5] = 1  # 30 voxels per slice on slices 0-4
    labels = np.zeros((10, 8, 6), np.int16)
    labels[1:7, 2:7, 0:2] = 3  # C3 on slices 0-1
    labels[1:7, 2:7, 2:5] = 4  # C4 on slices 2-4
    labels[1, 2, 2] = 3  # a stray voxel does not move slice 2 out of C4 (most frequent label)
    t = scan_morphometrics(_img(gm, affine), cord=_img(cord, affine), levels=_img(labels, affine), scan="x",
                           person="p1")
    assert list(t.columns) == list(COLUMNS)
    px = 0.25
    gm_area = np.array([9, 4, 0, 1, 0, 0]) * px
    cord_area = np.array([30, 30, 30, 30, 30, 0]) * px
    per_slice = t[t["slice"].notna()].pivot(index="slice", columns="metric", values="value")
    assert per_slice["gm_area_mm2"].to_numpy() == pytest.approx(gm_area)
    assert per_slice["cord_area_mm2"].to_numpy() == pytest.approx(cord_area)
    assert per_slice["wm_area_mm2"].to_numpy() == pytest.approx(cord_area - gm_area)
    ratio = per_slice["gm_cord_ratio"].to_numpy()
    assert ratio[:5] == pytest.approx(gm_area[:5] / cord_area[:5]) and np.isnan(ratio[5])
    assert t[t["slice"].notna()].drop_duplicates("slice")["level"].tolist()[:5] == [3, 3, 4, 4, 4]
    level = t[t["slice"].isna() & t["level"].notna()].pivot(index="level", columns="metric", values="value")
    assert level.loc[3, "gm_area_mm2"] == pytest.approx((9 + 4) / 2 * px)  # mean over C3's two slices
    assert level.loc[4, "gm_area_mm2"] == pytest.approx((0 + 1 + 0) / 3 * px)
    assert level.loc[4, "wm_area_mm2"] == pytest.approx((30 + 29 + 30) / 3 * px)
    scan = t[t["slice"].isna() & t["level"].isna()].set_index("metric")["value"]
    assert scan["cord_area_mm2"] == pytest.approx(30 * px)  # mean over the slices the cord covers (0-4)
    assert scan["gm_area_mm2"] == pytest.approx(14 / 5 * px)
    assert set(t["person"]) == {"p1"}


def test_disc_labels_fill_the_levels_between_discs():
    labels = np.zeros((6, 6, 10), np.int16)
    labels[3, 3, 8] = 3  # disc C2/C3 (top of C3) on slice 8 (superior)
    labels[3, 3, 5] = 4  # C3/C4
    labels[3, 3, 1] = 5  # C4/C5
    img = _img(labels, np.diag([0.5, 0.5, 2.0, 1.0]))
    expected = [0, 0, 4, 4, 4, 4, 3, 3, 3, 0]  # disc n down to (not including) disc n+1 is level n
    assert slice_levels(img).tolist() == expected
    assert slice_levels(img, kind="vertebral").tolist() == [0, 5, 0, 0, 0, 4, 0, 0, 3, 0]


def test_errors_name_the_file_and_the_problem(tmp_path):
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    gm = _img(_gm(), affine)
    other = _img(_gm(), np.diag([0.5, 0.5, 3.0, 1.0]))
    nib.save(other, tmp_path / "cord.nii.gz")
    with pytest.raises(GridMismatchError, match="cord.nii.gz"):
        scan_morphometrics(gm, cord=tmp_path / "cord.nii.gz")
    bad = _img(np.full(_gm().shape, 2.5, np.float32), affine)
    with pytest.raises(ImageContentError, match="non-negative integers"):
        scan_morphometrics(gm, levels=bad)
    with pytest.raises(ImageContentError, match="0 and 1"):
        scan_morphometrics(_img(_gm() * 3, affine))
    with pytest.raises(ParameterError, match="degenerate"):
        pixel_area_mm2(np.diag([0.5, 0.0, 2.0, 1.0]), axis=2)
    with pytest.raises(ParameterError, match="4x4"):
        pixel_area_mm2(np.eye(3))
    with pytest.raises(ParameterError, match="kind"):
        slice_levels(gm, kind="ribs")


def test_cohort_writes_per_scan_and_long_tables_and_bids_tsv(tmp_path, gm_challenge, capsys):
    """`pedgm segment --bids` over masks already there (skipped): morphometrics from the BIDS cord masks."""
    from pedgm_kit.cli import main

    root = tmp_path / "bids"
    derivative = root / "derivatives" / "pedgm_kit"
    subjects = ("sub-9418", "sub-9604")
    for sub in subjects:
        shutil.copytree(gm_challenge / sub, root / sub)
        shutil.copytree(gm_challenge / "derivatives/labels" / sub, root / "derivatives/labels" / sub)
        for run in (1, 2):  # earlier outputs: the manual masks of run-1 stand in for both runs
            out = derivative / sub / "anat" / f"{sub}_run-{run}_T2starw_gmseg.nii.gz"
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(gm_challenge / f"derivatives/labels/{sub}/anat/{sub}_run-1_T2starw_gmseg-manual.nii.gz", out)
    shutil.copy(gm_challenge / "dataset_description.json", root)
    assert main(["segment", "--bids", str(root)]) == 0
    assert "0 segmented, 4 skipped" in capsys.readouterr().out
    cohort = pd.read_csv(derivative / "morphometrics.csv")
    assert list(cohort.columns) == list(COLUMNS)
    assert set(cohort["person"]) == set(subjects)
    for sub in subjects:
        tsv = derivative / sub / "anat" / f"{sub}_run-1_T2starw_gmseg_morphometrics.tsv"
        per_scan = pd.read_csv(tsv, sep="\t", na_values="n/a")
        assert set(per_scan["metric"]) == {"gm_area_mm2", "cord_area_mm2", "wm_area_mm2", "gm_cord_ratio"}
        manual = gm_challenge / f"derivatives/labels/{sub}/anat/{sub}_run-1_T2starw_gmseg-manual.nii.gz"
        expected = area_per_slice_mm2(np.asanyarray(nib.load(manual).dataobj) > 0, nib.load(manual).affine)
        got = per_scan[(per_scan["metric"] == "gm_area_mm2") & per_scan["slice"].notna()]["value"].to_numpy()
        assert got == pytest.approx(expected)
        # run-2 has no cord mask in the sample: GM only
        run2 = pd.read_csv(derivative / sub / "anat" / f"{sub}_run-2_T2starw_gmseg_morphometrics.tsv", sep="\t")
        assert set(run2["metric"]) == {"gm_area_mm2"}
    assert (derivative / "qc" / "index.html").is_file()


def test_match_mask_finds_a_scans_companion_in_a_folder(tmp_path):
    from pedgm_kit.morphometrics import CORD_SUFFIXES, LEVEL_SUFFIXES, match_mask

    (tmp_path / "a_T2starw_seg.nii.gz").touch()
    (tmp_path / "a_T2starw_seg-manual.nii.gz").touch()
    (tmp_path / "b_T2starw_labels.nii").touch()
    assert match_mask("x/a_T2starw.nii.gz", tmp_path, suffixes=CORD_SUFFIXES).name == "a_T2starw_seg-manual.nii.gz"
    assert match_mask("x/b_T2starw.nii.gz", tmp_path, suffixes=LEVEL_SUFFIXES).name == "b_T2starw_labels.nii"
    assert match_mask("x/c_T2starw.nii.gz", tmp_path, suffixes=CORD_SUFFIXES) is None
    assert match_mask("x/c.nii.gz", tmp_path / "file.nii.gz", suffixes=CORD_SUFFIXES) == tmp_path / "file.nii.gz"
    assert match_mask("x/c.nii.gz", None, suffixes=CORD_SUFFIXES) is None


@pytest.mark.slow
def test_single_scan_cli_writes_morphometrics_with_cord_and_levels(tmp_path, gm_challenge, capsys):
    from pedgm_kit.cli import main

    sub = "sub-9418"
    image = tmp_path / f"{sub}_run-1_T2starw.nii.gz"
    shutil.copy(gm_challenge / f"{sub}/anat/{image.name}", image)
    cord = gm_challenge / f"derivatives/labels/{sub}/anat/{sub}_run-1_T2starw_seg-manual.nii.gz"
    cord_img = nib.load(cord)
    labels = np.zeros(cord_img.shape, np.int16)
    cord_data = np.asanyarray(cord_img.dataobj) > 0
    half = cord_img.shape[2] // 2
    labels[..., :half][cord_data[..., :half]] = 4  # the lower half of the slices C4, the upper C3
    labels[..., half:][cord_data[..., half:]] = 3
    nib.save(nib.Nifti1Image(labels, cord_img.affine, cord_img.header), tmp_path / "levels.nii.gz")
    assert main(["segment", str(image), "--cord-mask", str(cord), "--levels", str(tmp_path / "levels.nii.gz")]) == 0
    out = capsys.readouterr().out.split()
    table_path = tmp_path / f"{sub}_run-1_T2starw_gmseg_morphometrics.csv"
    assert out == [str(tmp_path / f"{sub}_run-1_T2starw_gmseg.nii.gz"), str(table_path)]
    table = pd.read_csv(table_path)
    assert set(table["metric"]) == {"gm_area_mm2", "cord_area_mm2", "wm_area_mm2", "gm_cord_ratio"}
    levels = table[table["slice"].isna() & table["level"].notna()]
    assert sorted(levels["level"].unique()) == [3, 4]
    ratio = table[(table["metric"] == "gm_cord_ratio") & table["slice"].isna() & table["level"].isna()]["value"].item()
    assert 0.05 < ratio < 0.4  # GM is a fraction of the cord cross-section
    # the table is an output like the mask: not replaced without --overwrite, refused before any work
    assert main(["segment", str(image), "--morphometrics", "-o", str(tmp_path / "other.nii.gz")]) == 0
    assert main(["segment", str(image), "--morphometrics", "-o", str(tmp_path / "other.nii.gz")]) == 2
    assert "exists" in capsys.readouterr().err


def test_single_scan_companions_are_checked_before_any_output(tmp_path, gm_challenge, capsys):
    from pedgm_kit.cli import main

    image = tmp_path / "s.nii.gz"
    shutil.copy(gm_challenge / "sub-9418/anat/sub-9418_run-1_T2starw.nii.gz", image)
    src = nib.load(image)
    nib.save(_img(np.full(src.shape, 1.5, np.float32), src.affine), tmp_path / "bad_levels.nii.gz")
    nib.save(_img(np.zeros(src.shape[:2] + (3,), np.uint8), src.affine), tmp_path / "small_cord.nii.gz")
    cases = {("--levels", "bad_levels.nii.gz"): "non-negative integers",
             ("--cord-mask", "small_cord.nii.gz"): "small_cord.nii.gz",
             ("--levels", "absent.nii.gz"): "No such file"}
    for (option, name), needle in cases.items():
        before = sorted(p.name for p in tmp_path.iterdir())
        assert main(["segment", str(image), option, str(tmp_path / name), "--morphometrics"]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.lists(st.integers(0, 29), min_size=2, max_size=8, unique=True), st.booleans())
def test_disc_labels_property(first, slices, upward):
    """Discs n, n+1, ... at any slices (ordered along S): level n fills [disc n, disc n+1), nothing else."""
    slices = sorted(slices, reverse=not upward)  # disc order along the array: superior first or last
    labels = np.zeros((4, 4, 30), np.int16)
    for k, z in enumerate(slices):
        labels[1, 2, z] = first + k
    got = slice_levels(_img(labels, np.diag([0.5, 0.5, 2.0, 1.0])))
    expected = np.zeros(30, np.int64)
    for k in range(len(slices) - 1):
        a, b = slices[k], slices[k + 1]
        step = 1 if b > a else -1
        expected[np.arange(a, b, step)] = first + k
    assert got.tolist() == expected.tolist()
