"""Uncertainty: the per-voxel map and per-slice score of ``segment --uncertainty`` and how well it finds
bad slices (issue 14).

The AUROC floor below comes from ``benchmarks/uncertainty.py`` (numbers in the README): on the
labelled sample scans, as acquired and under a SIMULATED 0.7x anatomy scale, the default method's
per-slice score finds slices with Dice < 0.8 with AUROC ``MEASURED_AUROC`` over all scans; this test
runs the same measurement on a subset (4 scans, both conditions) and asserts ``AUROC_FLOOR``.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pedgm_kit.cli import main
from pedgm_kit.evaluate import auroc, uncertainty_table
from pedgm_kit.segment import UNCERTAINTY_METHODS, slice_scores, uncertainty_paths

# measured by benchmarks/uncertainty.py on 2026-12-05 (README "Which slices to review"): AUROC over all
# 309 labelled slices (46 with Dice < 0.8) / over the 154 under the simulated 0.7x scale (42 failures,
# where nearly all failures are). TTA stays the default: it is as good where there are enough failures
# to tell (0.688 vs 0.664) and 5x faster (7.4 vs 35.6 s per scan); MC dropout's higher pooled AUROC rests
# on 4 failures among the scans as acquired (0.972 vs 0.896).
MEASURED_AUROC = {"tta": (0.794, 0.688), "mc_dropout": (0.841, 0.664)}
AUROC_FLOOR = 0.65  # this test's subset of 4 scans passed above it; clearly above chance (0.5)
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
        rows += [{"model": "m", "scan": "a", "slice": s, "level": "slice", "metric": "DSC", "value": d},
                 {"model": "m", "scan": "a", "slice": s, "level": "slice", "metric": "uncertainty", "value": u}]
    table = uncertainty_table(pd.DataFrame(rows))
    row = table.iloc[0]
    assert (row["model"], row["slices"], row["failed"]) == ("m", 4, 2)
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
def test_score_finds_bad_slices(challenge_segmenter, t2s_dir, gm_challenge):
    """AUROC of the default per-slice score for Dice < 0.8 on real scans, plain and SIMULATED 0.7x."""
    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.geometry import slice_axis
    from pedgm_kit.metrics import dice
    from pedgm_kit.shift import Shift, apply_shift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    scans = [(t2s_dir / "t2s_uncropped.nii.gz", t2s_dir / "t2s_uncropped_gmseg_manual.nii.gz")]
    scans += [(s.image, s.gm_mask) for s in index.scans[:3]]
    scores, failed = [], []
    for image, gm in scans:
        img, mask = nib.load(image), nib.load(gm)
        shifted, masks = apply_shift(img, {"gm": mask}, Shift("scale", 0.7))
        for im, ma in ((img, mask), (shifted, masks["gm"])):
            truth = np.asanyarray(ma.dataobj) > 0.5
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = challenge_segmenter.segment(im, uncertainty=DEFAULT_METHOD, seed=0)
            pred = np.asanyarray(out.dataobj) > 0
            per_slice = {r["slice"]: r["score"] for r in out.extra["pedgm_uncertainty"]["slices"]}
            axis = slice_axis(im.affine)
            for k in range(truth.shape[axis]):
                t = np.take(truth, k, axis=axis)
                if t.any():
                    scores.append(per_slice[k])
                    failed.append(dice(np.take(pred, k, axis=axis), t) < 0.8)
    failed = np.asarray(failed)
    assert failed.sum() >= 5 and (~failed).sum() >= 5, (int(failed.sum()), len(failed))
    value = auroc(scores, failed)
    assert value >= AUROC_FLOOR, f"AUROC {value:.3f} < floor {AUROC_FLOOR} ({int(failed.sum())} of {len(failed)} failed)"
