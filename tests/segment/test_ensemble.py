"""A run's variant folder of fold models segments as one model: the mean of its members' probabilities."""

from __future__ import annotations

import json
import shutil

import h5py
import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.cli import main
from pedgm_kit.exceptions import InputFileError, ParameterError
from pedgm_kit.segment import Segmenter
from pedgm_kit.segment.ensemble import EnsembleSegmenter, ensemble_members, ensemble_threshold, load_segmenter
from pedgm_kit.weights import weights_path

pytestmark = pytest.mark.slow


def make_cv_run(root, *, thresholds=(0.999, 0.999), perturb: float = 1.05):
    """``<root>/train/fold-<k>/v/best.hdf5`` (+ .json, summary.json): the challenge weights twice, the second
    with one convolution kernel scaled by ``perturb`` so the members differ."""
    source = weights_path("challenge")
    meta = json.loads(source.with_suffix(".json").read_text())
    members = []
    for k, threshold in enumerate(thresholds, start=1):
        folder = root / "train" / f"fold-{k}" / "v"
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "best.hdf5")
        (folder / "best.json").write_text(json.dumps({**meta, "threshold": threshold, "variant": "v"}))
        (folder / "summary.json").write_text(json.dumps({
            "variant": "v", "threshold": threshold, "threshold_rule": "chosen on validation (test fixture)",
            "train_persons": [f"sub-{k}a", f"sub-{k}b"], "test_dice": 0.8 + 0.01 * k, "test_persons": [f"sub-t{k}"],
            "best_val_dice": 0.79, "best_epoch": 3, "config": {"pretrained": True, "loss": "dice_bce"}}))
        if k == 2:
            with h5py.File(folder / "best.hdf5", "r+") as h5:
                h5["rate6_2/rate6_2/kernel:0"][...] *= perturb
        members.append(folder / "best.hdf5")
    return root / "train" / "v", members


