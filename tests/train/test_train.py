import json
import subprocess

import keras
import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.cli import main
from pedgm_kit.exceptions import ParameterError
from pedgm_kit.model import export_onnx, load_model
from pedgm_kit.runner import slurm_script
from pedgm_kit.train import TrainConfig, early_stop_epoch, load_arrays, train_variant


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.first_epoch = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_early_stop_epoch():
    assert early_stop_epoch([0.5, 0.6, 0.6005, 0.59, 0.58], min_delta=0.001, patience=2) == (2, 4)
    assert early_stop_epoch([0.1, 0.2, 0.3], patience=5) == (3, 3)


def test_config_validation():
    with pytest.raises(ParameterError, match="freeze='all'"):
        TrainConfig(freeze="all")
    assert TrainConfig(pretrained=False, augment=True).variant == "scratch_aug"


@pytest.mark.slow
def test_train_writes_files_and_weights_segment(tiny_data, tmp_path, t2s_dir, capsys):
    config = TrainConfig(epochs=2, max_slices=4, seed=0, freeze="early")
    summary = train_variant(tiny_data, tmp_path, config, verbose=0)
    folder = tmp_path / "pretrained_aug"
    for name in ("history.csv", "learning_curve.png", "best.hdf5", "best.json", "best.onnx", "summary.json"):
        assert (folder / name).is_file(), name
    assert summary["epochs_run"] == 2 and 1 <= summary["best_epoch"] <= 2
    # epoch 0 is the pretrained start, scored like the baseline (same weights, same threshold, same persons)
    assert summary["initial_val_dice"] == pytest.approx(summary["baseline_val_dice"], abs=1e-9)
    assert summary["threshold"] == 0.999 and summary["threshold_rule"].startswith("fixed a priori by the loss")
    history = (folder / "history.csv").read_text().splitlines()[0].split(",")
    assert {"val_dice", "val_dice_hard", "val_threshold"} <= set(history)
    assert summary["train_slices_per_s"] > 0 and summary["device"].startswith("tensorflow")
    assert json.loads((folder / "best.json").read_text())["filters"] == 32
    # the frozen early blocks did not move
    trained, _ = load_model(folder / "best.hdf5")
    base, _ = load_model("challenge")
    np.testing.assert_array_equal(trained.get_layer("conv2d_1").kernel.numpy(), base.get_layer("conv2d_1").kernel.numpy())
    assert not np.array_equal(trained.get_layer("amort").kernel.numpy(), base.get_layer("amort").kernel.numpy())
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(t2s_dir / "t2s.nii.gz"), "-o", str(out), "--model", str(folder / "best.hdf5")]) == 0
    assert nib.load(out).shape == nib.load(t2s_dir / "t2s.nii.gz").shape


@pytest.mark.slow
def test_interrupted_run_resumes(tiny_data, tmp_path):
    config = TrainConfig(pretrained=False, augment=False, epochs=3, max_slices=4, sweep=True)
    with pytest.raises(KeyboardInterrupt):
        train_variant(tiny_data, tmp_path, config, verbose=0, callbacks=[_StopAfter(2)])
    assert (tmp_path / "scratch_noaug" / "backup").exists()
    probe = _StopAfter(99)
    summary = train_variant(tiny_data, tmp_path, config, verbose=0, callbacks=[probe])
    assert probe.first_epoch == 2  # resumed after the two completed epochs, not from zero
    history = (tmp_path / "scratch_noaug" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0.0", "1.0", "2.0", "3.0"]
    assert summary["epochs_run"] == 3


@pytest.mark.slow
def test_onnx_export_matches_keras(tmp_path, tiny_data):
    import onnxruntime as ort

    model, _ = load_model("challenge", input_shape=(200, 200, 1))
    path = export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_1"]
    assert [o.name for o in session.get_outputs()] == ["predictions"]
    images, _ = load_arrays(tiny_data, "val", max_slices=4)
    np.testing.assert_allclose(session.run(None, {"input_1": images})[0], model.predict_on_batch(images), atol=1e-4)


def test_slurm_script_is_valid_bash(tmp_path):
    script = slurm_script("parameters/demo.yaml", gpus=2, time="12:00:00", mem="64G", partition="gpu")
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert "#SBATCH --array=0-4" in script and "#SBATCH --gres=gpu:2" in script
    # the array index picks each run of the plan (four variants and pretrained_adapted) in turn
    tasks = script.split("# tasks: ")[1].splitlines()[0].split("; ")
    assert [t.split(" = ")[0] for t in tasks] == ["0", "1", "2", "3", "4"]
    assert [t.split(" = ")[1] for t in tasks] == [
        "pretrained_aug", "pretrained_noaug", "scratch_aug", "scratch_noaug", "pretrained_adapted"
    ]
    assert 'pedgm train --params parameters/demo.yaml --task "$SLURM_ARRAY_TASK_ID"' in script


def test_slurm_array_spec():
    from pedgm_kit.runner import _array_spec

    assert _array_spec([0, 1, 2, 3]) == "0-3"
    assert _array_spec([0, 2, 3, 4, 7]) == "0,2-4,7"
    assert _array_spec([5]) == "5"


def test_augmented_tf_pipeline_changes_between_epochs(rng):
    from pedgm_kit.train import make_dataset

    images = rng.normal(size=(4, 64, 64, 1)).astype(np.float32)
    masks = (images > 1).astype(np.float32)
    data = make_dataset(images, masks, batch_size=4, augment=True, seed=0, shuffle=False, backend="tensorflow")
    first = [np.asarray(x) for x, _ in data]
    second = [np.asarray(x) for x, _ in data]
    assert not np.array_equal(first[0], second[0])
    again = make_dataset(images, masks, batch_size=4, augment=True, seed=0, shuffle=False, backend="tensorflow")
    np.testing.assert_array_equal(first[0], np.asarray(next(iter(again))[0]))  # seeded


@pytest.mark.slow
def test_rerun_into_finished_folder_starts_afresh(tiny_data, tmp_path):
    config = TrainConfig(pretrained=True, augment=False, epochs=1, max_slices=4)
    train_variant(tiny_data, tmp_path, config, verbose=0)
    probe = _StopAfter(99)
    summary = train_variant(tiny_data, tmp_path, config, verbose=0, callbacks=[probe])
    assert probe.first_epoch == 0
    history = (tmp_path / "pretrained_noaug" / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header, epoch 0, epoch 1: the old run's rows are gone
    best = json.loads((tmp_path / "pretrained_noaug" / "best.json").read_text())
    assert best["epoch"] == summary["best_epoch"] in (0, 1)
