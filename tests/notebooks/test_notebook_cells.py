"""Notebooks tell the story; the package does the work: no code cell of logic longer than about ten lines.

The parameters cell (plain literals, one per parameter) and import statements do not count: a cell is
measured by the non-blank lines of its other statements.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))
MAX_LINES = 10


def logic_lines(source: str) -> int:
    """Non-blank, non-comment lines of a cell's statements other than imports."""
    tree = ast.parse(source)
    lines = source.splitlines()
    count = 0
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        count += sum(1 for line in lines[node.lineno - 1:node.end_lineno] if line.strip()
                     and not line.strip().startswith("#"))
    return count


def test_logic_lines_counts_statements_not_imports():
    assert logic_lines("import os\nfrom a import (\n    b,\n)\n\nx = 1\n# note\ny = [\n    2,\n]\n") == 4


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_long_code_cell(notebook):
    long = []
    for i, cell in enumerate(json.loads(notebook.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        n = logic_lines("".join(cell["source"]))
        if n > MAX_LINES:
            long.append(f"cell {i}: {n} lines ({''.join(cell['source']).splitlines()[0][:60]!r})")
    assert long == [], f"{notebook.name}: move the logic into a pedgm_kit function:\n" + "\n".join(long)


# ---- the functions the cells call ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def index(gm_challenge):
    import warnings

    from pedgm_kit.datasets import discover_bids

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover_bids(gm_challenge)


def test_choose_splits_cv_sheet_and_automatic(index, tmp_path):
    """Notebook 02's three ways to split, each person-grouped; cross-validation tests every scan once."""
    from pedgm_kit.layout import fold_dir
    from pedgm_kit.splits import choose_splits

    frame = index.to_frame()
    cv = choose_splits(frame, cv_folds=3, seed=1)
    assert cv.cv and len(cv.folds) == 3 and cv.splits == cv.folds[0]
    assert sorted(s for f in cv.folds for s in f["test"]) == sorted(frame["scan_id"])
    assert cv.data_dirs(tmp_path) == [fold_dir(tmp_path, k) for k in (1, 2, 3)]
    assert list(cv.counts().index) == ["fold 1", "fold 2", "fold 3"]
    auto = choose_splits(frame, fractions=[0.5, 0.25, 0.25], seed=0)
    assert not auto.cv and auto.data_dirs(tmp_path) == [tmp_path] and list(auto.counts().index) == ["split"]
    ids = list(frame["scan_id"])
    sheet = tmp_path / "split.csv"
    pd.DataFrame({"Training": [ids[0], "sub-unknown"], "Val": [ids[2], None], "Testing": [ids[4], None]}).to_csv(sheet, index=False)
    chosen = choose_splits(frame, split_sheet=str(sheet))
    assert chosen.how == "spreadsheet" and chosen.skipped == ["sub-unknown"]
    assert "sub-unknown" in chosen.describe() and chosen.splits["train"] == [ids[0]]


def test_select_scans_reads_the_manifests_folds(index, tmp_path):
    """Notebook 05 evaluates each fold's test scans from the manifest (never a split drawn again)."""
    from pedgm_kit.evaluate import select_scans
    from pedgm_kit.layout import Manifest

    ids = index.scan_ids()
    folds = [{"train": ids[2:], "val": [], "test": ids[:2]}, {"train": ids[:2], "val": [], "test": ids[2:4]}]
    path = tmp_path / "manifest.json"
    Manifest.new({"splits": folds[0], "folds": folds}).write(path)
    chosen = select_scans(index, labels={"challenge": "challenge"}, split_manifest=path)
    assert chosen.scans == ids[:4] and chosen.fold_tests == [ids[:2], ids[2:4]]
    person_of = index.person_of()
    assert chosen.fold_of_person == {person_of[s]: 1 + (i >= 2) for i, s in enumerate(ids[:4])}
    assert "2 cross-validation folds" in chosen.describe("simulated x") and "SIMULATED" in chosen.describe("x")
    smoke = select_scans(index, labels={"challenge": "challenge"}, split_manifest=path, max_scans=1)
    assert smoke.scans == ids[:1] and smoke.fold_tests == [ids[:1], []]
    everything = select_scans(index, labels={"challenge": "challenge"}, split="all")
    assert everything.scans == ids and everything.fold_tests is None


def test_results_record_lists_what_was_written(tmp_path):
    """results.json's keys are the package's (pedgm_kit.layout.EvaluationResults), the report reads them."""
    from matplotlib.figure import Figure

    from pedgm_kit.evaluate import ScanSelection, results_record, save_figure, save_table
    from pedgm_kit.layout import EvaluationResults, evaluation_path

    tidy = pd.DataFrame({"model": ["a", "b"], "scan": ["s1", "s1"], "person": ["p", "p"], "level": ["scan", "scan"],
                         "slice": [None, None], "metric": ["DSC", "DSC"], "value": [0.5, 0.7]})
    tables = {"summary": pd.DataFrame({"level": ["scan", "scan"], "model": ["a", "b"], "metric": ["DSC", "DSC"],
                                       "mean": [0.5, 0.7]}),
              "stats": pd.DataFrame({"level": ["scan"], "verdict": ["b: no evidence"]}),
              "headline": pd.DataFrame({"model": ["a"]}), "failures": pd.DataFrame({"model": ["a"]}),
              "per_fold": pd.DataFrame({"model": ["a"]}), "groups": None, "uncertainty": None, "efficiency": None,
              "retest_cv": None, "retest_cv_pairs": None}
    assert save_table(tables["stats"], tmp_path, "stats") == evaluation_path(tmp_path, "stats")
    png = save_figure(Figure(), tmp_path, "person_dice")
    assert png.read_bytes()[:4] == b"\x89PNG"
    selection = ScanSelection(scans=["s1"], persons=["p"], fold_tests=[["s1"]], fold_of_person={"p": 1})
    record = results_record(tidy, evaluation_dir=tmp_path, parameters={"seed": 0}, selection=selection, tables=tables,
                            shift_label="inverted", files={"person_dice": png})
    data = json.loads(record.write(evaluation_path(tmp_path, "results")).read_text())
    again = EvaluationResults.from_json(data)
    assert again.folds == 1 and again.shift == "inverted" and again.scans == ["s1"]
    assert again.files["per_fold"] == "per_fold_dsc.csv" and "groups" not in again.files
    assert data["verdicts"] == ["b: no evidence"] and data["dice_per_scan"] == {"a": {"s1": 0.5}, "b": {"s1": 0.7}}


def test_preprocess_dataset_writes_the_index_notebook_01_and_the_loop_share(index, tmp_path):
    """One index.csv row per scan, from one function (notebook 01 and annotate.retrain_on_labelled)."""
    from pedgm_kit.layout import INDEX_CSV, PREPROCESSED_DIR, QC_DIR
    from pedgm_kit.preprocess import draft_masks, preprocess_dataset, preprocess_results

    scan = index.scans[0]
    table = preprocess_dataset([scan], tmp_path, cord_scale="", progress=False)
    assert table.attrs["path"] == tmp_path / PREPROCESSED_DIR / INDEX_CSV
    again = pd.read_csv(table.attrs["path"], dtype={"scan_id": str, "person_id": str})
    assert list(again.columns[:11]) == ["scan_id", "person_id", "image", "gm_mask", "n_slices", "centring", "spread_mm",
                                        "cord_scale", "cord_scale_rule", "source_image", "source_gm_mask"]
    assert again.loc[0, "scan_id"] == scan.scan_id and (tmp_path / PREPROCESSED_DIR / again.loc[0, "image"]).is_file()
    assert table.attrs["qc"] == [tmp_path / QC_DIR / f"{scan.scan_id}.png"] and table.attrs["qc"][0].is_file()
    assert draft_masks([], tmp_path / "drafts").empty and not (tmp_path / "drafts").exists()
    results = preprocess_results(index, root=index.root, layout="bids", parameters={}, table=table)
    assert results["n_preprocessed"] == 1 and results["index_csv"]["path"] == str(table.attrs["path"])


@pytest.mark.slow
def test_retrain_on_labelled_writes_notebook_01s_index_and_weights(index, tmp_path):
    """The correction loop's retraining preprocesses through the same function as notebook 01 (index.csv)."""
    from pedgm_kit.annotate import retrain_on_labelled
    from pedgm_kit.layout import INDEX_CSV, PREPROCESSED_DIR

    persons = {}
    for scan in index.scans:
        persons.setdefault(scan.person_id, scan.scan_id)
    two = index.subset(list(persons.values())[:2])
    summary = retrain_on_labelled(two, tmp_path, epochs=1, max_slices=4)
    frame = pd.read_csv(tmp_path / PREPROCESSED_DIR / INDEX_CSV, dtype={"scan_id": str})
    assert sorted(frame["scan_id"]) == sorted(two.scan_ids()) and "centring" in frame
    assert Path(summary["weights"]).is_file() and summary["weights"].endswith("best.hdf5")
