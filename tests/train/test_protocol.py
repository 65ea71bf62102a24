"""The training and evaluation protocol (issue 19): selection on hard validation Dice pooled per person,
no validation/test window positioned by a manual mask, thresholds fixed a priori or chosen on validation,
one scoring path for every reported test number, and determinism that holds (and can be switched off)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pedgm_kit.data_creation import check_centring, read_scans, write_arrays, write_manifest
from pedgm_kit.exceptions import PedgmError
from pedgm_kit.preprocess import MASK_CENTRINGS, preprocess_scan, save_preprocessed
from pedgm_kit.train import TrainConfig, a_priori_threshold, dice_scores, load_arrays, train_variant

REPO = Path(__file__).resolve().parents[2]

#: one person per role, two sessions of sub-10062 in the test split (a person, not a scan, is the unit)
ROLES = {"train": ["sub-9418_run-1_T2starw"], "val": ["sub-9709Ses1_run-1_T2starw"],
         "test": ["sub-10062Ses1_run-1_T2starw", "sub-10062Ses2_run-1_T2starw"]}


@pytest.fixture(scope="module")
def index(gm_challenge):
    from pedgm_kit.datasets import discover_bids

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover_bids(gm_challenge)


@pytest.fixture(scope="module")
def protocol_data(index, tmp_path_factory):
    """Notebook 01 + 02's path on four real scans: model-centred windows, arrays, scans.json, manifest."""
    root = tmp_path_factory.mktemp("protocol")
    (root / "pre").mkdir()
    rows = []
    for ids in ROLES.values():
        for scan_id in ids:
            scan = index[scan_id]
            pre = preprocess_scan(scan)
            paths = save_preprocessed(pre, root / "pre")
            rows.append({"scan_id": scan_id, "person_id": scan.person_id, "image": paths["image"].name,
                         "gm_mask": paths["gm_mask"].name, "centring": pre.centring, "cord_scale_rule": "",
                         "source_image": str(scan.image), "source_gm_mask": str(scan.gm_mask)})
    frame = pd.DataFrame(rows)
    counts = write_arrays(frame, ROLES, root=root / "pre", data_dir=root / "data", keep_empty_slices=False)
    write_manifest(root / "manifest.json", splits=ROLES, counts=counts, data_dir=root / "data", frame=frame,
                   preprocessed_dir=root / "pre", parameters={"seed": 0})
    return root, frame


# ------------------------------------------------------------- 0. selection on hard Dice per person


def _empty_model():
    """The challenge network with its output bias pushed far down: a real model that predicts nothing."""
    from pedgm_kit.model import load_model

    model, _ = load_model("challenge", input_shape=(200, 200, 1))
    layer = model.get_layer("predictions")
    layer.bias.assign(np.full(tuple(layer.bias.shape), -1e4, dtype=np.float32))
    return model


def test_a_model_that_predicts_nothing_scores_zero(tiny_data):
    images, masks = load_arrays(tiny_data, "val", max_slices=4)
    assert masks.any(axis=(1, 2, 3)).all()
    # half the batches without GM: the smoothed soft Dice rewards an empty prediction there
    blank = np.zeros_like(masks)
    x, y = np.concatenate([images, images]), np.concatenate([masks, blank])
    persons = np.array(["a"] * len(images) + ["b"] * len(images))
    model = _empty_model()
    assert float(np.asarray(model.predict_on_batch(images)).max()) < 1e-6
    scores = dice_scores(model, x, y, thresholds=(0.5, 0.999), persons=persons, batch_size=4)
    assert scores["soft"] > 0.45  # the old selection metric: about 0.5 for predicting nothing
    assert scores["hard_0.5"] == 0.0 and scores["hard_0.999"] == 0.0  # person a: GM, none found; b: no GM, left out


