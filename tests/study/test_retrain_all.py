"""`pedgm train --final retrain_all`: the variant trained once on all non-locked persons (issue 20).

A tiny cross-validation run made here: 3 folds of 6 persons (each person in two folds' train/val
splits, so the pooled windows must be de-duplicated), 48x48 windows the test makes, fold records
whose best epochs are 0, 2 and 1 (median 1), and 1 training epoch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pedgm_kit.cli import main
from pedgm_kit.deliver import median_epoch
from pedgm_kit.model_card import read_card, summary_line
from pedgm_kit.segment import EnsembleSegmenter, Segmenter
from pedgm_kit.segment.ensemble import load_segmenter
from pedgm_kit.train import TrainConfig
from pedgm_kit.weights import weights_path

PERSONS = [f"sub-{i}" for i in range(6)]
SLICES = 3  # windows per person
GROUPS = [PERSONS[0:2], PERSONS[2:4], PERSONS[4:6]]


def _arrays(persons, rng) -> dict:
    n = len(persons) * SLICES
    yy, xx = np.mgrid[:48, :48]
    images = rng.normal(0, 0.3, (n, 48, 48)).astype(np.float32)
    masks = np.zeros((n, 48, 48), np.uint8)
    for k in range(n):
        disc = (yy - 24) ** 2 + (xx - 24 - k % 5) ** 2 < 40
        masks[k][disc] = 1
        images[k][disc] += 1.5
    return {"images": images, "masks": masks,
            "scan_id": np.repeat([f"{p}_run-1_T2starw" for p in persons], SLICES),
            "person_id": np.repeat(persons, SLICES), "slice_index": np.tile(np.arange(SLICES, dtype=np.int32), len(persons)),
            "spacing_mm": np.full((n, 3), 0.25, np.float32)}


def make_tiny_cv_run(root, *, best_epochs=(0, 2, 1), threshold="loss", thresholds=(0.5, 0.5, 0.5)):
    """``<root>/data/data/fold-k/{train,val,test}.npz`` and ``<root>/train/fold-k/v/`` (challenge weights as
    each fold's best.hdf5, summary.json with the fold's settings, best epoch, threshold and per-person test Dice)."""
    from pedgm_kit.data_creation import save_npz

    rng = np.random.default_rng(0)
    source = weights_path("challenge")
    meta = json.loads(source.with_suffix(".json").read_text())
    config = asdict(TrainConfig(epochs=4, max_slices=0, batch_size=4, loss="dice_bce", threshold=threshold,
                                augment=False, sweep=True, seed=0))
    for k, test in enumerate(GROUPS, start=1):
        rest = [p for p in PERSONS if p not in test]
        data = root / "data" / "data" / f"fold-{k}"
        data.mkdir(parents=True)
        for split, persons in (("train", rest[:3]), ("val", rest[3:]), ("test", test)):
            save_npz(_arrays(persons, rng), data / f"{split}.npz")
        folder = root / "train" / f"fold-{k}" / "v"
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "best.hdf5")
        (folder / "best.json").write_text(json.dumps({**meta, "threshold": thresholds[k - 1], "variant": "v"}))
        (folder / "summary.json").write_text(json.dumps({
            "variant": "v", "config": config, "train_persons": rest[:3], "val_persons": rest[3:],
            "test_persons": test, "best_epoch": best_epochs[k - 1], "threshold": thresholds[k - 1],
            "threshold_rule": "chosen on validation" if threshold == "validation" else "fixed a priori by the loss",
            "test_dice": 0.7 + 0.05 * k, "test_dice_per_person": {p: 0.7 + 0.05 * k for p in test}}))
    params = root / "p.yaml"
    params.write_text(f"train:\n  output_dir: {root / 'train'}\n")
    return params


@given(st.lists(st.integers(0, 200), min_size=1, max_size=9))
def test_median_epoch_is_the_rounded_median(best):
    epochs, rule = median_epoch(best)
    assert abs(epochs - float(np.median(best))) <= 0.5 and epochs >= 0
    assert str(epochs) in rule and "median" in rule


def test_retrain_all_trains_once_on_every_non_locked_person(tmp_path, capsys):
    params = make_tiny_cv_run(tmp_path / "run")
    assert main(["train", "--params", str(params), "--final", "retrain_all", "--variant", "v"]) == 0
    final = tmp_path / "run" / "train" / "final" / "v"
    assert f"--model {final}" in capsys.readouterr().out
    assert sorted(p.name for p in final.iterdir()) == ["best.hdf5", "best.json", "model_card.json", "model_card.md",
                                                      "summary.json"]
    summary = json.loads((final / "summary.json").read_text())
    assert summary["train_persons"] == PERSONS and summary["epochs_run"] == 1 and summary["threshold"] == 0.5
    record = summary["final"]
    assert record["route"] == "retrain_all" and record["locked_persons"] == []
    assert record["n_slices"] == len(PERSONS) * SLICES  # every (scan, slice) once, though each person is in 2 folds
    assert "0, 2, 1 = 1" in record["epochs_rule"] and "fixed a priori" in record["threshold_rule"]
    card = read_card(final)
    assert card["final"]["epochs"] == 1 and card["training"]["persons"]["count"] == 6
    assert card["results"]["cv"]["test_dice_mean"] == pytest.approx(np.mean([0.75, 0.75, 0.8, 0.8, 0.85, 0.85]))
    assert all(str(final) in w["path"] and ".part" not in w["path"] for w in card["weights"])
    md = (final / "model_card.md").read_text()
    assert "epochs: 1 (the median of the folds' best" in md and "threshold rule:" in md
    assert "no held-out persons of its own" in summary_line(card)
    model = load_segmenter(final)  # one model, at the variant's threshold
    assert isinstance(model, Segmenter) and not isinstance(model, EnsembleSegmenter)
    assert model.metadata["threshold"] == 0.5
    # a second call refuses to replace it; --overwrite replaces it
    assert main(["train", "--params", str(params), "--final", "retrain_all", "--variant", "v"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_retrain_all_with_a_validation_threshold_and_zero_epochs(tmp_path):
    """Thresholds chosen on validation: their median (none can be chosen again); best epochs 0, 0, 1: no
    training at all, the initial weights are the model."""
    import h5py

    params = make_tiny_cv_run(tmp_path / "run", best_epochs=(0, 0, 1), threshold="validation",
                              thresholds=(0.3, 0.5, 0.9))
    params.write_text(params.read_text() + "pipeline:\n  final: retrain_all\n")  # the route from the parameter file
    assert main(["train", "--params", str(params), "--final", "--variant", "v"]) == 0
    final = tmp_path / "run" / "train" / "final" / "v"
    summary = json.loads((final / "summary.json").read_text())
    assert summary["threshold"] == 0.5 and "median of the members' thresholds" in summary["threshold_rule"]
    assert summary["epochs_run"] == 0
    with h5py.File(final / "best.hdf5") as new, h5py.File(weights_path("challenge")) as old:
        key = "rate6_2/rate6_2/kernel:0"
        np.testing.assert_array_equal(new[key][...], old[key][...])


def test_retrain_all_without_fold_arrays_is_one_line_and_leaves_nothing(tmp_path, capsys):
    params = make_tiny_cv_run(tmp_path / "run")
    (tmp_path / "run" / "data" / "data" / "fold-2" / "val.npz").unlink()
    assert main(["train", "--params", str(params), "--final", "retrain_all", "--variant", "v"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fold-2/val.npz" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "train" / "final").exists() or not list((tmp_path / "run" / "train" / "final").iterdir())
    assert main(["train", "--params", str(params), "--final", "bagging", "--variant", "v"]) == 2


def test_retrain_all_never_trains_on_a_locked_person(tmp_path, capsys):
    """The manifest's locked test persons are named in the card and refused if they reached the fold arrays."""
    params = make_tiny_cv_run(tmp_path / "run")
    manifest = tmp_path / "run" / "data" / "manifest.json"
    record = {"splits": {"train": [], "val": [], "test": []}, "locked_test": {"persons": ["sub-9"], "scans": ["s9"]}}
    manifest.write_text(json.dumps(record))
    from pedgm_kit.deliver import _pooled_arrays

    _, persons, locked = _pooled_arrays(tmp_path / "run" / "data" / "data", [1, 2, 3])
    assert persons == PERSONS and locked == ["sub-9"]
    record["locked_test"]["persons"] = ["sub-3"]
    manifest.write_text(json.dumps(record))
    assert main(["train", "--params", str(params), "--final", "retrain_all", "--variant", "v"]) == 2
    assert "locked test person(s) sub-3 are in the fold arrays" in capsys.readouterr().err
