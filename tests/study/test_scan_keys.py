"""Scans of a cohort are keyed uniquely (regression: the QC page and the morphometrics keyed scans by file
stem, so the original study's layout ``<person>/mFFE_crop_r.nii.gz`` made every scan one row / one file)."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pedgm_kit.metrics import area_per_slice_mm2
from pedgm_kit.morphometrics import cohort_morphometrics, scan_keys
from pedgm_kit.qc import qc_rows, write_qc_page

SUBJECTS = ("sub-9418", "sub-9604")


def test_keys_are_stems_unless_they_collide():
    assert scan_keys(["a/x.nii.gz", "b/y.nii"]) == ["x", "y"]
    assert scan_keys(["/d/p1/mFFE_crop_r.nii.gz", "/d/p2/mFFE_crop_r.nii.gz", "/d/p3/other.nii.gz"]) == [
        "p1_mFFE_crop_r", "p2_mFFE_crop_r", "other"]
    assert scan_keys(["s1/t/m.nii", "s2/t/m.nii"]) == ["s1_t_m", "s2_t_m"]
    assert scan_keys(["m.nii", "m.nii"]) == ["m", "m-2"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", "p1", "mFFE"]), min_size=0, max_size=3)
                .map(lambda parts: "/".join([*parts, "mFFE_crop_r.nii.gz"])), min_size=1, max_size=8))
def test_keys_are_unique_for_any_cohort(files):
    keys = scan_keys(files)
    assert len(keys) == len(files) and len(set(keys)) == len(keys)
    assert all(k.endswith("mFFE_crop_r") or "mFFE_crop_r-" in k for k in keys)


def test_same_file_name_in_two_folders_gives_two_rows_and_two_files(tmp_path, gm_challenge):
    rows = []
    for sub in SUBJECTS:  # the original study's layout: one folder per person, the same file name in each
        folder = tmp_path / "cohort" / sub
        folder.mkdir(parents=True)
        image, output = folder / "mFFE_crop_r.nii.gz", folder / "mFFE_crop_r_gmseg.nii.gz"
        shutil.copy(gm_challenge / f"{sub}/anat/{sub}_run-1_T2starw.nii.gz", image)
        shutil.copy(gm_challenge / f"derivatives/labels/{sub}/anat/{sub}_run-1_T2starw_gmseg-manual.nii.gz", output)
        rows.append({"file": str(image), "output": str(output), "status": "skipped", "error": ""})
    summary = pd.DataFrame(rows)
    long = cohort_morphometrics(summary, per_scan_dir=tmp_path / "morphometrics")
    assert sorted(p.name for p in (tmp_path / "morphometrics").iterdir()) == [
        f"{sub}_mFFE_crop_r_morphometrics.csv" for sub in SUBJECTS]
    qc = qc_rows(summary, morphometrics=long)
    assert list(qc["scan"]) == [f"{sub}_mFFE_crop_r" for sub in SUBJECTS]
    for sub, area in zip(SUBJECTS, qc["gm_area_mm2"]):  # each row its own scan's area, not the other's
        mask = nib.load(tmp_path / "cohort" / sub / "mFFE_crop_r_gmseg.nii.gz")
        per_slice = area_per_slice_mm2(np.asanyarray(mask.dataobj) > 0, mask.affine)
        assert area == pytest.approx(per_slice[per_slice > 0].mean())
    assert qc["gm_area_mm2"].nunique() == 2
    page = write_qc_page(summary, tmp_path / "qc", morphometrics=long)
    assert sorted(p.name for p in (page.parent / "scans").iterdir()) == [f"{sub}_mFFE_crop_r.png" for sub in SUBJECTS]
