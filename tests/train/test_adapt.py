"""Proof that fine-tuning adapts (issue 12): simulated shifts, AdaBN, Dice + BCE, determinism.

Everything shifted here is SIMULATED (a contrast inversion or shrunken anatomy of real adult scans),
never pediatric data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pedgm_kit.shift import Shift, apply_shift, parse_shift, simulate_dataset

REPO = Path(__file__).resolve().parents[2]

# The shift test's budget, the one benchmarks/adapt_recipes.py chose the recipe at.
BUDGET = {"max_slices": 48, "epochs": 9, "batch_size": 4, "learning_rate": 1e-3}
BEST_RECIPE = "dice_bce"
MARGIN = 0.1  # the least gain over the untrained baseline the test accepts
#: what the shift test measured (2026-12-07, this 2-core CPU, 691 s beside a CI run): held-out Dice of test
#: person sub-9669, whole scans, each model at its own threshold (Dice + BCE 0.5, baseline and scratch 0.999)
MEASURED = {"baseline": 0.128, "dice_bce": 0.311, "dice_bce_best_val": 0.623, "scratch": 0.206}


# ------------------------------------------------------------------------------------- the shifts


def _blob_scan(shape=(40, 40, 4)):
    data = np.zeros(shape, np.float32) + 10.0
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 8 ** 2
    data[disc] = 100.0
    affine = np.diag([0.5, 0.5, 5.0, 1.0])
    mask = np.repeat(disc[..., None], shape[2], axis=2).astype(np.uint8)
    return nib.Nifti1Image(data, affine), nib.Nifti1Image(mask, affine)


def test_parse_shift():
    assert parse_shift("") is None
    assert parse_shift("invert") == Shift("invert", 1.0)
    assert parse_shift("scale:0.7") == Shift("scale", 0.7)
    assert parse_shift("gamma:0.4") == Shift("gamma", 0.4)
    assert Shift("gamma", 0.4).name == "gamma-0.4" and "simulated" in Shift("gamma", 0.4).label
    for bad in ("scale:1", "scale:0.1", "flip", "scale:x", "gamma:1", "gamma:9", "gamma:"):
        with pytest.raises(Exception, match="shift must be"):
            parse_shift(bad)


def test_invert_keeps_range_and_masks():
    img, mask = _blob_scan()
    out, masks = apply_shift(img, {"gm": mask}, Shift("invert", 1.0))
    data = np.asanyarray(out.dataobj)
    assert data.min() == 10.0 and data.max() == 100.0
    assert np.array_equal(data, 110.0 - np.asanyarray(img.dataobj))
    assert np.array_equal(np.asanyarray(masks["gm"].dataobj), np.asanyarray(mask.dataobj))
    assert np.array_equal(out.affine, img.affine) and out.shape == img.shape


def test_gamma_changes_contrast_ratio_keeps_masks_and_is_seeded():
    img, mask = _blob_scan()
    out, masks = apply_shift(img, {"gm": mask}, Shift("gamma", 0.4), seed=3)
    again, _ = apply_shift(img, {"gm": mask}, Shift("gamma", 0.4), seed=3)
    other, _ = apply_shift(img, {"gm": mask}, Shift("gamma", 0.4), seed=4)
    data, disc = np.asanyarray(out.dataobj), np.asanyarray(mask.dataobj) > 0
    assert np.array_equal(data, np.asanyarray(again.dataobj)) and not np.array_equal(data, np.asanyarray(other.dataobj))
    assert np.array_equal(np.asanyarray(masks["gm"].dataobj), np.asanyarray(mask.dataobj))
    assert data[disc].mean() > data[~disc].mean()  # not inverted: the bright disc stays brighter
    noise = data[~disc].std() / (100.0 - 10.0)
    assert 0.03 < noise < 0.07  # 5% of the robust range


def test_scale_shrinks_anatomy_in_plane_only():
    img, mask = _blob_scan()
    out, masks = apply_shift(img, {"gm": mask}, Shift("scale", 0.7))
    before = np.asanyarray(mask.dataobj).sum(axis=(0, 1))
    after = np.asanyarray(masks["gm"].dataobj).sum(axis=(0, 1))
    assert out.shape == img.shape and np.array_equal(out.affine, img.affine)
    assert np.allclose(after / before, 0.49, atol=0.06)  # area x 0.7^2, every slice (not along z)
    assert set(np.unique(np.asanyarray(masks["gm"].dataobj))) <= {0, 1}


def test_simulated_dataset_is_named_simulated(gm_challenge, tmp_path):
    from pedgm_kit.datasets import discover_bids

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    one = type(index)(scans=index.scans[:1], unlabelled=[], root=index.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = simulate_dataset(one, tmp_path / "simulated-invert", Shift("invert", 1.0))
    note = (tmp_path / "simulated-invert" / "SIMULATED.txt").read_text()
    assert note.startswith("SIMULATED DATA") and "not real pediatric data" in note
    assert len(out.scans) == 1
    src, dst = nib.load(index.scans[0].image), nib.load(out.scans[0].image)
    assert dst.shape == src.shape and np.allclose(dst.affine, src.affine)


# --------------------------------------------------------------------------- AdaBN and the losses


def test_adabn_moves_only_batchnorm_statistics(rng):
    from pedgm_kit.model import build_model
    from pedgm_kit.train import adapt_batchnorm

    model = build_model(4, input_shape=(64, 64, 1))
    images = rng.normal(3.0, 2.0, size=(12, 64, 64, 1)).astype(np.float32)
    weights = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    momenta = [layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    batches = adapt_batchnorm(model, images, batch_size=4)
    assert batches == 3
    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    # the first BatchNorm's moving mean is now the mean, over all images, of its input
    upstream = keras.Model(model.inputs, model.get_layer(index=model.layers.index(norm) - 1).output)
    expected = keras.ops.convert_to_numpy(upstream(images)).mean(axis=(0, 1, 2))
    assert np.allclose(keras.ops.convert_to_numpy(norm.moving_mean), expected, rtol=1e-4, atol=1e-4)
    for w in model.weights:
        changed = not np.array_equal(weights[w.path], keras.ops.convert_to_numpy(w))
        assert changed == ("moving_" in w.path), w.path
    assert momenta == [layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_dice_bce_has_gradient_where_dice_saturates():
    """A network sure of the wrong answer: Dice's gradient vanishes, Dice + BCE's does not."""
    import tensorflow as tf

    from pedgm_kit.model import dice_bce_loss, dice_loss

    truth = np.zeros((1, 8, 8, 1), np.float32)
    truth[0, 2:6, 2:6] = 1.0
    logits = tf.Variable(np.where(truth > 0, -12.0, 12.0).astype(np.float32))  # saturated, inverted
    grads = {}
    for name, loss in (("dice", dice_loss), ("dice_bce", dice_bce_loss)):
        with tf.GradientTape() as tape:
            value = loss(truth, tf.sigmoid(logits))
        grads[name] = float(tf.reduce_max(tf.abs(tape.gradient(value, logits))))
    assert grads["dice"] < 1e-4 and grads["dice_bce"] > 1e3 * grads["dice"]


# ----------------------------------------------------- the shift test: fine-tuning adapts at all

#: The recipe was chosen under the SIMULATED inversion on the demo split (split seed 0, test person
#: sub-9584; benchmarks/adapt_recipes.py). It is tested here where it was not tuned: another split seed
#: (test person sub-9669; sub-9584 moves to validation) and another shift family (a SIMULATED gamma
#: contrast change with noise).
SHIFT_TEST = {"shift": "gamma:0.4", "split_seed": 1}


@pytest.fixture(scope="module")
def shifted_split(gm_challenge, tmp_path_factory):
    """The sample data under SHIFT_TEST's SIMULATED shift, prepared as notebooks 01-02 do (every window
    centred by the model, never by a mask), split by person with SHIFT_TEST's seed."""
    from pedgm_kit.data_creation import write_arrays
    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.preprocess import preprocess_scan, save_preprocessed
    from pedgm_kit.splits import auto_split

    shift = parse_shift(SHIFT_TEST["shift"])
    root = tmp_path_factory.mktemp(f"simulated-{shift.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = simulate_dataset(discover_bids(gm_challenge), root / f"simulated-{shift.name}", shift)
    splits = auto_split(index, seed=SHIFT_TEST["split_seed"])
    rows = []
    (root / "pre").mkdir()
    for scan in index.scans:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pre = preprocess_scan(scan)
            paths = save_preprocessed(pre, root / "pre")
        rows.append({"scan_id": scan.scan_id, "person_id": scan.person_id, "image": paths["image"].name,
                     "centring": pre.centring, "source_image": str(scan.image), "source_gm_mask": str(scan.gm_mask)})
    write_arrays(pd.DataFrame(rows), splits, root=root / "pre", data_dir=root / "data")
    return root / "data", splits


_RECIPE_CHILD = """
import json, sys
from pedgm_kit.train import RECIPES, TrainConfig, train_variant
recipe, data, out, budget = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
settings = {} if recipe == "scratch" else RECIPES[recipe]
config = TrainConfig(pretrained=recipe != "scratch", augment=False, sweep=True, seed=0, **budget, **settings)
summary = train_variant(data, out, config, verbose=0, export_onnx=False)
print("json:" + json.dumps({k: summary[k] for k in ("test_dice", "threshold", "baseline_test_dice", "best_val_dice",
                                                     "best_epoch")}))
"""


def _train(recipe, data, out):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _RECIPE_CHILD, recipe, str(data), str(out), json.dumps(BUDGET)],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([r for r in proc.stdout.splitlines() if r.startswith("json:")][-1][5:])


@pytest.mark.slow
def test_best_recipe_adapts_where_it_was_not_tuned(shifted_split, tmp_path):
    """Under SHIFT_TEST's SIMULATED gamma contrast change, on a split the recipe was not chosen on, the
    best recipe fine-tunes the pretrained network to a held-out Dice above the untrained baseline and
    above training from scratch at the same budget (48 slices, 9 epochs, batch 4, Adam 1e-3), each
    model at its own threshold, scored on whole test scans. Measured values in MEASURED above."""
    data, splits = shifted_split
    assert {s.split("_")[0] for s in splits["test"]} == {"sub-9669"}  # not the demo split's test person
    best = _train(BEST_RECIPE, data, tmp_path / "best")
    scratch = _train("scratch", data, tmp_path / "scratch")
    baseline = best["baseline_test_dice"]
    print("shift test:", json.dumps({"best": best, "scratch": scratch}))  # pytest -s shows what MEASURED records
    assert baseline < 0.5  # the adult network degrades under the simulated contrast change
    assert best["test_dice"] >= baseline + MARGIN, (best, scratch)
    assert best["test_dice"] > scratch["test_dice"], (best, scratch)
