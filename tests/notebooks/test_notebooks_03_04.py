"""Notebooks 03 and 04 headless; the four variants through `pedgm train --all` (papermill)."""

import json

import numpy as np
import pytest
import yaml
from conftest import run_notebook

from pedgm_kit.cli import main
from pedgm_kit.data_creation import load_split


@pytest.mark.slow
def test_augment_notebook(tmp_path, tiny_data):
    run_notebook("03_augment.ipynb", tmp_path, data_dir=str(tiny_data), output_dir=str(tmp_path / "aug"),
                 materialise_copies=True, multiplier=4, smoke=True)
    result = json.loads((tmp_path / "aug" / "augment.json").read_text())
    assert result["identical_with_seed"] and result["masks_binary"]
    assert result["n_materialised"] == 4 * result["n_slices"]
    arrays = load_split(tmp_path / "aug" / "train_x4.npz")
    assert arrays["images"].shape == (16, 200, 200) and set(np.unique(arrays["masks"])) <= {0, 1}
    assert (tmp_path / "aug" / "augmentation_preview.png").stat().st_size > 10_000


@pytest.mark.slow
def test_train_cli_one_variant(tmp_path, tiny_data, capsys):
    params = tmp_path / "smoke.yaml"
    params.write_text(yaml.safe_dump({"train": {"data_dir": str(tiny_data), "output_dir": str(tmp_path / "run"),
                                                "smoke": True, "seed": 0}}))
    assert main(["train", "--params", str(params), "--variant", "pretrained_noaug"]) == 0
    folder = tmp_path / "run" / "pretrained_noaug"
    assert capsys.readouterr().out.strip() == str(folder / "04_train.ipynb")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["variant"] == "pretrained_noaug" and summary["config"]["augment"] is False


def test_train_cli_errors(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("train: {epochs: 1}\n")
    assert main(["train", "--params", str(params), "--variant", "nope"]) == 2
    assert "--variant (or --all) must be one of 'pretrained_aug'" in capsys.readouterr().err
    assert main(["train", "--params", str(tmp_path / "missing.yaml"), "--all"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("train: [1, 2]\n")
    assert main(["train", "--params", str(tmp_path / "bad.yaml"), "--all"]) == 2
    assert "section 'train' must be a mapping" in capsys.readouterr().err


def test_slurm_and_export_cli(tmp_path, capsys):
    out = tmp_path / "job.sbatch"
    assert main(["slurm", "--params", "parameters/demo.yaml", "--out", str(out), "--gpus", "1"]) == 0
    assert "#SBATCH --array=0-4" in out.read_text()
    assert main(["slurm", "--params", "parameters/demo.yaml", "--out", str(out)]) == 2  # exists
    assert main(["export", "--model", "challenge", "--format", "hdf5", "--out", str(tmp_path / "exp")]) == 2
    (tmp_path / "exp").mkdir()
    assert main(["export", "--model", "challenge", "--format", "hdf5", "--out", str(tmp_path / "exp")]) == 0
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [
        "challenge_model.hdf5", "challenge_model.json", "challenge_model_model_card.json", "challenge_model_model_card.md"]
    assert main(["export", "--model", "challenge", "--format", "onnx", "--out", str(tmp_path / "exp"), "--overwrite"]) == 0
    assert (tmp_path / "exp" / "challenge_model.onnx").is_file()
