"""Mask provenance: manual or corrected draft (from the annotation loop's review log), carried and reported."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pedgm_kit import provenance as prov
from pedgm_kit.data_creation import (
    read_manifest,
    read_scans,
    record_in_manifest,
    write_arrays,
)
from pedgm_kit.evaluate.scoring import TIDY_COLUMNS
from pedgm_kit.exceptions import InputFileError
from pedgm_kit.viewer import ReviewLog


def _log(tmp_path, name: str, marks: dict[str, str]):
    log = ReviewLog(tmp_path / name)
    for scan_id, status in marks.items():
        log.mark(scan_id, status)
    return log.path


def test_scans_in_a_review_log_are_corrected_drafts(tmp_path):
    a = _log(tmp_path, "a.csv", {"s1": "accepted", "s2": "corrected"})
    b = _log(tmp_path, "b.csv", {"s3": "needs correction"})
    found = prov.mask_provenance(["s1", "s2", "s3", "s4"], [a, b])
    assert found == {"s1": prov.CORRECTED, "s2": prov.CORRECTED, "s3": prov.CORRECTED, "s4": prov.MANUAL}
    frame = pd.DataFrame({"scan_id": ["s1", "s4", "s5"], "mask_provenance": [None, None, prov.CORRECTED]})
    out = prov.with_mask_provenance(frame, [a])
    assert out[prov.PROVENANCE_COLUMN].tolist() == [prov.CORRECTED, prov.MANUAL, prov.CORRECTED]  # recorded kept
    assert frame["mask_provenance"].isna().sum() == 2  # the caller's frame is not changed


def test_review_logs_are_found_and_checked(tmp_path):
    pre = tmp_path / "preprocess" / "preprocessed"
    pre.mkdir(parents=True)
    assert prov.review_log_paths([], preprocessed_dir=pre) == []
    (tmp_path / "preprocess" / "drafts").mkdir()
    own = _log(tmp_path / "preprocess" / "drafts", "review.csv", {"d1": "needs review"})
    other = _log(tmp_path, "earlier.csv", {"s1": "accepted"})
    assert prov.review_log_paths([str(other)], preprocessed_dir=pre) == [other, own]
    with pytest.raises(InputFileError, match=r"No such file or no access: '.*nope.csv' \(review log named in review_logs\)"):
        prov.review_log_paths(["nope.csv"])
    bad = tmp_path / "bad.csv"
    bad.write_text("scan_id,status\ns1,perhaps\n")
    with pytest.raises(InputFileError, match=r"bad.csv': scan 's1' has status 'perhaps'"):
        prov.mask_provenance(["s1"], [bad])


def _tidy(values: dict[str, dict[str, float]], person_of: dict[str, str]) -> pd.DataFrame:
    rows = [(model, scan, person_of[scan], "scan", pd.NA, "DSC", v)
            for model, scans in values.items() for scan, v in scans.items()]
    return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))


def test_manual_only_results_beside_all(tmp_path):
    person_of = {"a1": "A", "a2": "A", "b1": "B", "c1": "C", "d1": "D"}
    tidy = _tidy({"challenge": {"a1": 0.8, "a2": 0.6, "b1": 0.7, "c1": 0.5, "d1": 0.9},
                  "variant": {"a1": 0.9, "a2": 0.7, "b1": 0.6, "c1": 0.6, "d1": 0.8}}, person_of)
    provenance = {"a1": prov.MANUAL, "a2": prov.CORRECTED, "b1": prov.MANUAL, "c1": prov.CORRECTED, "d1": prov.MANUAL}
    table = prov.provenance_table(tidy, provenance, baseline="challenge", n_boot=100)
    assert table["masks"].tolist() == ["all", "all", "manual only", "manual only"]
    rows = table.set_index(["masks", "model"])
    assert rows.loc[("all", "challenge"), "n_persons"] == 4 and rows.loc[("manual only", "challenge"), "n_persons"] == 3
    # persons are the unit: A's manual scan alone on manual-only masks, A's two scans averaged on all
    assert rows.loc[("all", "challenge"), "mean"] == pytest.approx((0.7 + 0.7 + 0.5 + 0.9) / 4)
    assert rows.loc[("manual only", "variant"), "mean"] == pytest.approx((0.9 + 0.6 + 0.8) / 3)
    assert rows.loc[("all", "variant"), "n_corrected_scans"] == 2
    every_manual = {s: prov.MANUAL for s in provenance}
    assert prov.provenance_table(tidy, every_manual, baseline="challenge") is None  # nothing to show beside
    assert prov.provenance_table(tidy, {}, baseline="challenge") is None  # provenance unknown


def test_provenance_is_carried_into_scans_json_manifest_and_report(tmp_path, tiny_data):
    """scans.json (write_arrays) and manifest.json (record_in_manifest) carry it; the report section shows it."""
    pre = tiny_data.parent / "pre"
    frame = pd.DataFrame({"scan_id": ["sub-9418_run-1_T2starw"], "person_id": ["sub-9418"],
                          "image": [p.name for p in pre.glob("sub-9418_run-1_T2starw*") if "gm" not in p.name][:1]})
    frame = prov.with_mask_provenance(frame, [_log(tmp_path, "r.csv", {"sub-9418_run-1_T2starw": "accepted"})])
    write_arrays(frame, {"train": list(frame["scan_id"])}, root=pre, data_dir=tmp_path / "data")
    assert read_scans(tmp_path / "data")[0]["mask_provenance"] == prov.CORRECTED
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "manifest.json").write_text(json.dumps({"splits": {"train": [], "val": [], "test": []}}))
    record_in_manifest(run / "data" / "manifest.json", mask_provenance={"s1": prov.MANUAL, "s2": prov.CORRECTED})
    assert read_manifest(run / "data" / "manifest.json")["mask_provenance"]["s2"] == prov.CORRECTED
    assert prov.read_provenance(run / "data" / "manifest.json") == {"s1": prov.MANUAL, "s2": prov.CORRECTED}
    section = prov.report_section(run)
    assert "1 manual, 1 corrected draft" in section["text"] and "every result above is on manual" in section["text"]
    (run / "evaluation").mkdir()
    pd.DataFrame({"masks": ["all", "manual only"], "model": ["m", "m"], "n_persons": [2, 1], "mean": [0.7, 0.8]}).to_csv(
        run / "evaluation" / prov.PROVENANCE_FILE, index=False)
    section = prov.report_section(run)
    assert "manual-only masks is shown beside" in section["text"] and "manual only" in section["tables"][0]["frame"]["masks"].tolist()
    assert prov.report_section(tmp_path / "empty") is None


@pytest.mark.slow
def test_pipeline_records_provenance(tiny_cv_run):
    """The tiny demo_cv run drafts nothing: every mask is manual, recorded per scan, said in the report."""
    run, _ = tiny_cv_run
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    assert set(manifest["mask_provenance"].values()) == {prov.MANUAL}
    assert set(manifest["locked_test"]["scans"]) <= set(manifest["mask_provenance"])  # the locked scans too
    records = read_scans(run / "data" / "data" / "fold-1")
    assert {r["mask_provenance"] for r in records} == {prov.MANUAL}
    assert "Where the masks came from" in (run / "index.html").read_text()
