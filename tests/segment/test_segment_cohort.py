"""Cohort segmentation: several images, folders, a BIDS dataset; one model, bad files reported."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pedgm_kit.cli import main
from pedgm_kit.exceptions import ParameterError
from pedgm_kit.segment import SUMMARY_COLUMNS, Segmenter, find_images, segment_files

pytestmark = pytest.mark.slow

SUBJECTS = ("sub-9418", "sub-9604", "sub-10062Ses1")


@pytest.fixture
def small_bids(tmp_path, gm_challenge):
    """Three subjects of the sample (run-1 and run-2 each) and one corrupt image among them."""
    root = tmp_path / "bids"
    for sub in SUBJECTS:
        shutil.copytree(gm_challenge / sub, root / sub)
    shutil.copy(gm_challenge / "participants.tsv", root / "participants.tsv")
    shutil.copy(gm_challenge / "dataset_description.json", root / "dataset_description.json")
    bad = root / "sub-9999" / "anat" / "sub-9999_run-1_T2starw.nii.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes((gm_challenge / "sub-9418/anat/sub-9418_run-1_T2starw.nii.gz").read_bytes()[:5000])  # truncated
    return root


def test_bids_cohort_writes_a_derivative_and_reports_the_bad_file(small_bids, capsys):
    assert main(["segment", "--bids", str(small_bids)]) == 2
    out, err = capsys.readouterr()
    derivative = small_bids / "derivatives" / "pedgm_kit"
    assert "7 scans: 6 segmented, 0 skipped (output exists), 1 failed" in out
    failed = [line for line in err.strip().splitlines() if line.startswith("pedgm segment: error: ")]
    assert len(failed) == 1 and "sub-9999_run-1_T2starw.nii.gz" in failed[0] and "Traceback" not in err
    for sub in SUBJECTS:
        for run in (1, 2):
            image = small_bids / sub / "anat" / f"{sub}_run-{run}_T2starw.nii.gz"
            mask = derivative / sub / "anat" / f"{sub}_run-{run}_T2starw_gmseg.nii.gz"
            seg, src = nib.load(mask), nib.load(image)
            assert seg.shape == src.shape and np.array_equal(seg.affine, src.affine)
    assert not (derivative / "sub-9999" / "anat" / "sub-9999_run-1_T2starw_gmseg.nii.gz").exists()
    description = json.loads((derivative / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "pedgm_kit"
    table = pd.read_csv(derivative / "gmseg_summary.csv")
    assert list(table.columns) == list(SUMMARY_COLUMNS)
    assert table["status"].value_counts().to_dict() == {"ok": 6, "failed": 1}
    ok = table[table["status"] == "ok"]
    assert (ok["gm_volume_mm3"] > 0).all() and (ok["slices"] > 0).all() and (ok["seconds"] > 0).all()
    assert "Cannot read" in table.loc[table["status"] == "failed", "error"].iloc[0]
    # a second run skips what is done, and --overwrite redoes it
    assert main(["segment", "--bids", str(small_bids)]) == 2
    assert "0 segmented, 6 skipped" in capsys.readouterr().out
    assert main(["segment", "--bids", str(small_bids), "--overwrite"]) == 2
    assert "6 segmented, 0 skipped" in capsys.readouterr().out


def test_folder_and_several_images(tmp_path, gm_challenge, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    images = [gm_challenge / f"{s}/anat/{s}_run-1_T2starw.nii.gz" for s in SUBJECTS[:2]]
    for image in images:
        shutil.copy(image, folder / image.name)
    # earlier outputs and masks in the folder are not taken as images
    shutil.copy(gm_challenge / "derivatives/labels/sub-9418/anat/sub-9418_run-1_T2starw_gmseg-manual.nii.gz", folder)
    assert [p.name for p in find_images([folder])] == sorted(p.name for p in images)
    assert main(["segment", str(folder)]) == 0
    assert "2 scans: 2 segmented" in capsys.readouterr().out
    table = pd.read_csv(folder / "gmseg_summary.csv")
    assert table["status"].tolist() == ["ok", "ok"]
    outdir = tmp_path / "out"
    assert main(["segment", *map(str, images), "--output-dir", str(outdir), "--csv", str(tmp_path / "s.csv")]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == sorted(p.name.replace(".nii.gz", "_gmseg.nii.gz") for p in images)
    for image in images:  # the same model gives the same mask in either mode
        a = np.asanyarray(nib.load(outdir / image.name.replace(".nii.gz", "_gmseg.nii.gz")).dataobj)
        b = np.asanyarray(nib.load(folder / image.name.replace(".nii.gz", "_gmseg.nii.gz")).dataobj)
        assert np.array_equal(a, b)


def test_api_keeps_going_and_counts(tmp_path, gm_challenge):
    good = gm_challenge / "sub-9418/anat/sub-9418_run-1_T2starw.nii.gz"
    missing = tmp_path / "absent.nii.gz"
    table = segment_files([good, missing], output_dir=tmp_path / "o", model=Segmenter("challenge"), progress=False)
    assert table["status"].tolist() == ["ok", "failed"] and table.attrs["failed"] == 1
    assert "No such file" in table.loc[1, "error"]
    labelled = nib.load(gm_challenge / "derivatives/labels/sub-9418/anat/sub-9418_run-1_T2starw_gmseg-manual.nii.gz")
    voxel = np.prod(nib.affines.voxel_sizes(labelled.affine))
    manual_volume = np.count_nonzero(np.asanyarray(labelled.dataobj)) * voxel
    assert table.loc[0, "gm_volume_mm3"] == pytest.approx(manual_volume, rel=0.35)  # same order as the manual GM


def test_argument_errors(tmp_path, gm_challenge, capsys):
    a = gm_challenge / "sub-9418/anat/sub-9418_run-1_T2starw.nii.gz"
    b = gm_challenge / "sub-9604/anat/sub-9604_run-1_T2starw.nii.gz"
    assert main(["segment", str(a), str(b), "-o", str(tmp_path / "x.nii.gz")]) == 2
    assert "use --output-dir for several images" in capsys.readouterr().err
    assert main(["segment", "--bids", str(a), str(b)]) == 2
    assert "--bids takes exactly one BIDS root" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["segment", str(empty), str(a)]) == 2
    assert "holds no NIfTI image" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="cord_mask"):
        segment_files([a], cord_mask=a)
