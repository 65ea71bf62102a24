"""Notebooks 01 and 02 headless with papermill, on the BIDS sample and on a folder-layout copy."""

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import run_notebook

from pedgm_kit.data_creation import load_split

FOLDER_IDS = {  # gm-challenge subject -> original-study folder name
    "sub-9418": "9418", "sub-9584": "9584", "sub-9604": "9604", "sub-9669": "9669",
    "sub-9709Ses1": "9709", "sub-9709Ses2": "9709_second",
    "sub-10062Ses1": "10062", "sub-10062Ses2": "10062_second",
}


def _check_data(data_dir, expected_scans):
    manifest = json.loads((data_dir / "manifest.json").read_text())
    persons = {}
    total = 0
    for name in ("train", "val", "test"):
        arrays = load_split(data_dir / "data" / f"{name}.npz")
        assert arrays["images"].shape[1:] == (200, 200) and arrays["images"].dtype == np.float32
        assert set(np.unique(arrays["masks"])) <= {0, 1}
        for person in set(arrays["person_id"].tolist()):
            assert persons.setdefault(person, name) == name, f"{person} in two splits"
        total += len(set(arrays["scan_id"].tolist()))
        assert manifest["counts"][name]["slices"] == len(arrays["images"])
    assert total == expected_scans
    checked = json.loads((data_dir / "data_creation.json").read_text())["checked_slices"]
    assert len(checked) == 1  # one entry per fold; a single split is one fold
    assert checked[0] == {n: manifest["counts"][n]["slices"] for n in checked[0]}
    assert all(len(rec["sha256"]) == 64 for rec in manifest["sources"] + manifest["preprocessed"])
    assert len(manifest["sources"]) == 2 * expected_scans
    return manifest, persons


@pytest.mark.slow
def test_bids_sample(tmp_path):
    run_notebook("01_preprocess.ipynb", tmp_path, output_dir=str(tmp_path / "pre"), max_drafts=1)
    result = json.loads((tmp_path / "pre" / "preprocess.json").read_text())
    assert (result["n_labelled"], result["n_persons"], result["n_preprocessed"]) == (8, 6, 8)
    assert result["n_unlabelled"] == 8 and result["n_drafts"] == 1
    assert len(list((tmp_path / "pre" / "qc").glob("*.png"))) == 8
    draft = next((tmp_path / "pre" / "drafts").glob("*_gmseg-draft.nii.gz"))
    image = pd.read_csv(tmp_path / "pre" / "drafts" / "review.csv")["image"][0]
    assert nib.load(draft).shape == nib.load(image).shape
    run_notebook("02_data_creation.ipynb", tmp_path, preprocessed_dir=str(tmp_path / "pre" / "preprocessed"),
                 output_dir=str(tmp_path / "data"), balance_on="Site")
    _, persons = _check_data(tmp_path / "data", 8)
    assert len(persons) == 6
    assert (tmp_path / "data" / "split_counts.png").stat().st_size > 0


@pytest.mark.slow
def test_folder_layout_with_spreadsheet(tmp_path, gm_challenge):
    data = tmp_path / "study"
    for sub, folder in FOLDER_IDS.items():
        (data / folder).mkdir(parents=True)
        stem = f"{sub}_run-1_T2starw"
        shutil.copy(gm_challenge / sub / "anat" / f"{stem}.nii.gz", data / folder / "mFFE_crop_r.nii.gz")
        shutil.copy(gm_challenge / "derivatives" / "labels" / sub / "anat" / f"{stem}_gmseg-manual.nii.gz",
                    data / folder / "mFFE_crop_r_gmseg.nii.gz")
    (data / "Controls.txt").write_text("9418\n9584\n9604\n9669\n9709\n10062\n")
    (data / "Controls_second.txt").write_text("9709\n10062\n")
    sheet = pd.DataFrame({"Training": [9709, 9709, 9418, 9584], "Val": [10062, 10062, None, None],
                          "Testing": [9604, 9669, None, None]})
    sheet.to_excel(tmp_path / "split.xlsx", sheet_name="DTI_Normal_Level", index=False)
    run_notebook("01_preprocess.ipynb", tmp_path, data_dir=str(data), layout="folders",
                 output_dir=str(tmp_path / "pre"), make_drafts=False)
    run_notebook("02_data_creation.ipynb", tmp_path, preprocessed_dir=str(tmp_path / "pre" / "preprocessed"),
                 output_dir=str(tmp_path / "data"), split_sheet=str(tmp_path / "split.xlsx"),
                 ids_file=str(data / "Controls.txt"), second_ids_file=str(data / "Controls_second.txt"))
    manifest, persons = _check_data(tmp_path / "data", 8)
    assert sorted(manifest["splits"]["train"]) == ["9418", "9584", "9709", "9709_second"]
    assert sorted(manifest["splits"]["val"]) == ["10062", "10062_second"]
    assert persons["9709"] == "train" and persons["10062"] == "val"
    assert manifest["counts"]["train"]["persons"] == 3
    # notebook 05 evaluates the same folder layout on 02's test split (no rescans here: no retest)
    run_notebook("05_evaluate.ipynb", tmp_path, data_dir=str(data), layout="folders", output_dir=str(tmp_path / "ev"),
                 models=["challenge"], split_manifest=str(tmp_path / "data" / "manifest.json"), retest=False, n_boot=50)
    results = json.loads((tmp_path / "ev" / "evaluation" / "results.json").read_text())
    assert sorted(results["scans"]) == ["9604", "9669"]
    assert all(value >= 0.87 for value in results["dice_per_scan"]["challenge"].values())


@pytest.mark.slow
def test_bad_mask_stops_before_writing(tmp_path, gm_challenge):
    data = tmp_path / "study"
    (data / "9418").mkdir(parents=True)
    src = gm_challenge / "sub-9418" / "anat" / "sub-9418_run-1_T2starw.nii.gz"
    shutil.copy(src, data / "9418" / "mFFE_crop_r.nii.gz")
    img = nib.load(src)
    nib.save(nib.Nifti1Image(np.zeros(img.shape[:2] + (3,), np.uint8), img.affine), data / "9418" / "mFFE_crop_r_gmseg.nii.gz")
    (data / "Controls.txt").write_text("9418\n")
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match="9418"):
        run_notebook("01_preprocess.ipynb", tmp_path, data_dir=str(data), layout="folders",
                     output_dir=str(tmp_path / "pre"), make_drafts=False)
    assert not (tmp_path / "pre").exists()
