"""The run's prediction cache: a (model, scan) pair is segmented once, a changed input is a miss."""

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from pedgm_kit import evaluate as ev
from pedgm_kit.datasets import discover_bids
from pedgm_kit.evaluate.cache import PredictionCache, prediction_cache
from pedgm_kit.io import open_nifti
from pedgm_kit.weights import weights_path


@pytest.fixture(scope="module")
def index(gm_challenge):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover_bids(gm_challenge)


def test_a_cached_prediction_scores_as_a_fresh_one(index, tmp_path, monkeypatch):
    scan = next(s for s in index.scans if s.gm_mask)
    weights = tmp_path / "w" / "model.hdf5"
    weights.parent.mkdir()
    shutil.copy(weights_path("challenge"), weights)
    shutil.copy(weights_path("challenge").with_suffix(".json"), weights.with_suffix(".json"))
    models = {"m": str(weights)}
    fresh = ev.evaluate_models(index, models, scans=[scan.scan_id], output_dir=tmp_path / "a", seed=0, progress=False)
    with prediction_cache(tmp_path / "cache"):
        cold = ev.evaluate_models(index, models, scans=[scan.scan_id], output_dir=tmp_path / "b", seed=0,
                                  progress=False)
        # the weights file is gone from where a second segmentation would load it: only the cache can answer
        hidden = weights.with_name("hidden.hdf5")
        weights.rename(hidden)
        with pytest.raises(Exception):
            ev.evaluate_models(index, models, scans=[scan.scan_id], output_dir=tmp_path / "c", seed=0, progress=False)
        hidden.rename(weights)
        warm = ev.evaluate_models(index, models, scans=[scan.scan_id], output_dir=tmp_path / "c", seed=0,
                                  progress=False)
    pd.testing.assert_frame_equal(fresh, cold)
    pd.testing.assert_frame_equal(fresh, warm)
    a = open_nifti(tmp_path / "a" / "pred" / "m" / f"{scan.scan_id}.nii.gz")
    c = open_nifti(tmp_path / "c" / "pred" / "m" / f"{scan.scan_id}.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(c.dataobj))
    assert len(list((tmp_path / "cache").rglob("*.nii.gz"))) == 1


def test_the_key_follows_every_input(index, tmp_path):
    scans = [s for s in index.scans if s.gm_mask][:2]
    weights = tmp_path / "model.hdf5"
    shutil.copy(weights_path("challenge"), weights)
    meta = weights.with_suffix(".json")
    shutil.copy(weights_path("challenge").with_suffix(".json"), meta)
    cache = PredictionCache(tmp_path / "cache")
    base = cache.key(str(weights), scans[0].image, cord_scale=None, tta=False, seed=0)
    assert base == cache.key(str(weights), scans[0].image, cord_scale=None, tta=False, seed=5)  # seed: TTA only
    changed = {
        cache.key(str(weights), scans[1].image, cord_scale=None, tta=False, seed=0),
        cache.key(str(weights), scans[0].image, cord_scale="auto", tta=False, seed=0),
        cache.key(str(weights), scans[0].image, cord_scale=None, tta=True, seed=0),
        cache.key("large", scans[0].image, cord_scale=None, tta=False, seed=0),
    }
    # content-addressed: the built-in of the same bytes is the same model
    assert cache.key("challenge", scans[0].image, cord_scale=None, tta=False, seed=0) == base
    assert base not in changed and len(changed) == 4
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "threshold": 0.5}))  # another threshold
    assert cache.key(str(weights), scans[0].image, cord_scale=None, tta=False, seed=0) != base
    assert cache.key(str(tmp_path / "missing.hdf5"), scans[0].image, cord_scale=None, tta=False, seed=0) is None