def test_selection_follows_hard_dice_not_soft(tmp_path):
    """Issue 19's fold: soft val Dice 0.334 at epoch 0 (empty output), hard 0 -> 0.14, 0.20, 0.25: epoch 3 wins."""
    from pedgm_kit.model import build_model
    from pedgm_kit.train.records import _Recorder

    model = build_model(8, input_shape=(32, 32, 1))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    initial = {"epoch": 0.0, "loss": np.nan, "dice": np.nan, "val_loss": 0.5, "val_dice": 0.334,
               "val_dice_hard": 0.0, "val_threshold": 0.5, "learning_rate": np.nan}
    recorder = _Recorder(tmp_path, {"filters": 8}, initial, 0.001, initial_is_candidate=True)
    recorder.set_model(model)
    recorder.on_train_begin()
    for epoch, (soft, hard) in enumerate([(0.12, 0.14), (0.15, 0.20), (0.2, 0.25)]):
        recorder.on_epoch_end(epoch, {"loss": 1.0, "dice": 0.27, "val_loss": 0.4, "val_dice": soft,
                                      "val_dice_hard": hard, "val_threshold": 0.5})
    assert recorder.best_epoch == 3 and recorder.best == 0.25
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 3
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["val_dice_hard"]) == [0.0, 0.14, 0.20, 0.25]


# ------------------------------------------------------------------ 1. no window placed by its mask


def test_no_val_or_test_scan_is_centred_on_a_mask(protocol_data, index):
    root, frame = protocol_data
    manifest = json.loads((root / "manifest.json").read_text())
    records = read_scans(root / "data")
    assert {r["split"] for r in records} == {"train", "val", "test"}
    for record in records:
        assert record["centring"] not in MASK_CENTRINGS, record
        assert manifest["centring"][record["scan_id"]] == record["centring"] == "model"
    # a mask-centred scan (allowed for training only) is refused in a validation or test split
    mask_centred = preprocess_scan(index[ROLES["val"][0]], centre_on="mask")
    assert mask_centred.centring in MASK_CENTRINGS
    bad = frame.assign(centring=["model", mask_centred.centring, "model", "model"])
    with pytest.raises(PedgmError, match=rf"val split: scan\(s\) {ROLES['val'][0]} \(cord mask\) were centred on"):
        check_centring(bad, ROLES)
    check_centring(bad, {"train": ROLES["val"], "test": ROLES["test"]})  # as training data it is fine
    with pytest.raises(PedgmError, match="centre_on must be one of 'model', 'mask'; got 'gm'"):
        preprocess_scan(index[ROLES["val"][0]], centre_on="gm")


# ------------------------------------------------- 2 + 3. thresholds, and one scoring path for tests


def test_threshold_rules_are_fixed_before_training():
    assert a_priori_threshold("dice_bce", 0.999)[0] == 0.5
    assert a_priori_threshold("dice", 0.999)[0] == 0.999
    with pytest.raises(Exception, match="threshold='test'"):
        TrainConfig(threshold="test")


def test_no_code_compares_a_threshold_to_a_literal():
    pattern = re.compile(r"threshold\w*\s*[=!<>]=\s*\d")
    for name in ("pedgm_kit/evaluate/folds.py", "pedgm_kit/train/records.py", "pedgm_kit/train/loop.py",
                 "pedgm_kit/evaluate/scoring.py"):
        text = (REPO / name).read_text()
        assert not pattern.search(text), (name, pattern.search(text))
    assert "fold-1 test" not in (REPO / "pedgm_kit/train/loop.py").read_text()


@pytest.mark.slow
def test_summary_test_dice_is_the_evaluations_score(protocol_data, index, tmp_path):
    """summary.json's test_dice (threshold chosen on validation) = notebook 05's scoring of the same model
    on the same persons: full scans, per person (the two sessions of sub-10062 count once)."""
    from pedgm_kit import evaluate as ev
    from pedgm_kit.evaluate.scoring import mean_over_persons, person_scores

    root, _ = protocol_data
    config = TrainConfig(pretrained=True, augment=False, epochs=1, max_slices=4, sweep=True, threshold="validation")
    summary = train_variant(root / "data", tmp_path / "train", config, verbose=0, export_onnx=False)
    folder = tmp_path / "train" / summary["variant"]
    best = json.loads((folder / "best.json").read_text())
    assert best["threshold"] == summary["threshold"] and summary["threshold_rule"].startswith("chosen on validation")
    history = pd.read_csv(folder / "history.csv")
    assert summary["best_val_dice"] == pytest.approx(history["val_dice_hard"].max())
    assert summary["test_persons"] == ["sub-10062"]
    # notebook 05's cell: evaluate_models on the test scans, then the per-person aggregation
    tidy = ev.evaluate_models(index, {"model": folder / "best.hdf5", "challenge": "challenge"}, scans=ROLES["test"],
                              output_dir=tmp_path / "evaluation", seed=0, progress=False)
    means = mean_over_persons(tidy)
    assert summary["test_dice"] == means["model"]
    assert summary["baseline_test_dice"] == means["challenge"]
    per = person_scores(tidy)
    assert set(per["n_scans"]) == {2} and len(per) == 2  # one row per model and person


