"""Cross-validation: folds, nested person subsets, the training plan, pooled evaluation, other tools' masks."""

from __future__ import annotations

import shutil
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pedgm_kit.datasets import discover_bids
from pedgm_kit.evaluate import DEFAULT_MASK_PATTERN, FolderPredictor, evaluate_models, per_fold_table
from pedgm_kit.exceptions import InputFileError, PedgmError
from pedgm_kit.runner import training_plan
from pedgm_kit.splits import check_person_grouping, kfold_split, nested_person_subsets


@pytest.fixture(scope="module")
def index(gm_challenge):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover_bids(gm_challenge)


@pytest.mark.parametrize("k", [2, 3, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_person_is_tested_exactly_once(index, k, seed):
    folds = kfold_split(index, k=k, balance_on="Site", seed=seed)
    assert len(folds) == k
    person_of = index.person_of()
    tested = [s for fold in folds for s in fold["test"]]
    assert sorted(tested) == sorted(index.scan_ids())  # every scan (so every person) once
    folds_of_person: dict[str, set[int]] = {}
    for number, fold in enumerate(folds):
        for s in fold["test"]:
            folds_of_person.setdefault(person_of[s], set()).add(number)
    assert sorted(folds_of_person) == sorted(index.persons())
    assert all(len(ks) == 1 for ks in folds_of_person.values())  # every person tested in exactly one fold
    for fold in folds:
        check_person_grouping(fold, person_of)  # no person in two roles within a fold
        roles = {name: {person_of[s] for s in ids} for name, ids in fold.items()}
        assert not roles["train"] & roles["val"] and not roles["train"] & roles["test"] and not roles["val"] & roles["test"]
        assert roles["train"] and roles["val"] and roles["test"]
    assert kfold_split(index, k=k, balance_on="Site", seed=seed) == folds  # seeded


def test_kfold_refuses_impossible_settings(index):
    with pytest.raises(PedgmError, match="cv_folds must be an integer from 2 to the number of persons"):
        kfold_split(index, k=1)
    with pytest.raises(PedgmError, match=r"\(6\)"):
        kfold_split(index, k=7)
    with pytest.raises(PedgmError, match="val_fraction"):
        kfold_split(index, k=3, val_fraction=1.0)


def test_nested_person_subsets():
    persons = [f"p{i}" for i in range(7)]
    subsets = nested_person_subsets(persons, [1, 2, 4, "all"], seed=3)
    assert list(subsets) == [1, 2, 4, 7]
    assert set(subsets[1]) < set(subsets[2]) < set(subsets[4]) < set(subsets[7]) == set(persons)
    assert nested_person_subsets(persons, [2], seed=3)[2] == subsets[2]
    with pytest.raises(PedgmError, match="between 1 and 7"):
        nested_person_subsets(persons, [8])


def test_training_plan_folds_variants_and_subsets():
    params = {"data": {"cv_folds": 3}, "train": {"epochs": 2},
              "pipeline": {"variants": ["pretrained_noaug", "scratch_noaug"], "adapted_variant": True,
                           "train_persons": [1, 2, "all"], "curve_variants": ["pretrained_adapted", "scratch_noaug"]}}
    plan = training_plan(params, data_dir="d", train_dir="t")
    assert len(plan) == 3 * 3 + 3 * 2 * 2
    keys = [(r.fold, r.variant, r.persons) for r in plan]
    assert len(set(keys)) == len(keys)
    first = plan[0]
    assert first.parameters["data_dir"] == "d/fold-1" and first.parameters["output_dir"] == "t/fold-1"
    adapted = next(r for r in plan if r.variant == "pretrained_adapted" and r.persons == 0)
    assert not adapted.parameters["adabn"] and adapted.parameters["loss"] == "dice_bce" and adapted.parameters["pretrained"]
    subset = next(r for r in plan if r.persons == 2 and r.variant == "scratch_noaug" and r.fold == 3)
    assert subset.parameters["output_dir"] == "t/fold-3/persons-2" and subset.parameters["train_persons"] == 2
    assert len(training_plan({"train": {}})) == 5  # no folds: the four variants and the adapted one


@pytest.mark.slow
def test_pooled_evaluation_equals_per_fold_evaluations_concatenated(index, tmp_path, challenge_segmenter):
    """Other tools' masks as models: a folder per fold holding masks written from our own predictions."""
    folds = kfold_split(index, k=3, balance_on="Site", seed=0)
    folders = {}
    for k, fold in enumerate(folds, start=1):
        folder = tmp_path / "other_tool" / f"fold-{k}"
        folder.mkdir(parents=True)
        for scan_id in fold["test"]:
            seg = challenge_segmenter.segment(index[scan_id].image)
            # a different rule on the same probabilities: what another tool would give
            seg.to_filename(folder / DEFAULT_MASK_PATTERN.format(scan_id=scan_id))
        folders[k] = folder
    models = {"challenge": "challenge", "other_tool": str(tmp_path / "other_tool" / "fold-{fold}")}
    pooled = evaluate_models(index, models, folds=[f["test"] for f in folds], output_dir=tmp_path / "pooled",
                             seed=0, progress=False)
    parts = []
    for k, fold in enumerate(folds, start=1):
        one = evaluate_models(index, {"challenge": "challenge", "other_tool": str(folders[k])}, scans=fold["test"],
                              output_dir=tmp_path / f"fold{k}", seed=0, progress=False)
        parts.append(one.assign(fold=k))
    concatenated = pd.concat(parts, ignore_index=True)
    key = ["model", "scan", "level", "metric", "slice"]
    a = pooled.sort_values(key, na_position="first").reset_index(drop=True)
    b = concatenated.sort_values(key, na_position="first").reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + ["person", "fold"]], b[key + ["person", "fold"]], check_dtype=False)
    np.testing.assert_allclose(a["value"].to_numpy(float), b["value"].to_numpy(float), equal_nan=True)
    # the folder model scores like the model whose masks it holds
    scan_dsc = pooled[(pooled["level"] == "scan") & (pooled["metric"] == "DSC")].pivot(
        index="scan", columns="model", values="value")
    np.testing.assert_allclose(scan_dsc["other_tool"], scan_dsc["challenge"])
    table = per_fold_table(pooled)
    assert list(table["model"]) == ["challenge", "other_tool"] and {"fold 1", "fold 2", "fold 3", "mean", "sd"} <= set(table)
    assert table["n_scans"].tolist() == [8, 8]


