"""Training of the four transfer-learning variants: pretrained or from scratch, augmented or not.

As the original study (DESIGN.md points 4-5): Dice loss, Adam 1e-3, batch 4, early stopping on the
validation Dice (mode max, min_delta 0.001, patience 5). Everything else is a parameter of
:class:`TrainConfig`. :func:`train_variant` writes, under ``<output_dir>/<variant>/``:

- ``history.csv`` (epoch 0 = the initial weights, then one row per epoch) and ``learning_curve.png``;
- ``best.hdf5`` + ``best.json``: the best weights in SCT's legacy layout with their metadata
  (``pedgm segment --model .../best.hdf5``), and ``best.onnx`` for SCT (TensorFlow backend);
- ``summary.json``: variant, epochs run, best epoch, best validation Dice, test Dice (and the
  baseline's), seconds, training slices/s, backend and device.

Input pipelines: with the TensorFlow backend a ``tf.data`` pipeline (parallel augmentation map,
prefetch); with any other backend a NumPy :class:`keras.utils.PyDataset`. Both draw augmentation
parameters from a seeded NumPy generator and apply :func:`pedgm_kit.augment.apply_augmentation`.
An interrupted run restarts from its last completed epoch (``keras.callbacks.BackupAndRestore``).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from ._utils import atomic_path, write_json
from .augment import AugmentConfig, apply_augmentation, sample_params
from .data_creation import load_split
from .exceptions import InputFileError, ParameterError
from .model import build_model, dice_coefficient, dice_loss, export_onnx, load_legacy_weights, read_metadata, save_legacy_weights

__all__ = [
    "VARIANTS",
    "TrainConfig",
    "early_stop_epoch",
    "hard_dice",
    "make_dataset",
    "plot_learning_curve",
    "train_variant",
]

#: The four variants of the original study: name -> (pretrained, augment).
VARIANTS = {
    "pretrained_aug": (True, True),
    "pretrained_noaug": (True, False),
    "scratch_aug": (False, True),
    "scratch_noaug": (False, False),
}

_EARLY_LAYERS = ("conv2d_1", "conv2d_2", "rate2_1", "rate2_2") + tuple(f"batch_normalization_{i}" for i in range(1, 5))


@dataclass
class TrainConfig:
    """Settings of one training run (defaults: the original study's).

    Attributes
    ----------
    pretrained : bool
        Start from ``init_weights`` (True) or from random initialisation (False).
    init_weights : str
        "challenge", "large" or a ``.hdf5`` path (used when ``pretrained``; also the baseline).
    augment : bool
        On-the-fly augmentation of the training batches.
    epochs : int
        Maximum number of epochs.
    patience, min_delta : int, float
        Early stopping on validation Dice (mode max).
    batch_size : int
    learning_rate : float
    freeze : {"none", "early"}
        "early" freezes the first two blocks (conv2d_1-2 and the dilation-2 convolutions).
    seed : int
    sweep : bool
        Epoch sweep ("identify epochs"): train all ``epochs`` without early stopping.
    max_slices : int
        Use at most this many slices per split (0 = all; smoke runs).
    mixed_precision : bool
        float16 compute, float32 weights and output.
    """

    pretrained: bool = True
    init_weights: str = "challenge"
    augment: bool = True
    epochs: int = 100
    patience: int = 5
    min_delta: float = 0.001
    batch_size: int = 4
    learning_rate: float = 1e-3
    freeze: str = "none"
    seed: int = 0
    sweep: bool = False
    max_slices: int = 0
    mixed_precision: bool = False
    augmentation: dict = field(default_factory=dict)

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 1, "patience": self.patience >= 0, "min_delta": self.min_delta >= 0,
            "batch_size": self.batch_size >= 1, "learning_rate": self.learning_rate > 0,
            "freeze": self.freeze in ("none", "early"), "max_slices": self.max_slices >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ParameterError("invalid training parameters: " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))

    @property
    def variant(self) -> str:
        return f"{'pretrained' if self.pretrained else 'scratch'}_{'aug' if self.augment else 'noaug'}"


# --------------------------------------------------------------------------------------------- data


def load_arrays(data_dir: str | os.PathLike, split: str, *, max_slices: int = 0, seed: int = 0):
    """(images (N, h, w, 1) float32, masks (N, h, w, 1) float32) of ``<data_dir>/<split>.npz``.

    With ``max_slices``, a seeded subset that keeps the GM slices first (smoke runs).
    """
    path = Path(data_dir) / f"{split}.npz"
    if not path.is_file():
        raise InputFileError(f"No such file or no access: '{path}' (run notebook 02 to create the {split} split)")
    arrays = load_split(path)
    images, masks = arrays["images"], arrays["masks"]
    if max_slices and len(images) > max_slices:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(images))
        order = order[np.argsort(~masks[order].any(axis=(1, 2)), kind="stable")]
        keep = np.sort(order[:max_slices])
        images, masks = images[keep], masks[keep]
    return images[..., None].astype(np.float32), masks[..., None].astype(np.float32)


class _NumpyBatches(keras.utils.PyDataset):
    """Shuffled (and optionally augmented) batches from NumPy arrays, any backend."""

    def __init__(self, images, masks, *, batch_size, augment, config, seed, shuffle=True, **kwargs):
        super().__init__(**kwargs)
        self.images, self.masks = images, masks
        self.batch_size, self.augment, self.config = batch_size, augment, config
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.drop_remainder = shuffle

    def __len__(self):
        n = len(self.images) / self.batch_size
        return int(np.floor(n) if self.drop_remainder else np.ceil(n))

    def _order(self):
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __getitem__(self, index):
        idx = self._order()[index * self.batch_size : (index + 1) * self.batch_size]
        x, y = self.images[idx], self.masks[idx]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            params = sample_params(rng, len(idx), x.shape[1:3], self.config)
            x, y = (keras.ops.convert_to_numpy(t) for t in apply_augmentation(x, y, params))
        return x, y

    def on_epoch_end(self):
        self.epoch += 1


def make_dataset(images, masks, *, batch_size: int, augment: bool, seed: int, shuffle: bool = True,
                 config: AugmentConfig | None = None, backend: str | None = None):
    """Training/evaluation input: ``tf.data`` under TensorFlow, a NumPy PyDataset otherwise.

    Training batches (``shuffle=True``) drop the remainder so every batch has ``batch_size`` slices.
    """
    config = config or AugmentConfig()
    backend = backend or keras.backend.backend()
    batch_size = min(int(batch_size), len(images)) if shuffle else int(batch_size)
    if backend != "tensorflow":
        return _NumpyBatches(images, masks, batch_size=batch_size, augment=augment, config=config, seed=seed,
                             shuffle=shuffle)
    import tensorflow as tf  # the optional tf.data input path

    data = tf.data.Dataset.from_tensor_slices((images, masks))
    if shuffle:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=shuffle)
    if augment:
        size = images.shape[1:3]

        epochs_seen = [0]

        def param_stream():  # called once per epoch: a new, seeded stream each time
            rng = np.random.default_rng([seed, epochs_seen[0], 1])
            epochs_seen[0] += 1
            while True:
                yield sample_params(rng, batch_size, size, config)

        example = sample_params(np.random.default_rng(0), batch_size, size, config)
        signature = {k: tf.TensorSpec(v.shape, tf.float32) for k, v in example.items()}
        params = tf.data.Dataset.from_generator(param_stream, output_signature=signature)
        n_batches = len(images) // batch_size
        data = tf.data.Dataset.zip((data, params)).map(
            lambda xy, p: apply_augmentation(xy[0], xy[1], p), num_parallel_calls=tf.data.AUTOTUNE
        )
        data = data.apply(tf.data.experimental.assert_cardinality(n_batches))
    return data.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------------------------- metrics


def hard_dice(model, images, masks, *, threshold: float = 0.999, batch_size: int = 8) -> float:
    """Dice of thresholded predictions over all given slices (SCT's threshold by default)."""
    tp = fp = fn = 0
    for start in range(0, len(images), batch_size):
        pred = np.asarray(model.predict_on_batch(images[start : start + batch_size])) > threshold
        truth = masks[start : start + batch_size] > 0.5
        tp += np.count_nonzero(pred & truth)
        fp += np.count_nonzero(pred & ~truth)
        fn += np.count_nonzero(~pred & truth)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def early_stop_epoch(val_dice, *, min_delta: float = 0.001, patience: int = 5) -> tuple[int, int]:
    """(best epoch, epoch where early stopping would stop), epochs counted from 1."""
    best, best_epoch, wait = -np.inf, 0, 0
    for epoch, value in enumerate(val_dice, start=1):
        if value > best + min_delta:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return best_epoch, epoch
    return best_epoch, len(val_dice)


def _device() -> str:
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return f"jax: {', '.join(str(d) for d in jax.devices())}"
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return f"tensorflow: {len(gpus)} GPU(s)" if gpus else "tensorflow: CPU"
        if backend == "torch":
            import torch

            return f"torch: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "torch: CPU"
    except Exception as err:  # noqa: BLE001 - device names are informative only
        return f"{backend}: unknown ({err})"
    return backend


# --------------------------------------------------------------------------------------------- callbacks


class _Recorder(keras.callbacks.Callback):
    """Writes history.csv each epoch (atomically) and best.hdf5 whenever val Dice improves."""

    def __init__(self, folder: Path, metadata: dict, initial: dict, min_delta: float, *, initial_is_candidate: bool):
        super().__init__()
        self.folder, self.metadata, self.min_delta = folder, metadata, min_delta
        self.rows = [initial]
        self.best, self.best_epoch = -np.inf, None
        history = folder / "history.csv"
        if (folder / "backup").exists() and history.is_file():  # resuming: keep the epochs already done
            with open(history) as fh:
                self.rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
            best = json.loads((folder / "best_epoch.json").read_text()) if (folder / "best_epoch.json").is_file() else {}
            self.best, self.best_epoch = best.get("val_dice", -np.inf), best.get("epoch")
        else:
            (folder / "best_epoch.json").unlink(missing_ok=True)
        self._pending_initial = self.best_epoch is None and initial_is_candidate
        if self._pending_initial:  # fine-tuning must beat the weights it started from
            self.best, self.best_epoch = initial["val_dice"], 0
        self.epoch_start = self.batch_start = time.perf_counter()
        self.train_seconds = 0.0  # time inside training steps only (no validation, no callbacks)
        self.train_batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.train_seconds += time.perf_counter() - self.batch_start
        self.train_batches += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.epoch_start
        row = {"epoch": float(epoch + 1), "loss": float(logs["loss"]), "dice": float(logs["dice"]),
               "val_loss": float(logs["val_loss"]), "val_dice": float(logs["val_dice"]), "seconds": seconds}
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        _write_csv(self.rows, self.folder / "history.csv")
        if row["val_dice"] > self.best + self.min_delta or self.best_epoch is None:
            self._save_best(epoch + 1, row["val_dice"])

    def _save_best(self, epoch: int, val_dice: float):
        self.best, self.best_epoch = val_dice, epoch
        save_legacy_weights(self.model, self.folder / "best.hdf5", metadata={**self.metadata, "epoch": epoch})
        write_json({"epoch": epoch, "val_dice": val_dice}, self.folder / "best_epoch.json")

    def on_train_begin(self, logs=None):
        if self._pending_initial:
            self._save_best(0, self.best)
            self._pending_initial = False


def _write_csv(rows, path: Path):
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[-1]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in rows[-1]})


