"""`pedgm run`: notebooks 01 -> 05 on the sample data, the four variants, the report; failures and run ids."""

import json

import pytest
import yaml

from pedgm_kit.cli import main
from pedgm_kit.exceptions import PedgmError
from pedgm_kit.runner import run_pipeline

SMOKE = {
    "preprocess": {"make_drafts": False},
    "data": {"balance_on": "Site"},
    "augment": {"smoke": True},
    "train": {"smoke": True, "seed": 0},
    "evaluate": {"n_boot": 200, "retest": True},
}


@pytest.mark.slow
def test_full_pipeline_on_sample_data(tmp_path, capsys):
    params = tmp_path / "smoke.yaml"
    params.write_text(yaml.safe_dump(SMOKE))
    assert main(["run", "--params", str(params), "--outputs", str(tmp_path), "--run-id", "r1"]) == 0
    run = tmp_path / "r1"
    assert capsys.readouterr().out.strip().endswith("index.html")
    for notebook in ("preprocess/01_preprocess.ipynb", "data/02_data_creation.ipynb", "augment/03_augment.ipynb",
                     "05_evaluate.ipynb"):
        assert (run / notebook).is_file(), notebook
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    results = json.loads((run / "evaluation" / "results.json").read_text())
    assert sorted(results["scans"]) == sorted(manifest["splits"]["test"])  # 05 evaluates 02's test split
    assert set(results["dice_per_scan"]) >= {"challenge", "large", "pretrained_aug", "scratch_noaug"}
    summaries = {v: json.loads((run / "train" / v / "summary.json").read_text())
                 for v in ("pretrained_aug", "pretrained_noaug", "scratch_aug", "scratch_noaug")}
    for variant in ("pretrained_aug", "pretrained_noaug"):
        s = summaries[variant]
        # fine-tuning starts where the adult model is, and does not destroy it
        assert abs(s["first_epoch_val_dice"] - s["baseline_val_soft_dice"]) <= 0.05, s
        assert s["test_dice"] >= s["baseline_test_dice"] - 0.02, s
    for variant in ("scratch_aug", "scratch_noaug"):
        assert summaries[variant]["first_epoch_val_dice"] < 0.5, summaries[variant]
    page = (run / "index.html").read_text()
    assert "learning_curve.png" in page and "evaluation/boxplots_scan.png" in page
    # a second run with the same id is refused; the first is untouched
    before = (run / "index.html").stat().st_mtime_ns
    assert main(["run", "--params", str(params), "--outputs", str(tmp_path), "--run-id", "r1"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (run / "index.html").stat().st_mtime_ns == before


def test_failing_notebook_is_named_and_finished_work_kept(tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump({"preprocess": {"data_dir": str(tmp_path / "no-such-dataset")}}))
    with pytest.raises(PedgmError, match=r"01_preprocess.ipynb failed in cell \d+ \(.*no-such-dataset"):
        run_pipeline(params, outputs=tmp_path, run_id="r", progress=False)
    assert (tmp_path / "r" / "preprocess" / "01_preprocess.ipynb").is_file()  # the executed notebook is kept
