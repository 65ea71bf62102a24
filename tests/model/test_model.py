import json
import shutil

import h5py
import numpy as np
import pytest

from pedgm_kit.exceptions import InputFileError, WeightsError
from pedgm_kit.model import (
    build_model,
    dice_coefficient,
    dice_loss,
    load_legacy_weights,
    load_model,
    read_metadata,
    save_legacy_weights,
)
from pedgm_kit.registry import fetch_group


@pytest.fixture(scope="module")
def challenge_path():
    return fetch_group("challenge")


@pytest.fixture(scope="module")
def challenge(challenge_path):
    return load_model(challenge_path)


def _sct_weight_names(path):
    names = set()
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda n, o: names.add(n) if isinstance(o, h5py.Dataset) else None)
    return names


def test_architecture_any_input_size():
    model = build_model(32)
    assert model.output_shape == (None, None, None, 1)
    x = np.zeros((1, 64, 48, 1), np.float32)
    assert model.predict_on_batch(x).shape == (1, 64, 48, 1)
    bns = [layer.name for layer in model.layers if layer.name.startswith("batch_normalization_")]
    assert len(bns) == 16
    assert build_model(64).count_params() > build_model(32).count_params()


def test_every_sct_weight_lands_in_one_model_weight(challenge, challenge_path):
    model, meta = challenge
    assert meta["filters"] == 32 and meta["mean_train"] == pytest.approx(449.5663)
    n_model = sum(int(np.prod(w.shape)) for w in model.weights)
    with h5py.File(challenge_path, "r") as h5:
        n_file = sum(int(np.prod(h5[n].shape)) for n in _sct_weight_names(challenge_path))
        kernel = np.asarray(h5["rate12_1/rate12_1/kernel:0"])
    assert n_model == n_file
    np.testing.assert_array_equal(np.asarray(model.get_layer("rate12_1").kernel), kernel)


def test_large_weights_load():
    model, meta = load_model("large")
    assert meta["filters"] == 64 and model.get_layer("conv2d_1").filters == 64


def test_wrong_filter_count_is_an_error(challenge_path):
    large = fetch_group("large")
    with pytest.raises(WeightsError, match=r"large_model.hdf5: weight .* has shape .*64.* model expects .*32"):
        load_legacy_weights(build_model(32), large)


def test_metadata_disagreeing_with_weights(tmp_path, challenge_path):
    shutil.copy(challenge_path, tmp_path / "w.hdf5")
    (tmp_path / "w.json").write_text(json.dumps({"filters": 64}))
    with pytest.raises(WeightsError, match="says filters=64 but the weights have 32"):
        read_metadata(tmp_path / "w.hdf5")


def test_truncated_weights(tmp_path, challenge_path):
    data = challenge_path.read_bytes()
    (tmp_path / "t.hdf5").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="t.hdf5: not a readable Keras HDF5 weights file"):
        load_model(tmp_path / "t.hdf5")


def test_missing_weights_file(tmp_path):
    with pytest.raises(InputFileError, match="No such file"):
        load_model(tmp_path / "none.hdf5")


def test_legacy_round_trip_identical(tmp_path, challenge, rng):
    model, meta = challenge
    out = save_legacy_weights(model, tmp_path / "copy.hdf5", metadata={k: meta[k] for k in ("mean_train", "std_train")})
    assert _sct_weight_names(out) >= _sct_weight_names(fetch_group("challenge"))
    saved_meta = json.loads((tmp_path / "copy.json").read_text())
    assert saved_meta["filters"] == 32 and saved_meta["mean_train"] == meta["mean_train"]
    again, _ = load_model(out)
    x = rng.normal(size=(2, 200, 200, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_on_batch(x), again.predict_on_batch(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.hdf5", "copy.json"]


def test_dice_loss_values():
    y = np.zeros((1, 4, 4, 1), np.float32)
    y[0, :2] = 1
    assert float(dice_coefficient(y, y)) == pytest.approx(1.0)
    assert float(dice_loss(y, 1 - y)) == pytest.approx(-1 / 17)