def test_folder_masks_must_match_and_fit(index, tmp_path, gm_challenge):
    scan = index.scans[0]
    folder = tmp_path / "masks"
    folder.mkdir()
    predictor = FolderPredictor(folder)
    with pytest.raises(InputFileError, match=f"No mask '{scan.scan_id}_gmseg.nii.gz' for scan {scan.scan_id}"):
        predictor.predict(scan, label="x", output_dir=tmp_path / "out", tta=False, seed=0)
    shutil.copy(scan.gm_mask, folder / f"{scan.scan_id}_a_gmseg.nii.gz")
    shutil.copy(scan.gm_mask, folder / f"{scan.scan_id}_b_gmseg.nii.gz")
    wild = FolderPredictor(folder, pattern="{scan_id}*_gmseg.nii.gz")
    with pytest.raises(InputFileError, match="2 files .* match"):
        wild.predict(scan, label="x", output_dir=tmp_path / "out", tta=False, seed=0)
    other = index.scans[1]
    soft = np.asanyarray(nib.load(scan.gm_mask).dataobj).astype(np.float32) * 0.7
    nib.save(nib.Nifti1Image(soft, nib.load(scan.gm_mask).affine), folder / f"{scan.scan_id}_gmseg.nii.gz")
    with pytest.raises(Exception, match="must hold only 0 and 1"):
        predictor.predict(scan, label="x", output_dir=tmp_path / "out", tta=False, seed=0)
    shutil.copy(scan.gm_mask, folder / f"{other.scan_id}_gmseg.nii.gz")
    if nib.load(other.image).shape != nib.load(scan.image).shape:
        with pytest.raises(Exception, match="differs from image"):
            predictor.predict(other, label="x", output_dir=tmp_path / "out", tta=False, seed=0)
