"""Tests of pedgm_kit.evaluate and `pedgm evaluate`: hand-checkable masks, real sample pairs, errors."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pedgm_kit import evaluate as ev
from pedgm_kit.cli import main
from pedgm_kit.datasets import discover_bids
from pedgm_kit.exceptions import (
    GridMismatchError,
    ImageContentError,
    InputFileError,
    ParameterError,
)
from pedgm_kit.io import write_json
from pedgm_kit.metrics import (
    METRICS,
    dice,
    labelled_slices,
    per_slice_metrics,
    volume_metrics,
)

AFFINE = np.diag([-0.5, 0.5, 2.5, 1.0])  # LAS, 0.5 x 0.5 mm pixels (0.25 mm²), 2.5 mm slices


def _save(path, data, affine=AFFINE):
    img = nib.Nifti1Image(np.asarray(data, dtype=np.uint8), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, path)
    return path


@pytest.fixture
def pair(tmp_path):
    """Manual GM on slices 0-2 of 4 (slice 3 unlabelled); the prediction also marks slice 3.

    Per labelled slice: truth = 4x4 square (16 px), pred = the same square shifted by one column
    -> TP 12, FP 4, FN 4 -> DSC 0.75. Slice 3: pred 16 px, truth none.
    """
    truth = np.zeros((12, 10, 4), np.uint8)
    pred = np.zeros_like(truth)
    truth[4:8, 3:7, :3] = 1
    pred[4:8, 4:8, :] = 1
    return _save(tmp_path / "pred.nii.gz", pred), _save(tmp_path / "truth.nii.gz", truth)


def test_evaluate_pair_scan_level_on_labelled_slices(pair):
    row = ev.evaluate_pair(*pair).iloc[0]
    assert row["scope"] == "labelled slices" and row["n_slices"] == 4 and row["n_scored_slices"] == 3
    assert row["DSC"] == pytest.approx(0.75)  # 3 x (TP 12, FP 4, FN 4)
    assert row["JI"] == pytest.approx(0.6)
    assert row["CC"] == pytest.approx((1 - 24 / 36) * 100)
    assert row["TPR"] == pytest.approx(0.75) and row["PPV"] == pytest.approx(0.75)
    assert row["gm_area_mm2"] == pytest.approx(16 * 0.25) and row["manual_gm_area_mm2"] == pytest.approx(4.0)
    assert set(METRICS) <= set(row.index)


def test_evaluate_pair_all_slices_counts_the_unlabelled_slice(pair):
    row = ev.evaluate_pair(*pair, labelled_only=False).iloc[0]
    # TP 36, FP 12 + 16, FN 12 -> 72 / (72 + 40)
    assert row["scope"] == "all slices" and row["n_scored_slices"] == 4
    assert row["DSC"] == pytest.approx(72 / 112)


def test_evaluate_pair_per_slice_equals_metrics_module(pair):
    frame = ev.evaluate_pair(*pair, per_slice=True)
    assert list(frame["slice"]) == [0, 1, 2] and frame["labelled"].all()
    p, t = (np.asarray(nib.load(x).dataobj) for x in pair)
    ref = per_slice_metrics(p, t, spacing_mm=(0.5, 0.5, 2.5)).iloc[:3]
    pd.testing.assert_frame_equal(
        frame[list(METRICS)].reset_index(drop=True), ref[list(METRICS)].reset_index(drop=True)
    )
    assert frame["gm_area_mm2"].tolist() == pytest.approx([4.0, 4.0, 4.0])
    every = ev.evaluate_pair(*pair, per_slice=True, labelled_only=False)
    assert every["labelled"].tolist() == [True, True, True, False] and every["DSC"].iloc[3] == 0.0
    assert frame.attrs["spacing_mm"] == pytest.approx([0.5, 0.5, 2.5]) and frame.attrs["axis"] == 2


def test_evaluate_pair_accepts_images_and_uses_the_affine_spacing(pair):
    p, t = (nib.load(x) for x in pair)
    aniso = np.diag([-0.3, 0.9, 4.0, 1.0])
    p2 = nib.Nifti1Image(np.asarray(p.dataobj), aniso)
    t2 = nib.Nifti1Image(np.asarray(t.dataobj), aniso)
    row = ev.evaluate_pair(p2, t2).iloc[0]
    lab = labelled_slices(np.asarray(t.dataobj))
    ref = volume_metrics(np.asarray(p.dataobj)[..., lab], np.asarray(t.dataobj)[..., lab], spacing_mm=(0.3, 0.9, 4.0))
    assert row["HSD"] == pytest.approx(ref["HSD"]) and row["MSD"] == pytest.approx(ref["MSD"])
    assert row["gm_area_mm2"] == pytest.approx(16 * 0.27)


def test_slice_axis_follows_the_affine():
    # slices stored first: array axis 0 runs inferior-superior
    affine = np.array([[0, 0, -0.5, 0], [0, 0.5, 0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(np.zeros((4, 6, 6), np.uint8), affine)
    assert ev.slice_axis(img) == 0
    assert ev.slice_axis(nib.Nifti1Image(np.zeros((6, 6, 4), np.uint8), np.diag([-1, -1, 1, 1]))) == 2


def test_gm_area_per_slice(pair):
    assert ev.gm_area_per_slice(pair[0]).tolist() == pytest.approx([4.0] * 4)
    assert ev.gm_area_per_slice(pair[1]).tolist() == pytest.approx([4.0, 4.0, 4.0, 0.0])


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


def test_grid_mismatch_shape_names_both_files(tmp_path, pair):
    other = _save(tmp_path / "small.nii.gz", np.zeros((12, 10, 3)))
    match = r"pred\.nii\.gz: prediction shape \(12, 10, 4\) differs from manual mask .*small\.nii\.gz shape \(12, 10, 3\)"
    with pytest.raises(GridMismatchError, match=match):
        ev.evaluate_pair(pair[0], other)


def test_grid_mismatch_affine_names_both_files(tmp_path, pair):
    other = _save(tmp_path / "moved.nii.gz", np.asarray(nib.load(pair[1]).dataobj), AFFINE + np.diag([0, 0, 0.01, 0]))
    match = r"pred\.nii\.gz: prediction affine differs from manual mask .*moved\.nii\.gz affine by up to 0\.01"
    with pytest.raises(GridMismatchError, match=match):
        ev.evaluate_pair(pair[0], other)


def test_non_binary_prediction(tmp_path, pair):
    soft = tmp_path / "soft.nii.gz"
    nib.save(nib.Nifti1Image(np.full((12, 10, 4), 0.7, np.float32), AFFINE), soft)
    match = r"soft\.nii\.gz: prediction must hold only 0 and 1, but 480 voxel\(s\) hold other values \(0\.7\); a probability map"
    with pytest.raises(ImageContentError, match=match):
        ev.evaluate_pair(soft, pair[1])


def test_empty_manual_mask_needs_all_slices(tmp_path, pair):
    empty = _save(tmp_path / "empty.nii.gz", np.zeros((12, 10, 4)))
    with pytest.raises(ImageContentError, match=r"empty\.nii\.gz: manual mask is empty"):
        ev.evaluate_pair(pair[0], empty)
    assert ev.evaluate_pair(pair[0], empty, labelled_only=False).iloc[0]["DSC"] == 0.0


def test_missing_file(tmp_path, pair):
    with pytest.raises(InputFileError, match=r"No such file or no access: '.*absent\.nii\.gz' \(prediction\)"):
        ev.evaluate_pair(tmp_path / "absent.nii.gz", pair[1])


# ------------------------------------------------------------------------------------------------
# labels, tables, json, figures
# ------------------------------------------------------------------------------------------------


def test_model_labels(tmp_path):
    assert ev.model_labels(["challenge", "large"]) == {"challenge": "challenge", "large": "large"}
    a, b = tmp_path / "runA" / "model.hdf5", tmp_path / "runB" / "model.hdf5"
    assert list(ev.model_labels(["challenge", str(a), str(b)])) == ["challenge", "runA-model", "runB-model"]
    assert list(ev.model_labels([str(tmp_path / "pretrained_aug.hdf5")])) == ["pretrained_aug"]
    assert ev.model_labels({"mine": str(a)}) == {"mine": str(a)}
    with pytest.raises(ParameterError, match="models is empty"):
        ev.model_labels([])
    with pytest.raises(ParameterError, match="model label 'a b' must be a plain name"):
        ev.model_labels({"a b": "challenge"})
    with pytest.raises(ParameterError, match="gets the label 'challenge'"):
        ev.model_labels(["challenge", "challenge"])


def _tiny_tidy():
    rows = []
    for model, shift in (("challenge", 0.0), ("large", 0.05)):
        for scan, person in (("s1", "p1"), ("s2", "p2")):
            for metric in list(METRICS) + list(ev.AREA_METRICS):
                rows.append((model, scan, person, "scan", pd.NA, metric, 0.8 + shift))
                for k in range(3):
                    value = np.nan if (metric == "MSD" and k == 2) else 0.7 + shift + 0.05 * k
                    rows.append((model, scan, person, "slice", k, metric, value))
    tidy = pd.DataFrame(rows, columns=list(ev.TIDY_COLUMNS))
    tidy["slice"] = tidy["slice"].astype("Int64")
    return tidy


def test_wide_and_summary_tables():
    tidy = _tiny_tidy()
    scan = ev.wide_table(tidy, level="scan")
    assert list(scan.columns[:3]) == ["model", "scan", "person"] and len(scan) == 4
    assert list(scan.columns[3:]) == list(METRICS) + list(ev.AREA_METRICS)
    slc = ev.wide_table(tidy, level="slice")
    assert len(slc) == 12 and slc["slice"].tolist()[:3] == [0, 1, 2]
    summary = ev.summary_table(tidy)
    row = summary.query("level == 'slice' and model == 'large' and metric == 'MSD'").iloc[0]
    assert row["n"] == 4 and row["n_nan"] == 2 and row["mean"] == pytest.approx(0.775)


def test_write_tables_and_json(tmp_path):
    tidy = _tiny_tidy()
    files = ev.write_tables(tidy, tmp_path / "eval")
    assert sorted(files) == ["scan", "slice", "summary", "tidy", "xlsx"]
    sheets = pd.read_excel(files["xlsx"], sheet_name=None)
    assert list(sheets) == ["slice", "scan", "summary", "notes"]
    assert "labelled slices only" in " ".join(sheets["notes"]["note"])
    back = pd.read_csv(files["tidy"])
    assert list(back.columns) == list(ev.TIDY_COLUMNS) and len(back) == len(tidy)
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.startswith(".")]  # no temp files left
    obj = {"a": np.float64("nan"), "b": np.int64(3), "c": pd.DataFrame({"x": [1.5]})}
    out = write_json(obj, tmp_path / "r.json")
    assert json.loads(out.read_text()) == {"a": None, "b": 3, "c": [{"x": 1.5}]}


def test_boxplots_figure_is_agg_safe(tmp_path):
    from matplotlib.figure import Figure

    fig = ev.plot_metric_boxplots(_tiny_tidy(), level="slice")
    assert isinstance(fig, Figure) and len(fig.axes) == len(METRICS)
    assert fig.axes[0].get_title().startswith("DSC")
    fig.savefig(tmp_path / "box.png")
    assert (tmp_path / "box.png").stat().st_size > 10_000
    with pytest.raises(ParameterError, match="level must be 'scan' or 'slice'; got 'x'"):
        ev.plot_metric_boxplots(_tiny_tidy(), level="x")


# ------------------------------------------------------------------------------------------------
# real sample data
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_index(gm_challenge):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover_bids(gm_challenge)


def test_retest_pairs_on_the_sample(sample_index):
    pairs = ev.retest_pairs(sample_index)
    assert len(pairs) == 8
    assert all(a.metadata["run"] == 1 and b.metadata["run"] == 2 for a, b in pairs)
    assert all(a.metadata["subject"] == b.metadata["subject"] for a, b in pairs)
    some = ev.retest_pairs(sample_index, persons=["sub-9709"])
    assert [a.scan_id for a, _ in some] == ["sub-9709Ses1_run-1_T2starw", "sub-9709Ses2_run-1_T2starw"]


def test_evaluate_pair_on_manual_cord_vs_gm_of_a_real_scan(sample_index):
    # A real pair with known relation: the GM lies inside the cord, so TPR of "cord as prediction" is 1.
    scan = sample_index["sub-9604_run-1_T2starw"]  # LPS, mask affine differs from the image's by 2e-4
    row = ev.evaluate_pair(scan.cord_mask, scan.gm_mask).iloc[0]
    gm = np.asarray(nib.load(scan.gm_mask).dataobj) > 0
    cord = np.asarray(nib.load(scan.cord_mask).dataobj) > 0
    lab = labelled_slices(gm)
    assert row["n_scored_slices"] == lab.sum() == 15
    assert row["DSC"] == pytest.approx(dice(cord[..., lab], gm[..., lab]))
    assert row["TPR"] == pytest.approx(np.count_nonzero(cord & gm) / np.count_nonzero(gm[..., lab]))
    pixel_mm2 = np.prod(nib.affines.voxel_sizes(nib.load(scan.gm_mask).affine)[:2])
    assert row["manual_gm_area_mm2"] == pytest.approx(gm[..., lab].sum() / lab.sum() * pixel_mm2, rel=1e-6)


@pytest.mark.slow
def test_evaluate_models_saves_predictions_that_score_the_same(tmp_path, sample_index, challenge_segmenter):
    scan_id = "sub-9584_run-1_T2starw"
    tidy = ev.evaluate_models(sample_index, ["challenge"], scans=[scan_id], output_dir=tmp_path, seed=0, progress=False)
    assert list(tidy.columns) == [*ev.TIDY_COLUMNS, "fold"] and set(tidy["fold"]) == {0}
    pred = ev.prediction_path(tmp_path, "challenge", scan_id)
    assert tidy.attrs["predictions"] == {("challenge", scan_id): pred} and pred.is_file()
    scan_rows = tidy.query("level == 'scan'").set_index("metric")["value"]
    again = ev.evaluate_pair(pred, sample_index[scan_id].gm_mask).iloc[0]
    for metric in METRICS:
        assert scan_rows[metric] == pytest.approx(again[metric], nan_ok=True)
    assert scan_rows["DSC"] > 0.85  # SCT's own bar for its test scan
    slice_rows = tidy.query("level == 'slice' and metric == 'DSC'")
    assert len(slice_rows) == 17 and slice_rows["slice"].tolist() == list(range(17))
    with pytest.raises(ParameterError, match="scan 'nope' is not a labelled scan"):
        ev.evaluate_models(sample_index, ["challenge"], scans=["nope"], output_dir=tmp_path, seed=0)


# ------------------------------------------------------------------------------------------------
# pedgm evaluate
# ------------------------------------------------------------------------------------------------


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("pedgm evaluate: error: ")
    for needle in needles:
        assert needle in err, err
    return err


def test_cli_evaluate_prints_all_ten_metrics_and_writes_json(tmp_path, pair, capsys):
    out = tmp_path / "report.json"
    assert main(["evaluate", "--pred", str(pair[0]), "--gt", str(pair[1]), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for metric in METRICS:
        assert f"\n{metric} " in text
    assert "labelled slices (3 of 4 slices)" in text
    report = json.loads(out.read_text())
    assert report["scan"]["DSC"] == pytest.approx(0.75) and report["scope"] == "labelled slices"
    assert set(METRICS) <= set(report["scan"]) and "slices" not in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.nii.gz", "report.json", "truth.nii.gz"]


def test_cli_evaluate_per_slice_and_all_slices(tmp_path, pair, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--pred", str(pair[0]), "--gt", str(pair[1]), "--per-slice", "--all-slices",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["scan"]["DSC"] == pytest.approx(72 / 112)
    assert [r["slice"] for r in report["slices"]] == [0, 1, 2, 3]
    assert report["slices"][3]["labelled"] is False and report["slices"][3]["MSD"] is None
    assert "labelled" in capsys.readouterr().out


def test_cli_evaluate_grid_mismatch_names_both_files(tmp_path, pair, capsys):
    other = _save(tmp_path / "other.nii.gz", np.zeros((12, 11, 4)))
    assert main(["evaluate", "--pred", str(pair[0]), "--gt", str(other)]) == 2
    _one_line_error(capsys, "pred.nii.gz", "other.nii.gz", "(12, 10, 4) differs", "(12, 11, 4)")


def test_cli_evaluate_missing_file(tmp_path, pair, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--pred", str(tmp_path / "absent.nii.gz"), "--gt", str(pair[1]), "--json", str(out)]) == 2
    _one_line_error(capsys, "absent.nii.gz", "No such file")
    assert not out.exists()


def test_cli_evaluate_refuses_to_overwrite_json(tmp_path, pair, capsys):
    out = tmp_path / "r.json"
    out.write_text("keep")
    assert main(["evaluate", "--pred", str(pair[0]), "--gt", str(pair[1]), "--json", str(out)]) == 2
    _one_line_error(capsys, "r.json", "--overwrite")
    assert out.read_text() == "keep"
    assert main(["evaluate", "--pred", str(pair[0]), "--gt", str(pair[1]), "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["scan"]["DSC"] == pytest.approx(0.75)


def test_cli_evaluate_json_folder_must_exist(tmp_path, pair, capsys):
    out = tmp_path / "no" / "r.json"
    assert main(["evaluate", "--pred", str(pair[0]), "--gt", str(pair[1]), "--json", str(out)]) == 2
    _one_line_error(capsys, "--json folder does not exist", "no")


def test_cli_evaluate_requires_both_masks(pair, capsys):
    assert main(["evaluate", "--pred", str(pair[0])]) == 2
    assert "--gt" in capsys.readouterr().err
