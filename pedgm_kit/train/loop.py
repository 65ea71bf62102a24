"""Training one variant: build, load the pretrained weights, adapt, fit with early stopping, export."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .._backend import keras
from ..augment import AugmentConfig
from ..data_creation import load_split, read_scans
from ..datasets import Scan
from ..evaluate.scoring import TEST_SCORING, mean_over_persons, person_scores, score_test_scans, score_window_scans
from ..exceptions import ParameterError
from ..layout import LEARNING_CURVE_PNG, ONNX_FILE, SUMMARY_JSON, WEIGHTS_FILE, TrainSummary, split_arrays
from ..model import (
    build_model,
    dice_bce_loss,
    dice_coefficient,
    dice_loss,
    load_legacy_weights,
)
from ..weights import read_metadata, weights_path
from .config import THRESHOLD_GRID, TrainConfig, a_priori_threshold
from .data import EpochCounter, load_arrays, make_dataset
from .preempt import PreemptionGuard
from .records import SELECTION_METRIC, _device, _Recorder, _Validator, dice_scores, plot_learning_curve

__all__ = ["adapt_batchnorm", "build_for_training", "set_determinism", "train_variant", "warmup_schedule"]

_EARLY_LAYERS = ("conv2d_1", "conv2d_2", "rate2_1", "rate2_2") + tuple(f"batch_normalization_{i}" for i in range(1, 5))


def set_determinism(seed: int, *, deterministic: bool = True) -> None:
    """Seed every generator; with ``deterministic``, make TensorFlow's ops and thread order deterministic.

    Op determinism is a process-wide TensorFlow setting (JAX on CPU is deterministic already), so
    it is switched on or off here for every run; tf.data pipelines are seeded and keep their order.
    Deterministic runs also use one inter-op thread (each op still uses every core): with TensorFlow's
    default pool, two augmented runs with the same seed differed at 1e-7 after one epoch in 2 of 3
    tries (independent ops finish in a different order), with one thread 5 of 5 pairs were identical
    at the same speed. The pool is fixed when TensorFlow's runtime starts, so this takes effect when
    it is the first thing a process does with TensorFlow (as in ``pedgm train``, notebook 04 and
    :func:`train_variant`); ``deterministic=False`` leaves TensorFlow's default pool.
    """
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework import config as tf_config

        if deterministic:
            tf_config.enable_op_determinism()
            if tf.config.threading.get_inter_op_parallelism_threads() != 1 and "TF_NUM_INTEROP_THREADS" not in os.environ:
                try:
                    tf.config.threading.set_inter_op_parallelism_threads(1)
                except RuntimeError:  # the runtime already started in this process: its pool stays
                    pass
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


def warmup_schedule(config: TrainConfig):
    """The learning rate rising linearly over ``config.warmup_epochs`` epochs to ``config.learning_rate``."""
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
        fold's ``data/fold-<k>/``). The whole validation split selects the epoch (and, with
        ``threshold="validation"``, the threshold); the test persons are scored once, after training,
        on their full source scans (``scans.json``; else on the split's windows) by
        :func:`pedgm_kit.evaluate.scoring.score_test_scans`, as the evaluation notebook scores them.
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
    # selection sees the whole validation split (max_slices limits training only), with each slice's person
    x_val, y_val = load_arrays(data_dir, "val")
    val_persons = _split_persons(data_dir, "val", len(x_val))
    if len(x_train) == 0 or len(x_val) == 0:
        raise ParameterError(f"{data_dir}: the train and val splits need slices (got {len(x_train)} and {len(x_val)})")
    if not y_val.any():
        raise ParameterError(f"{data_dir}: the val split has no GM voxel, so no epoch can be selected on it")
    init_meta = read_metadata(weights_path(config.init_weights))
    metadata = {k: init_meta[k] for k in ("mean_train", "std_train") if k in init_meta}
    metadata.update({"variant": variant, "init_weights": config.init_weights if config.pretrained else None,
                     "input_size": int(x_train.shape[1])})
    init_threshold = float(init_meta["threshold"])
    if config.threshold == "loss":  # fixed before training by the loss (documented rule; no data seen)
        fixed, rule = a_priori_threshold(config.loss, init_threshold)
        thresholds = (fixed,)
    else:  # chosen with the epoch on the validation split; the test split is never consulted
        thresholds, rule = THRESHOLD_GRID, (f"chosen on validation: the best validation Dice over "
                                            f"{', '.join(f'{t:g}' for t in THRESHOLD_GRID)}, with the epoch")
    metadata["threshold_rule"] = rule
    shape = tuple(int(n) for n in x_train.shape[1:])  # the network is fully convolutional: the arrays decide

    start = time.perf_counter()
    baseline = build_for_training(TrainConfig(pretrained=True, init_weights=config.init_weights), shape)
    model = build_for_training(config, shape, adapt_on=x_train)
    setup_seconds = time.perf_counter() - start
    train_data = make_dataset(x_train, y_train, batch_size=config.batch_size, augment=config.augment,
                              seed=config.seed, config=AugmentConfig(**config.augmentation),
                              overlap=not config.deterministic, epochs=(epochs := EpochCounter()))
    validator = _Validator(x_val, y_val, val_persons, thresholds=thresholds,
                           loss=dice_bce_loss if config.loss == "dice_bce" else dice_loss)
    recorder = _Recorder(folder, metadata, {"epoch": 0.0, "loss": np.nan, "dice": np.nan, **validator.scores(model),
                                            "learning_rate": np.nan}, config.min_delta,
                         initial_is_candidate=config.pretrained)
    # the validator comes first: every later callback sees its scores in the epoch's logs
    cbs = [validator, keras.callbacks.BackupAndRestore(str(folder / "backup")), epochs, recorder]
    if config.warmup_epochs:
        cbs.append(warmup_schedule(config))
    if not config.sweep:
        cbs.append(keras.callbacks.EarlyStopping(monitor=SELECTION_METRIC, mode="max", min_delta=config.min_delta,
                                                 patience=config.patience))
    start = time.perf_counter()
    model.fit(train_data, epochs=config.epochs,
              callbacks=cbs + [PreemptionGuard(folder / "backup", restore=cbs)] + (callbacks or []),  # SIGTERM: keep the last epoch
              verbose=verbose, shuffle=False)  # the pipelines shuffle themselves, seeded; the validator validates
    seconds = time.perf_counter() - start

    start = time.perf_counter()
    load_legacy_weights(model, folder / WEIGHTS_FILE)
    threshold = float(recorder.best_threshold)
    baseline_val = dice_scores(baseline, x_val, y_val, thresholds=(init_threshold,), persons=val_persons)
    test = _score_test(data_dir, folder, model, variant=variant, threshold=threshold,
                       baseline=config.init_weights, baseline_model=baseline, baseline_threshold=init_threshold)
    scoring_seconds = time.perf_counter() - start
    rows = recorder.rows
    val_curve = [r[SELECTION_METRIC] for r in rows[1:]]
    batch = min(config.batch_size, len(x_train))
    summary = {
        "variant": variant,
        "config": asdict(config),
        "train_persons": persons,
        "epochs_run": len(val_curve),
        "best_epoch": recorder.best_epoch,  # 0 = the initial (pretrained, adapted) weights were never beaten
        "selection_metric": SELECTION_METRIC,
        "best_val_dice": float(recorder.best),
        "initial_val_dice": rows[0][SELECTION_METRIC],
        "first_epoch_val_dice": val_curve[0] if val_curve else None,
        "best_val_soft_dice": next((r["val_dice"] for r in rows if r["epoch"] == recorder.best_epoch), None),
        "threshold": threshold,
        "threshold_rule": rule,
        "baseline_threshold": init_threshold,
        "baseline_val_dice": baseline_val[f"hard_{init_threshold:g}"],
        "baseline_val_soft_dice": baseline_val["soft"],
        "val_persons": sorted(set(val_persons.tolist())),
        **test,
        "n_slices": {"train": len(x_train), "val": len(x_val)},
        "dice_definitions": {
            "best_val_dice, initial_val_dice, first_epoch_val_dice, baseline_val_dice": (
                "hard Dice on the whole validation split at the model's threshold: per person over all their "
                "validation voxels, then the mean over persons (selects the epoch and stops early)"),
            "best_val_soft_dice, baseline_val_soft_dice": "soft Dice (the training metric), mean over validation batches; "
                                                          "logged only",
            "test_dice, baseline_test_dice": "each model at its own threshold (threshold, baseline_threshold): "
                                             + test["test_scoring"],
        },
        "seconds": round(seconds, 2),
        # steady state: every training step but the first, which traces the train function (first_step_seconds)
        "train_slices_per_s": (round(recorder.train_batches * batch / recorder.train_seconds, 2)
                               if recorder.train_batches else None),
        "first_step_seconds": None if recorder.first_step_seconds is None else round(recorder.first_step_seconds, 2),
        "validation_seconds": round(validator.seconds, 2),
        "epoch_seconds": [round(s, 2) for s in recorder.epoch_seconds],
        "setup_seconds": round(setup_seconds, 2),
        "scoring_seconds": round(scoring_seconds, 2),
        "deterministic": config.deterministic,
        "inter_op_threads": _inter_op_threads(),  # 1 for deterministic runs; 0: the backend's default pool
        "backend": keras.backend.backend(),
        "device": _device(),
    }
    summary["onnx"] = _export_onnx_quietly(model, folder / ONNX_FILE, input_size=shape[0]) if export_onnx else None
    fig = plot_learning_curve(rows, baseline_val_dice=summary["baseline_val_dice"], min_delta=config.min_delta,
                              patience=config.patience, title=variant, best_epoch=recorder.best_epoch)
    fig.savefig(folder / LEARNING_CURVE_PNG, dpi=100)
    TrainSummary.new(summary).write(folder / SUMMARY_JSON)
    from ..model_card import write_training_card  # the card travels with best.hdf5 / best.onnx

    write_training_card(folder)
    return summary


def _inter_op_threads() -> int | None:
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return int(tf.config.threading.get_inter_op_parallelism_threads())


def _split_persons(data_dir, split: str, n: int) -> np.ndarray:
    """The person id of every slice of ``<data_dir>/<split>.npz`` (one person "all" if none is recorded)."""
    arrays = load_split(split_arrays(data_dir, split))
    return arrays["person_id"].astype(str) if "person_id" in arrays else np.full(n, "all")


def _score_test(data_dir, folder: Path, model, *, variant: str, threshold: float, baseline: str, baseline_model,
                baseline_threshold: float) -> dict:
    """``test_dice`` (this model) and ``baseline_test_dice`` (the initial weights), each at its own threshold,
    per person, through :mod:`pedgm_kit.evaluate.scoring`: whole source scans when the data folder records
    them (``scans.json``), else the split's windows; empty values without a test split."""
    records = read_scans(data_dir, "test")
    path = split_arrays(data_dir, "test")
    arrays = load_split(path) if path.is_file() else {"images": []}
    if records and all(r.get("source_image") and r.get("source_gm_mask") for r in records):
        scans = [Scan(r["scan_id"], str(r["person_id"]), Path(r["source_image"]), gm_mask=Path(r["source_gm_mask"]))
                 for r in records]
        rules = {r.get("cord_scale_rule") or None for r in records}
        if len(rules) > 1:
            raise ParameterError(f"{data_dir}: test scans were preprocessed with different cord_scale settings {rules}")
        tidy = score_test_scans({variant: folder / WEIGHTS_FILE, "baseline": baseline}, scans,
                                output_dir=folder / "test_scoring", cord_scale=rules.pop())
        how = TEST_SCORING
    elif len(arrays["images"]):
        tidy = pd.concat([
            score_window_scans(variant, lambda x: _predict(model, x), arrays, threshold=threshold),
            score_window_scans("baseline", lambda x: _predict(baseline_model, x), arrays, threshold=baseline_threshold),
        ], ignore_index=True)
        how = ("the test split's preprocessed windows (no source scans recorded), each scan on its labelled slices; "
               "a person's score is the mean over their scans, the reported score the mean over persons")
    else:
        return {"test_dice": None, "baseline_test_dice": None, "test_persons": [], "test_scoring": "no test split"}
    per = person_scores(tidy)
    means = mean_over_persons(tidy)
    of = {label: dict(zip(g["person"], g["value"].astype(float))) for label, g in per.groupby("model", sort=False)}
    return {"test_dice": means.get(variant), "baseline_test_dice": means.get("baseline"),
            "test_persons": sorted(of.get(variant, {})), "test_dice_per_person": of.get(variant, {}),
            "baseline_test_dice_per_person": of.get("baseline", {}), "test_scoring": how}


def _predict(model, images: np.ndarray, *, batch_size: int = 8) -> np.ndarray:
    return np.concatenate([np.asarray(model.predict_on_batch(images[k : k + batch_size]))
                           for k in range(0, len(images), batch_size)])


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
