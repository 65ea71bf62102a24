"""Uncertainty: the per-voxel map and per-slice score of ``segment --uncertainty`` and how well it finds
bad slices (issue 14).

The AUROC floor below is on the value *within one condition*: pooling scans as acquired with scans
under a simulated shift rewards a score for telling the conditions apart, not for finding bad slices
within one. ``benchmarks/uncertainty.py`` reports the AUROC per condition with a person-clustered
interval; nearly all failing slices are under the SIMULATED 0.7x anatomy scale, so the floor is on
that condition: this test runs the same measurement on a subset (4 scans, 0.7x) and asserts
``AUROC_FLOOR``.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pedgm_kit.cli import main
from pedgm_kit.evaluate import auroc, clustered_auroc, uncertainty_table
from pedgm_kit.segment import UNCERTAINTY_METHODS, slice_scores, uncertainty_paths

# measured by benchmarks/uncertainty.py on 2026-12-05 (README "Which slices to review"), within the SIMULATED
# 0.7x condition (154 labelled slices, 42 with Dice < 0.8): tta 0.688, mc_dropout 0.664. (The pooled values over
# both conditions, 0.794 / 0.841, mixed the conditions and are not the measure.) TTA stays the default: as good
# where there are enough failures to tell, and 5x faster (7.4 vs 35.6 s per scan).
MEASURED_AUROC_WITHIN = {"tta": 0.688, "mc_dropout": 0.664}
# This test's subset (4 scans under the SIMULATED 0.7x scale, 68 labelled slices, 12 with Dice < 0.8) measured
# 0.734 on 2026-12-07 (scan-clustered 95% interval 0.44-0.91: with 4 scans it is wide and reaches chance).
AUROC_FLOOR = 0.65  # within-condition floor, below the subset's 0.734 and the benchmark's 0.688
DEFAULT_METHOD = UNCERTAINTY_METHODS[0]


def test_auroc_matches_definition():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2])
    positives = np.array([0, 1, 0, 1, 0], bool)
    # pairs (pos, neg): 0.4>0.1, 0.4>0.35, 0.4>0.2, 0.8>all three -> 6 of 6
    assert auroc(scores, positives) == 1.0
    assert auroc(-scores, positives) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # ties count half
    assert np.isnan(auroc([0.1, 0.2], [False, False]))


def test_uncertainty_table_per_model():
    rows = []
    for s, (d, u) in enumerate([(0.9, 0.01), (0.95, 0.02), (0.5, 0.2), (0.3, 0.3)]):
        rows += [{"model": "m", "scan": "a", "person": "p", "slice": s, "level": "slice", "metric": "DSC", "value": d},
                 {"model": "m", "scan": "a", "person": "p", "slice": s, "level": "slice", "metric": "uncertainty",
                  "value": u}]
    table = uncertainty_table(pd.DataFrame(rows))
    row = table.iloc[0]
    assert (row["model"], row["slices"], row["scans"], row["persons"], row["failed"]) == ("m", 4, 1, 1, 2)
    assert np.isnan(row["auroc_ci_low"])  # one person: no person-clustered interval
    assert row["auroc"] == 1.0 and row["spearman"] == pytest.approx(-0.8)


def test_slice_scores_region():
    u = np.zeros((4, 4, 3), np.float32)
    u[0, 0, 1] = 0.5
    u[1, 1, 1] = 0.1
    m = np.zeros(u.shape, np.uint8)
    m[2, 2, 2] = 1
    affine = np.diag([0.5, 0.5, 5.0, 1.0])
    scores = slice_scores(nib.Nifti1Image(u, affine), nib.Nifti1Image(m, affine))
    assert [s["slice"] for s in scores] == [0, 1, 2]
    assert scores[0]["score"] == 0.0
    assert scores[1]["score"] == pytest.approx(0.3)  # mean over the two voxels above 0.05
    assert scores[2] == {"slice": 2, "score": 0.0, "gm_voxels": 1}


@pytest.mark.parametrize("method", UNCERTAINTY_METHODS)
def test_same_seed_same_map(challenge_segmenter, t2s_dir, method):
    img = nib.load(t2s_dir / "t2s.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = challenge_segmenter.segment(img, uncertainty=method, seed=3)
        b = challenge_segmenter.segment(img, uncertainty=method, seed=3)
    ua, ub = (np.asanyarray(x.extra["pedgm_uncertainty"]["map"].dataobj) for x in (a, b))
    assert ua.shape == img.shape and np.array_equal(ua, ub)
    assert np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    assert ua.max() > 0.01 and ua.min() >= 0.0
    assert a.extra["pedgm_uncertainty"]["slices"] == b.extra["pedgm_uncertainty"]["slices"]


def test_cli_writes_map_and_scores_on_input_grid(tmp_path, t2s_dir):
    """`pedgm segment --uncertainty` writes the map and the per-slice scores beside the mask."""
    out = tmp_path / "t2s_gmseg.nii.gz"
    assert main(["segment", str(t2s_dir / "t2s.nii.gz"), "-o", str(out), "--uncertainty"]) == 0
    nii, csv = uncertainty_paths(out)
    assert nii.name == "t2s_gmseg_uncertainty.nii.gz" and csv.name == "t2s_gmseg_uncertainty.csv"
    src, umap = nib.load(t2s_dir / "t2s.nii.gz"), nib.load(nii)
    assert umap.shape == src.shape and np.allclose(umap.affine, src.affine)
    scores = pd.read_csv(csv)
    assert list(scores.columns) == ["slice", "score", "gm_voxels", "method"]
    assert len(scores) == src.shape[2] and set(scores["method"]) == {DEFAULT_METHOD}
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.slow
def test_score_finds_bad_slices_within_one_condition(challenge_segmenter, t2s_dir, gm_challenge):
    """AUROC of the default per-slice score for Dice < 0.8 within the SIMULATED 0.7x condition."""
    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.evaluate import clustered_auroc
    from pedgm_kit.geometry import slice_axis
    from pedgm_kit.metrics import dice
    from pedgm_kit.shift import Shift, apply_shift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    scans = [("t2s", t2s_dir / "t2s_uncropped.nii.gz", t2s_dir / "t2s_uncropped_gmseg_manual.nii.gz")]
    scans += [(s.person_id, s.image, s.gm_mask) for s in index.scans[:3]]  # sub-10062's 2 sessions, sub-9418
    scores, failed, clusters = [], [], []
    for person, image, gm in scans:
        shifted, masks = apply_shift(nib.load(image), {"gm": nib.load(gm)}, Shift("scale", 0.7))
        truth = np.asanyarray(masks["gm"].dataobj) > 0.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = challenge_segmenter.segment(shifted, uncertainty=DEFAULT_METHOD, seed=0)
        pred = np.asanyarray(out.dataobj) > 0
        per_slice = {r["slice"]: r["score"] for r in out.extra["pedgm_uncertainty"]["slices"]}
        axis = slice_axis(shifted.affine)
        for k in range(truth.shape[axis]):
            t = np.take(truth, k, axis=axis)
            if t.any():
                scores.append(per_slice[k])
                failed.append(dice(np.take(pred, k, axis=axis), t) < 0.8)
                clusters.append(person)
    failed = np.asarray(failed)
    assert failed.sum() >= 5 and (~failed).sum() >= 5, (int(failed.sum()), len(failed))
    result = clustered_auroc(scores, failed, clusters, n_boot=500, seed=0)
    assert result["n_clusters"] == 3 and result["ci_low"] <= result["auroc"] <= result["ci_high"]
    assert result["auroc"] >= AUROC_FLOOR, (
        f"AUROC {result['auroc']:.3f} < floor {AUROC_FLOOR} ({int(failed.sum())} of {len(failed)} failed)")


def test_clustered_auroc_resamples_persons():
    scores = [0.1, 0.2, 0.9, 0.3, 0.8, 0.05]
    failed = [False, False, True, False, True, False]
    out = clustered_auroc(scores, failed, ["a", "a", "a", "b", "b", "b"], n_boot=200, seed=0)
    assert out["auroc"] == auroc(scores, failed) == 1.0 and out["n_clusters"] == 2
    assert out["ci_low"] == out["ci_high"] == 1.0  # every resample of the two persons ranks perfectly
    one = clustered_auroc(scores, failed, ["a"] * 6)
    assert np.isnan(one["ci_low"]) and one["n_clusters"] == 1


def test_uncertainty_table_clusters_persons_not_scans():
    """Regression: the interval resampled scans, so a person's two sessions counted as two units.
    Two scans of one person are one unit: no interval; the same slices as two persons get one."""
    rows = []
    for scan, (d, u) in enumerate([(0.9, 0.1), (0.5, 0.4), (0.95, 0.05), (0.3, 0.6)]):
        for s in range(2):
            rows += [{"model": "m", "scan": f"sub-1ses{scan}", "person": "sub-1", "slice": s, "level": "slice",
                      "metric": metric, "value": value + 0.01 * s} for metric, value in (("DSC", d), ("uncertainty", u))]
    tidy = pd.DataFrame(rows)
    one = uncertainty_table(tidy, n_boot=100).iloc[0]
    assert (one["scans"], one["persons"]) == (4, 1) and np.isnan(one["auroc_ci_low"])
    two = uncertainty_table(tidy.assign(person=tidy["scan"].str[-1].map({"0": "a", "1": "a", "2": "b", "3": "b"})),
                            n_boot=100).iloc[0]
    assert (two["scans"], two["persons"]) == (4, 2) and np.isfinite(two["auroc_ci_low"])
    with pytest.raises(Exception, match="no 'person' column"):
        uncertainty_table(tidy.drop(columns="person"))
