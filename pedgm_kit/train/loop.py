"""Training one variant: build, load the pretrained weights, fit with early stopping, export."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._backend import keras
from ..augment import AugmentConfig
from ..exceptions import ParameterError
from ..io import write_json
from ..model import (
    build_model,
    dice_coefficient,
    dice_loss,
    export_onnx,
    load_legacy_weights,
)
from ..weights import read_metadata, weights_path
from .config import TrainConfig
from .data import load_arrays, make_dataset
from .records import _device, _Recorder, _soft_dice, hard_dice, plot_learning_curve

__all__ = ["train_variant"]

_EARLY_LAYERS = ("conv2d_1", "conv2d_2", "rate2_1", "rate2_2") + tuple(f"batch_normalization_{i}" for i in range(1, 5))


def _build(config: TrainConfig, filters: int, shape: tuple):
    previous = keras.mixed_precision.dtype_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        strategy = None
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if len(tf.config.list_physical_devices("GPU")) > 1:
                strategy = tf.distribute.MirroredStrategy()
        if strategy is not None:
            with strategy.scope():
                return _compiled(config, filters, shape)
        return _compiled(config, filters, shape)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def _compiled(config: TrainConfig, filters: int, shape: tuple):
    model = build_model(filters, input_shape=shape)
    if config.pretrained:
        load_legacy_weights(model, weights_path(config.init_weights))
    if config.freeze == "early":
        for name in _EARLY_LAYERS:
            model.get_layer(name).trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=dice_loss,
        metrics=[keras.metrics.MeanMetricWrapper(dice_coefficient, name="dice")],
        jit_compile=False,
    )
    return model


def train_variant(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    variant: str | None = None,
    verbose: int = 2,
    callbacks: list | None = None,
) -> dict:
    """Train one variant and write its files (see module docstring); returns the summary.

    Parameters
    ----------
    data_dir : path-like
        Folder with ``train.npz``, ``val.npz`` and ``test.npz`` (notebook 02's ``data/``).
    output_dir : path-like
        Run folder; the variant writes into ``<output_dir>/<variant>/``.
    config : TrainConfig
    variant : str, optional
        Folder name (default ``config.variant``, e.g. ``pretrained_aug``).
    verbose : int, default 2
        Keras verbosity (2: one line per epoch; 1: progress bar).
    callbacks : list, optional
        Extra Keras callbacks (after the project's own).
    """
    keras.utils.set_random_seed(config.seed)
    variant = variant or config.variant
    folder = Path(output_dir) / variant
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = load_arrays(data_dir, "train", max_slices=config.max_slices, seed=config.seed)
    x_val, y_val = load_arrays(data_dir, "val", max_slices=config.max_slices, seed=config.seed)
    x_test, y_test = load_arrays(data_dir, "test", max_slices=config.max_slices, seed=config.seed)
    if len(x_train) == 0 or len(x_val) == 0:
        raise ParameterError(f"{data_dir}: the train and val splits need slices (got {len(x_train)} and {len(x_val)})")
    init_meta = read_metadata(weights_path(config.init_weights))
    filters = int(init_meta["filters"])
    metadata = {k: init_meta[k] for k in ("mean_train", "std_train") if k in init_meta}
    metadata.update({"variant": variant, "init_weights": config.init_weights if config.pretrained else None,
                     "input_size": int(x_train.shape[1])})
    shape = tuple(int(n) for n in x_train.shape[1:])  # the network is fully convolutional: the arrays decide

    baseline = _baseline(config, filters, shape)
    model = _build(config, filters, shape)
    aug_config = AugmentConfig(**config.augmentation)
    train_data = make_dataset(x_train, y_train, batch_size=config.batch_size, augment=config.augment,
                              seed=config.seed, config=aug_config)
    val_data = make_dataset(x_val, y_val, batch_size=8, augment=False, seed=config.seed, shuffle=False)
    initial_val = float(model.evaluate(val_data, verbose=0, return_dict=True)["dice"])
    recorder = _Recorder(folder, metadata, {"epoch": 0.0, "loss": np.nan, "dice": np.nan, "val_loss": np.nan,
                                            "val_dice": initial_val, "seconds": 0.0}, config.min_delta,
                         initial_is_candidate=config.pretrained)
    cbs = [keras.callbacks.BackupAndRestore(str(folder / "backup")), recorder]
    if not config.sweep:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", min_delta=config.min_delta,
                                                 patience=config.patience))
    start = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=config.epochs, callbacks=cbs + (callbacks or []),
              verbose=verbose, shuffle=False)  # the pipelines shuffle themselves, seeded
    seconds = time.perf_counter() - start

    load_legacy_weights(model, folder / "best.hdf5")
    rows = recorder.rows
    val_curve = [r["val_dice"] for r in rows[1:]]
    batch = min(config.batch_size, len(x_train))
    summary = {
        "variant": variant,
        "config": asdict(config),
        "epochs_run": len(val_curve),
        "best_epoch": recorder.best_epoch,  # 0 = the initial (pretrained) weights were never beaten
        "best_val_dice": float(recorder.best),
        "initial_val_dice": rows[0]["val_dice"],
        "first_epoch_val_dice": val_curve[0] if val_curve else None,
        "baseline_val_dice": float(hard_dice(baseline, x_val, y_val, threshold=0.5)),
        "baseline_val_soft_dice": _soft_dice(baseline, x_val, y_val),
        "val_dice_hard": float(hard_dice(model, x_val, y_val, threshold=0.5)),
        "test_dice": float(hard_dice(model, x_test, y_test)) if len(x_test) else None,
        "baseline_test_dice": float(hard_dice(baseline, x_test, y_test)) if len(x_test) else None,
        "n_slices": {"train": len(x_train), "val": len(x_val), "test": len(x_test)},
        "dice_definitions": {
            "*_val_dice, baseline_val_soft_dice": "soft Dice (the training metric), mean over validation batches",
            "baseline_val_dice, val_dice_hard": "Dice of predictions > 0.5 over all validation slices",
            "test_dice, baseline_test_dice": "Dice of predictions > 0.999 (SCT's threshold) over all test slices",
        },
        "seconds": round(seconds, 2),
        # steady state: every training step but the first, which traces the train function (first_step_seconds)
        "train_slices_per_s": (round(recorder.train_batches * batch / recorder.train_seconds, 2)
                               if recorder.train_batches else None),
        "first_step_seconds": None if recorder.first_step_seconds is None else round(recorder.first_step_seconds, 2),
        "backend": keras.backend.backend(),
        "device": _device(),
    }
    summary["onnx"] = _export_onnx_quietly(model, folder / "best.onnx", input_size=shape[0])
    fig = plot_learning_curve(rows, baseline_val_dice=summary["baseline_val_soft_dice"], min_delta=config.min_delta,
                              patience=config.patience, title=variant)
    fig.savefig(folder / "learning_curve.png", dpi=100)
    write_json(summary, folder / "summary.json")
    return summary


def _baseline(config: TrainConfig, filters: int, shape: tuple):
    """The pretrained model the variants are compared with (``init_weights``)."""
    model = build_model(filters, input_shape=shape)
    load_legacy_weights(model, weights_path(config.init_weights))
    return model


def _export_onnx_quietly(model, path: Path, *, input_size: int) -> str | None:
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        return None
    return str(export_onnx(model, path, input_size=input_size))