def test_ensemble_is_the_mean_of_its_members(tmp_path, gm_challenge):
    variant, members = make_cv_run(tmp_path / "run")
    assert not variant.exists() and ensemble_members(variant) == members  # the folds are found beside it
    image = nib.load(gm_challenge / "sub-9418/anat/sub-9418_run-1_T2starw.nii.gz")
    ens = load_segmenter(variant)
    assert isinstance(ens, EnsembleSegmenter) and len(ens.members) == 2
    probs = ens.segment(image, threshold=0, uncertainty="ensemble")
    singles = [Segmenter(m).segment(image, threshold=0) for m in members]
    maps = np.stack([np.asanyarray(s.dataobj, dtype=np.float32) for s in singles])
    assert not np.allclose(maps[0], maps[1])  # the members do differ
    np.testing.assert_allclose(np.asanyarray(probs.dataobj), maps.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(np.asanyarray(probs.extra["pedgm_uncertainty"]["map"].dataobj),
                               np.clip(maps.std(axis=0), 0, 1), atol=1e-6)
    mask = ens.segment(image)  # the variant's threshold on the mean, where one model thresholds (model grid)
    assert mask.get_data_dtype() == np.uint8 and np.array_equal(mask.affine, image.affine)
    grids = [s.extra["pedgm_model_grid"] for s in singles]
    model_mean = (grids[0]["probabilities"] + grids[1]["probabilities"]) / 2
    expected = grids[0]["grid"].to_input((model_mean > 0.999).astype(np.float32)) > 0.5
    assert np.array_equal(np.asanyarray(mask.dataobj) > 0, expected) and expected.any()


def test_an_ensemble_of_identical_members_is_that_member(tmp_path, gm_challenge):
    _, members = make_cv_run(tmp_path / "run", perturb=1.0)
    image = gm_challenge / "sub-9584/anat/sub-9584_run-1_T2starw.nii.gz"
    one = Segmenter(members[0]).segment(image)
    both = EnsembleSegmenter(members=members).segment(image, uncertainty="ensemble")
    assert np.array_equal(np.asanyarray(one.dataobj), np.asanyarray(both.dataobj))
    assert float(np.asanyarray(both.extra["pedgm_uncertainty"]["map"].dataobj).max()) == 0.0  # no disagreement


def test_segment_cli_with_a_variant_writes_mask_uncertainty_and_shows_the_card(tmp_path, gm_challenge, capsys):
    variant, _ = make_cv_run(tmp_path / "run", thresholds=(0.5, 0.9))
    assert ensemble_threshold(ensemble_members(variant))[0] == pytest.approx(0.7)  # median of differing members
    image = tmp_path / "scan.nii.gz"
    shutil.copy(gm_challenge / "sub-9604/anat/sub-9604_run-1_T2starw.nii.gz", image)
    assert main(["segment", str(image), "--model", str(variant), "--uncertainty"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "scan_gmseg.nii.gz")
    assert "no model card" in err and "v (ensemble, 2 folds)" in err and "4 persons" in err
    assert (tmp_path / "scan_gmseg_uncertainty.nii.gz").is_file() and (tmp_path / "scan_gmseg_uncertainty.csv").is_file()
    # a single member still works as a plain .hdf5, and a folder holding best.hdf5 is that model
    assert isinstance(load_segmenter(variant.parent / "fold-1" / "v"), Segmenter)
    assert not isinstance(load_segmenter(variant.parent / "fold-1" / "v" / "best.hdf5"), EnsembleSegmenter)


def test_ensemble_writes_uncertainty_only_when_asked_as_one_model_does(tmp_path, gm_challenge):
    """Regression: the ensemble made its uncertainty map on every call and skipped Segmenter.__init__."""
    variant, _ = make_cv_run(tmp_path / "run")
    ens = EnsembleSegmenter(variant)
    single = Segmenter(ensemble_members(variant)[0])
    assert {k: v for k, v in vars(single).items() if k not in ("metadata", "engine", "model", "windows_predicted")} \
        .items() <= vars(ens).items()  # every attribute one model has, set by Segmenter.__init__
    image = gm_challenge / "sub-9584/anat/sub-9584_run-1_T2starw.nii.gz"
    plain = ens.segment(image)
    assert "pedgm_uncertainty" not in plain.extra and "uncertainty" not in plain.extra["pedgm_segment"]
    asked = ens.segment(image, uncertainty="tta")  # a one-model method: the members' disagreement
    assert asked.extra["pedgm_uncertainty"]["method"] == "ensemble"
    assert np.array_equal(np.asanyarray(plain.dataobj), np.asanyarray(asked.dataobj))
    with pytest.raises(ParameterError, match="uncertainty must be one of 'ensemble'"):
        ens.segment(image, uncertainty="dropout")
    with pytest.raises(ParameterError, match="batch_size must be a positive integer"):
        EnsembleSegmenter(variant, batch_size=0)
    scan = tmp_path / "scan.nii.gz"
    shutil.copy(image, scan)
    assert main(["segment", str(scan), "--model", str(variant)]) == 0
    assert (tmp_path / "scan_gmseg.nii.gz").is_file() and not list(tmp_path.glob("scan_gmseg_uncertainty*"))


def test_missing_variant_is_one_line_error(tmp_path, capsys):
    with pytest.raises(InputFileError, match="fold-<k>/nothing/best.hdf5"):
        ensemble_members(tmp_path / "train" / "nothing")
    assert main(["segment", str(tmp_path / "x.nii.gz"), "--model", str(tmp_path / "train" / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_train_final_packages_the_variant_as_one_model(tmp_path, gm_challenge, capsys):
    """`pedgm train --final --variant v`: the fold models copied with the card; the package segments
    exactly as the variant folder does; a second call refuses without --overwrite; nothing partial."""
    variant, members = make_cv_run(tmp_path / "run")
    params = tmp_path / "p.yaml"
    params.write_text(f"train:\n  output_dir: {tmp_path / 'run' / 'train'}\n")
    assert main(["train", "--params", str(params), "--final", "--variant", "v"]) == 0
    package = tmp_path / "run" / "train" / "final" / "v"
    assert f"--model {package}" in capsys.readouterr().out
    assert sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()) == [
        "fold-1/best.hdf5", "fold-1/best.json", "fold-1/summary.json",
        "fold-2/best.hdf5", "fold-2/best.json", "fold-2/summary.json", "model_card.json", "model_card.md"]
    card = json.loads((package / "model_card.json").read_text())
    assert card["kind"] == "ensemble" and card["packaged_from"] == str(variant)
    image = gm_challenge / "sub-9584/anat/sub-9584_run-1_T2starw.nii.gz"
    assert np.array_equal(np.asanyarray(load_segmenter(package).segment(image).dataobj),
                          np.asanyarray(load_segmenter(variant).segment(image).dataobj))
    assert main(["train", "--params", str(params), "--final", "--variant", "v"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--params", str(params), "--final", "--variant", "nothing"]) == 2
    assert not list((tmp_path / "run" / "train" / "final").glob(".*"))  # no staging folder left