# --------------------------------------------------------------------------------------------- training


def _build(config: TrainConfig, filters: int):
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
                return _compiled(config, filters)
        return _compiled(config, filters)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def _compiled(config: TrainConfig, filters: int):
    model = build_model(filters, input_shape=(200, 200, 1))
    if config.pretrained:
        load_legacy_weights(model, _weights_path(config.init_weights))
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


def _weights_path(init_weights: str) -> Path:
    if init_weights in ("challenge", "large"):
        from .registry import fetch_group

        return fetch_group(init_weights)
    path = Path(init_weights)
    if not path.is_file():
        raise InputFileError(f"No such file or no access: '{path}' (init_weights)")
    return path


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
    init_meta = read_metadata(_weights_path(config.init_weights))
    filters = int(init_meta["filters"])
    metadata = {k: init_meta[k] for k in ("mean_train", "std_train") if k in init_meta}
    metadata.update({"variant": variant, "init_weights": config.init_weights if config.pretrained else None})

    baseline = _baseline(config, filters)
    model = _build(config, filters)
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
        "train_slices_per_s": round(recorder.train_batches * batch / max(recorder.train_seconds, 1e-9), 2),
        "backend": keras.backend.backend(),
        "device": _device(),
    }
    summary["onnx"] = _export_onnx_quietly(model, folder / "best.onnx")
    fig = plot_learning_curve(rows, baseline_val_dice=summary["baseline_val_soft_dice"], min_delta=config.min_delta,
                              patience=config.patience, title=variant)
    fig.savefig(folder / "learning_curve.png", dpi=100)
    write_json(summary, folder / "summary.json")
    return summary


