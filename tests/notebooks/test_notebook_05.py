"""Notebook 05 runs headless on the sample test split with the two SCT baselines, and its per-scan
Dice equals `pedgm evaluate` on the `pedgm segment` output of the same scan."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from pedgm_kit.cli import main
from pedgm_kit.datasets import discover_bids

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "05_evaluate.ipynb"
MODELS = ["challenge", "large"]


def test_notebook_is_committed_clean_with_one_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    source = tagged[0].source
    for name in ("data_dir", "output_dir", "seed", "smoke", "models", "baseline", "split", "n_boot", "retest"):
        assert f"\n{name} = " in "\n" + source, name
    assert all("#" in line for line in source.splitlines() if "=" in line)  # every parameter commented
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory, gm_challenge):
    import papermill as pm

    tmp = tmp_path_factory.mktemp("nb05")
    out_dir = tmp / "run"
    # the kernel is a separate process: it must import this checkout of pedgm_kit
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), old) if p)
    try:
        pm.execute_notebook(
            str(NOTEBOOK), str(tmp / "executed.ipynb"), kernel_name="python3", cwd=str(tmp),
            progress_bar=False, log_output=False,
            parameters={
                "data_dir": str(gm_challenge), "output_dir": str(out_dir), "seed": 0, "smoke": True,
                "smoke_max_scans": 2, "smoke_n_boot": 100, "models": MODELS, "baseline": "challenge",
                "split": "test", "split_seed": 3, "retest": True, "n_summary_slices": 2,
                "split_manifest": "", "train_dir": "",
            },
        )
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return tmp, out_dir / "evaluation"


@pytest.mark.slow
def test_notebook_writes_its_files(notebook_run):
    tmp, ev_dir = notebook_run
    for name in ("metrics_tidy.csv", "metrics_scan.csv", "metrics_slice.csv", "metrics_summary.csv", "metrics.xlsx",
                 "stats.csv", "summary.md", "retest_areas.csv", "retest_cv.csv", "retest_cv_pairs.csv",
                 "boxplots_slice.png", "boxplots_scan.png", "retest_areas.png", "result_summary.png", "results.json"):
        path = ev_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    for png in ev_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # outputs only under output_dir (and papermill's executed copy that the test asked for)
    assert sorted(p.name for p in tmp.iterdir()) == ["executed.ipynb", "run"]
    assert sorted(pd.ExcelFile(ev_dir / "metrics.xlsx").sheet_names) == ["notes", "scan", "slice", "summary"]

    results = json.loads((ev_dir / "results.json").read_text())
    assert {"scope", "parameters", "scans", "persons", "dice_per_scan", "scan_metrics_mean", "stats",
            "retest_cv", "retest_cv_pairs", "files"} <= set(results)
    assert "labelled slices only" in results["scope"]
    assert results["scans"] == ["sub-9584_run-1_T2starw", "sub-9604_run-1_T2starw"]
    assert sorted(results["dice_per_scan"]) == MODELS
    assert {r["model"] for r in results["retest_cv"]} == set(MODELS)
    assert all(0 <= r["cv_slice_pct"] < 50 for r in results["retest_cv"])
    assert {(r["level"], r["metric"]) for r in results["stats"]} >= {("scan", "DSC"), ("slice", "DSC")}
    assert all((ev_dir / rel).is_file() for rel in results["files"].values())
    summary = (ev_dir / "summary.md").read_text()
    assert "labelled slices only" in summary and "Test-retest" in summary

    scan_csv = pd.read_csv(ev_dir / "metrics_scan.csv")
    for model, per_scan in results["dice_per_scan"].items():
        for scan, value in per_scan.items():
            row = scan_csv[(scan_csv["model"] == model) & (scan_csv["scan"] == scan)]
            assert row["DSC"].item() == pytest.approx(value, rel=1e-12)


@pytest.mark.slow
def test_notebook_dice_equals_pedgm_segment_then_pedgm_evaluate(notebook_run, gm_challenge, tmp_path, capsys):
    _, ev_dir = notebook_run
    results = json.loads((ev_dir / "results.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    for scan_id in results["scans"]:
        scan = index[scan_id]
        for model in MODELS:
            seg = tmp_path / f"{scan_id}_{model}_gmseg.nii.gz"
            report = tmp_path / f"{scan_id}_{model}.json"
            assert main(["segment", str(scan.image), "-o", str(seg), "-m", model]) == 0
            assert main(["evaluate", "--pred", str(seg), "--gt", str(scan.gm_mask), "--json", str(report)]) == 0
            cli_dice = json.loads(report.read_text())["scan"]["DSC"]
            assert results["dice_per_scan"][model][scan_id] == pytest.approx(cli_dice, rel=1e-12), (scan_id, model)
    capsys.readouterr()