# --------------------------------------------------------------------------------- 13. determinism

_TRAIN_CHILD = """
import sys
from pedgm_kit.train import TrainConfig, train_variant
config = TrainConfig(pretrained=True, augment=True, epochs=1, sweep=True, max_slices=8, seed=5, batch_size=4)
train_variant(sys.argv[1], sys.argv[2], config, verbose=0, export_onnx=False)
"""

_THREADS_CHILD = """
import sys
import tensorflow as tf
from pedgm_kit.train import set_determinism
set_determinism(0, deterministic=sys.argv[1] == "1")
print("threads:", tf.config.threading.get_inter_op_parallelism_threads())
"""


def _child_env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_NUM_INTEROP_THREADS", None)
    return env


def test_nondeterministic_runs_keep_the_default_thread_pool():
    out = {}
    for flag in ("1", "0"):
        proc = subprocess.run([sys.executable, "-c", _THREADS_CHILD, flag], env=_child_env(), capture_output=True,
                              text=True, timeout=300, check=True)
        out[flag] = [line for line in proc.stdout.splitlines() if line.startswith("threads:")][-1]
    assert out == {"1": "threads: 1", "0": "threads: 0"}  # 0: TensorFlow's own choice


@pytest.mark.slow
def test_three_pairs_of_runs_write_identical_history(tiny_data, tmp_path):
    """Deterministic by default: three more processes with the same seed each write the first one's history.csv."""
    histories = []
    for k in range(4):
        out = tmp_path / f"run{k}"
        subprocess.run([sys.executable, "-c", _TRAIN_CHILD, str(tiny_data), str(out)], check=True, env=_child_env(),
                       capture_output=True, text=True, timeout=900)
        (history,) = out.glob("*/history.csv")
        histories.append(history.read_bytes())
    assert all(h == histories[0] for h in histories[1:])
    rows = pd.read_csv(history)
    assert len(rows) == 2 and rows["val_dice_hard"].notna().all()  # epoch 0 (the start) and one epoch


def test_trained_models_need_the_manifests_split():
    from pedgm_kit.evaluate.scoring import check_split_source
    from pedgm_kit.exceptions import ParameterError

    check_split_source({"challenge": "challenge", "large": "large"}, split="test", split_manifest="")  # pretrained only
    check_split_source({"a": "train/a/best.hdf5"}, split="test", split_manifest="data/manifest.json")
    with pytest.raises(ParameterError, match=r"split_manifest is empty: trained models \(train/a/best.hdf5\)"):
        check_split_source({"challenge": "challenge", "a": "train/a/best.hdf5"}, split="test", split_manifest="")


def test_fold_table_averages_persons_not_scans():
    from pedgm_kit.evaluate import per_fold_table

    rows = [("m", "s1", "p1", 1, 0.9), ("m", "s2", "p1", 1, 0.7), ("m", "s3", "p2", 1, 0.2), ("m", "s4", "p3", 2, 0.5)]
    tidy = pd.DataFrame([{"model": m, "scan": s, "person": p, "fold": f, "level": "scan", "slice": pd.NA,
                          "metric": "DSC", "value": v} for m, s, p, f, v in rows])
    table = per_fold_table(tidy).iloc[0]
    assert table["fold 1"] == pytest.approx((0.8 + 0.2) / 2)  # p1's two sessions count once
    assert table["fold 2"] == 0.5 and table["n_persons"] == 3 and table["n_scans"] == 4