def _baseline(config: TrainConfig, filters: int):
    """The pretrained model the variants are compared with (``init_weights``)."""
    model = build_model(filters, input_shape=(200, 200, 1))
    load_legacy_weights(model, _weights_path(config.init_weights))
    return model


def _soft_dice(model, images, masks, batch_size: int = 8) -> float:
    values = []
    for start in range(0, len(images), batch_size):
        pred = model.predict_on_batch(images[start : start + batch_size])
        values.append(float(dice_coefficient(masks[start : start + batch_size], pred)))
    return float(np.mean(values))


def _export_onnx_quietly(model, path: Path) -> str | None:
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        return None
    return str(export_onnx(model, path))


def plot_learning_curve(rows, *, baseline_val_dice=None, min_delta: float = 0.001, patience: int = 5, title: str = ""):
    """Train/val Dice per epoch, the baseline's val Dice and where early stopping lands (a Figure)."""
    from matplotlib.figure import Figure

    epochs = [int(r["epoch"]) for r in rows]
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(epochs[1:], [r["dice"] for r in rows[1:]], "o-", label="train Dice (soft)")
    ax.plot(epochs, [r["val_dice"] for r in rows], "s-", label="validation Dice (soft)")
    if baseline_val_dice is not None:
        ax.axhline(baseline_val_dice, color="grey", ls="--", label="baseline (pretrained) val Dice")
    val = [r["val_dice"] for r in rows[1:]]
    if val:
        best, stop = early_stop_epoch(val, min_delta=min_delta, patience=patience)
        ax.axvline(best, color="tab:green", ls=":", label=f"best epoch {best}")
        if stop < len(val):
            ax.axvline(stop, color="tab:red", ls=":", label=f"early stop at {stop}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch (0 = initial weights)")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def load_summary(folder: str | os.PathLike) -> dict:
    """Read a variant's ``summary.json``."""
    return json.loads((Path(folder) / "summary.json").read_text())
