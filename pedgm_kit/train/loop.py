"""Training one variant: build, load the pretrained weights, adapt, fit with early stopping, export."""

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
    dice_bce_loss,
    dice_coefficient,
    dice_loss,
    load_legacy_weights,
)
from ..weights import read_metadata, weights_path
from .config import TrainConfig
from .data import EpochCounter, load_arrays, make_dataset
from .preempt import PreemptionGuard
from .records import _device, _Recorder, dice_scores, plot_learning_curve

__all__ = ["adapt_batchnorm", "build_for_training", "set_determinism", "train_variant"]

_EARLY_LAYERS = ("conv2d_1", "conv2d_2", "rate2_1", "rate2_2") + tuple(f"batch_normalization_{i}" for i in range(1, 5))


def set_determinism(seed: int, *, deterministic: bool = True) -> None:
    """Seed every generator; with ``deterministic``, make TensorFlow's ops deterministic too.

    Op determinism is a process-wide TensorFlow setting (JAX on CPU is deterministic already), so
    it is switched on or off here for every run; tf.data pipelines are seeded and keep their order.
    """
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import config as tf_config

        if deterministic:
            tf_config.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()


def adapt_batchnorm(model, images: np.ndarray, *, batch_size: int = 16) -> int:
    """AdaBN: re-estimate every BatchNorm layer's moving statistics on ``images``.

    The network runs forward in training mode over the images (no weight changes; Dropout off),
    each BatchNorm layer normalising with its batch statistics and averaging them into its moving
    mean and variance (momentum set so the average is cumulative: every batch counts equally).
    Returns the number of batches seen.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    momenta, rates = [n.momentum for n in norms], [d.rate for d in drops]
    k = 0
    try:
        for d in drops:
            d.rate = 0.0
        for k, start in enumerate(range(0, len(images), batch_size)):
            for n in norms:
                n.momentum = k / (k + 1)  # moving = k/(k+1) moving + 1/(k+1) batch: the running mean
            model(images[start : start + batch_size], training=True)
    finally:
        for n, m in zip(norms, momenta):
            n.momentum = m
        for d, r in zip(drops, rates):
            d.rate = r
    return k + 1


def _reinit_head(model) -> None:
    layer = model.get_layer("predictions")
    layer.kernel.assign(layer.kernel_initializer(tuple(layer.kernel.shape)))
    layer.bias.assign(layer.bias_initializer(tuple(layer.bias.shape)))


def build_for_training(config: TrainConfig, shape: tuple, *, adapt_on: np.ndarray | None = None):
    """The compiled model of a training run: weights, AdaBN on ``adapt_on``, head, freezing, loss.

    Several GPUs with TensorFlow: built under ``MirroredStrategy``; ``mixed_precision``: float16 compute.
    """
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
                return _compiled(config, shape, adapt_on)
        return _compiled(config, shape, adapt_on)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def _compiled(config: TrainConfig, shape: tuple, adapt_on):
    filters = int(read_metadata(weights_path(config.init_weights))["filters"])
    model = build_model(filters, input_shape=tuple(shape))
    if config.pretrained:
        load_legacy_weights(model, weights_path(config.init_weights))
        if config.adabn and adapt_on is not None and len(adapt_on):
            adapt_batchnorm(model, adapt_on)
        if config.reinit_head:
            _reinit_head(model)
    if config.freeze == "early":
        for name in _EARLY_LAYERS:
            model.get_layer(name).trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=dice_bce_loss if config.loss == "dice_bce" else dice_loss,
        metrics=[keras.metrics.MeanMetricWrapper(dice_coefficient, name="dice")],
        jit_compile=False,  # XLA training on a CPU: 7x slower and 27 s to compile (benchmarks/bench_train.py)
    )
    return model


def _warmup(config: TrainConfig):
    def schedule(epoch, lr):
        return config.learning_rate * min(1.0, (epoch + 1) / (config.warmup_epochs + 1))

    return keras.callbacks.LearningRateScheduler(schedule)


def train_variant(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    variant: str | None = None,
    verbose: int = 2,
    callbacks: list | None = None,
    export_onnx: bool = True,
) -> dict:
    """Train one variant and write its files (see :mod:`pedgm_kit.train`); returns the summary.

    Parameters
    ----------
    data_dir : path-like
        Folder with ``train.npz``, ``val.npz`` and ``test.npz`` (notebook 02's ``data/``, or one
        fold's ``data/fold-<k>/``).
    output_dir : path-like
        Run folder; the variant writes into ``<output_dir>/<variant>/``.
    config : TrainConfig
    variant : str, optional
        Folder name (default ``config.variant``, e.g. ``pretrained_aug``).
    verbose : int, default 2
        Keras verbosity (2: one line per epoch; 1: progress bar).
    callbacks : list, optional
        Extra Keras callbacks (after the project's own).
    export_onnx : bool, default True
        Also write ``best.onnx`` (SCT's runtime; TensorFlow backend, a few seconds).
    """
    set_determinism(config.seed, deterministic=config.deterministic)
    variant = variant or config.variant
    folder = Path(output_dir) / variant
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train, persons = load_arrays(data_dir, "train", max_slices=config.max_slices, seed=config.seed,
                                            persons=config.train_persons, with_persons=True)
    x_val, y_val = load_arrays(data_dir, "val", max_slices=config.max_slices, seed=config.seed)
    x_test, y_test = load_arrays(data_dir, "test", max_slices=config.max_slices, seed=config.seed)
    if len(x_train) == 0 or len(x_val) == 0:
        raise ParameterError(f"{data_dir}: the train and val splits need slices (got {len(x_train)} and {len(x_val)})")
    init_meta = read_metadata(weights_path(config.init_weights))
    metadata = {k: init_meta[k] for k in ("mean_train", "std_train") if k in init_meta}
    metadata.update({"variant": variant, "init_weights": config.init_weights if config.pretrained else None,
                     "input_size": int(x_train.shape[1])})
    # SCT's 0.999 suits the saturated output of a network trained on Dice alone; with a cross-entropy term the
    # output is a probability and 0.5 is its threshold (measured, make demo-cv fold 1: a partly adapted model
    # scored test Dice 0.006 at 0.999 and 0.591 at 0.5). The summary reports both thresholds either way.
    metadata["threshold"] = 0.5 if config.loss == "dice_bce" else float(init_meta["threshold"])
    shape = tuple(int(n) for n in x_train.shape[1:])  # the network is fully convolutional: the arrays decide

    start = time.perf_counter()
    baseline = build_for_training(TrainConfig(pretrained=True, init_weights=config.init_weights), shape)
    model = build_for_training(config, shape, adapt_on=x_train)
    setup_seconds = time.perf_counter() - start
    train_data = make_dataset(x_train, y_train, batch_size=config.batch_size, augment=config.augment,
                              seed=config.seed, config=AugmentConfig(**config.augmentation),
                              overlap=not config.deterministic, epochs=(epochs := EpochCounter()))
    val_data = make_dataset(x_val, y_val, batch_size=8, augment=False, seed=config.seed, shuffle=False)
    initial_val = float(model.evaluate(val_data, verbose=0, return_dict=True)["dice"])
    recorder = _Recorder(folder, metadata, {"epoch": 0.0, "loss": np.nan, "dice": np.nan, "val_loss": np.nan,
                                            "val_dice": initial_val, "learning_rate": np.nan}, config.min_delta,
                         initial_is_candidate=config.pretrained)
    cbs = [keras.callbacks.BackupAndRestore(str(folder / "backup")), epochs, recorder]
    if config.warmup_epochs:
        cbs.append(_warmup(config))
    if not config.sweep:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", min_delta=config.min_delta,
                                                 patience=config.patience))
    start = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=config.epochs,
              callbacks=cbs + [PreemptionGuard()] + (callbacks or []),  # SIGTERM: stop, keep the last epoch
              verbose=verbose, shuffle=False)  # the pipelines shuffle themselves, seeded
    seconds = time.perf_counter() - start

    start = time.perf_counter()
    load_legacy_weights(model, folder / "best.hdf5")
    threshold = float(init_meta["threshold"])
    scores = {
        "baseline_val": dice_scores(baseline, x_val, y_val, thresholds=(0.5,)),
        "val": dice_scores(model, x_val, y_val, thresholds=(0.5,)),
    }
    if len(x_test):
        scores["test"] = dice_scores(model, x_test, y_test, thresholds=(0.5, threshold))
        scores["baseline_test"] = dice_scores(baseline, x_test, y_test, thresholds=(0.5, threshold))
    scoring_seconds = time.perf_counter() - start
    rows = recorder.rows
    val_curve = [r["val_dice"] for r in rows[1:]]
    batch = min(config.batch_size, len(x_train))
    test, base_test = scores.get("test", {}), scores.get("baseline_test", {})
    summary = {
        "variant": variant,
        "config": asdict(config),
        "train_persons": persons,
        "epochs_run": len(val_curve),
        "best_epoch": recorder.best_epoch,  # 0 = the initial (pretrained, adapted) weights were never beaten
        "best_val_dice": float(recorder.best),
        "initial_val_dice": rows[0]["val_dice"],
        "first_epoch_val_dice": val_curve[0] if val_curve else None,
        "baseline_val_dice": scores["baseline_val"]["hard_0.5"],
        "baseline_val_soft_dice": scores["baseline_val"]["soft"],
        "val_dice_hard": scores["val"]["hard_0.5"],
        "test_dice": test.get(f"hard_{threshold:g}"),
        "test_dice_05": test.get("hard_0.5"),
        "baseline_test_dice": base_test.get(f"hard_{threshold:g}"),
        "baseline_test_dice_05": base_test.get("hard_0.5"),
        "n_slices": {"train": len(x_train), "val": len(x_val), "test": len(x_test)},
        "dice_definitions": {
            "*_val_dice, baseline_val_soft_dice": "soft Dice (the training metric), mean over validation batches",
            "baseline_val_dice, val_dice_hard": "Dice of predictions > 0.5 over all validation slices",
            "test_dice, baseline_test_dice": f"Dice of predictions > {threshold:g} (SCT's threshold) over all test slices",
            "test_dice_05, baseline_test_dice_05": "Dice of predictions > 0.5 over all test slices (shows a partly "
                                                   "adapted model that SCT's threshold hides)",
        },
        "seconds": round(seconds, 2),
        # steady state: every training step but the first, which traces the train function (first_step_seconds)
        "train_slices_per_s": (round(recorder.train_batches * batch / recorder.train_seconds, 2)
                               if recorder.train_batches else None),
        "first_step_seconds": None if recorder.first_step_seconds is None else round(recorder.first_step_seconds, 2),
        "validation_seconds": round(recorder.validation_seconds, 2),
        "epoch_seconds": [round(s, 2) for s in recorder.epoch_seconds],
        "setup_seconds": round(setup_seconds, 2),
        "scoring_seconds": round(scoring_seconds, 2),
        "deterministic": config.deterministic,
        "backend": keras.backend.backend(),
        "device": _device(),
    }
    summary["onnx"] = _export_onnx_quietly(model, folder / "best.onnx", input_size=shape[0]) if export_onnx else None
    fig = plot_learning_curve(rows, baseline_val_dice=summary["baseline_val_soft_dice"], min_delta=config.min_delta,
                              patience=config.patience, title=variant)
    fig.savefig(folder / "learning_curve.png", dpi=100)
    write_json(summary, folder / "summary.json")
    return summary


def _export_onnx_quietly(model, path: Path, *, input_size: int) -> str | None:
    """``best.onnx`` with the TensorFlow backend and tf2onnx; None elsewhere."""
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        return None
    from ..model import export_onnx

    return str(export_onnx(model, path, input_size=input_size))
