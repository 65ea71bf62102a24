"""Training input: split arrays, and batches (``tf.data`` under TensorFlow, a NumPy PyDataset otherwise)."""

from __future__ import annotations

import os

import numpy as np

from .._backend import keras
from ..augment import AugmentConfig, apply_augmentation, sample_params
from ..data_creation import load_split
from ..exceptions import (
    DimensionError,
    ImageContentError,
    InputFileError,
    ParameterError,
)
from ..io import check_binary
from ..layout import split_arrays

__all__ = ["EpochCounter", "load_arrays", "make_dataset"]


def load_arrays(data_dir: str | os.PathLike, split: str, *, max_slices: int = 0, seed: int = 0, persons: int = 0,
                with_persons: bool = False):
    """(images (N, h, w, 1) float32, masks (N, h, w, 1) float32) of ``<data_dir>/<split>.npz``.

    With ``persons``, only the slices of that many persons: the first ``persons`` of a seeded
    permutation of the split's persons (so smaller subsets are nested in larger ones). With
    ``max_slices``, a seeded subset that keeps the GM slices first (smoke runs). With
    ``with_persons``, the person ids used are returned as a third item.
    """
    path = split_arrays(data_dir, split)
    if not path.is_file():
        raise InputFileError(f"No such file or no access: '{path}' (run notebook 02 to create the {split} split)")
    try:
        arrays = load_split(path)
        images, masks = arrays["images"], arrays["masks"]
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise InputFileError(f"Cannot read split arrays '{path}': {str(err).splitlines()[0] if str(err) else err}") from None
    if images.ndim != 3 or masks.shape != images.shape:
        raise DimensionError(f"{path}: images {images.shape} and masks {masks.shape} must both be (N, rows, cols)")
    if images.dtype.kind not in "fiu" or not np.isfinite(images).all():
        bad = images.size if images.dtype.kind not in "fiu" else int(np.count_nonzero(~np.isfinite(images)))
        raise ImageContentError(f"{path}: {bad} image values are NaN, infinite or not numbers; rebuild the split (notebook 02)")
    check_binary(masks, name=str(path), what="masks")
    ids = arrays.get("person_id", np.full(len(images), "all")).astype(str)
    used = sorted(set(ids.tolist()))
    if persons:
        order = list(np.random.default_rng([seed, 7]).permutation(used))
        if persons > len(order):
            raise ParameterError(f"{path}: train_persons={persons} but the split holds {len(order)} person(s)")
        used = sorted(order[:persons])
        keep = np.isin(ids, used)
        images, masks = images[keep], masks[keep]
    if max_slices and len(images) > max_slices:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(images))
        order = order[np.argsort(~masks[order].any(axis=(1, 2)), kind="stable")]
        keep = np.sort(order[:max_slices])
        images, masks = images[keep], masks[keep]
    out = images[..., None].astype(np.float32), masks[..., None].astype(np.float32)
    return (*out, used) if with_persons else out


class EpochCounter(keras.callbacks.Callback):
    """The epoch whose shuffle order and augmentation the training input draws.

    Given to :func:`make_dataset` and to ``fit`` as a callback, it is set from Keras's epoch number
    at each epoch's start, so a run resumed at epoch k (``BackupAndRestore``) draws epoch k's order
    and augmentation, as the uninterrupted run did. Without ``fit`` (a pipeline iterated by hand),
    each pass over the data counts one epoch.
    """

    def __init__(self):
        super().__init__()
        self.epoch, self._driven = 0, False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self._driven = int(epoch), True

    def draw(self) -> int:
        """The epoch of the pass that starts now."""
        epoch = self.epoch
        if not self._driven:
            self.epoch += 1
        return epoch


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class _NumpyBatches(keras.utils.PyDataset):
    """Shuffled (and optionally augmented) batches from NumPy arrays, any backend."""

    def __init__(self, images, masks, *, batch_size, augment, config, seed, shuffle=True, counter=None, **kwargs):
        super().__init__(**kwargs)
        self.images, self.masks = images, masks
        self.batch_size, self.augment, self.config = batch_size, augment, config
        self.seed, self.shuffle, self.counter = seed, shuffle, counter or EpochCounter()
        self.epoch = self.counter.epoch
        self.drop_remainder = shuffle

    def __len__(self):
        n = len(self.images) / self.batch_size
        return int(np.floor(n) if self.drop_remainder else np.ceil(n))

    def _order(self):
        if not self.shuffle:
            return np.arange(len(self.images))
        return _epoch_order(self.seed, self.epoch, len(self.images))

    def __getitem__(self, index):
        self.epoch = self.counter.epoch
        idx = self._order()[index * self.batch_size : (index + 1) * self.batch_size]
        x, y = self.images[idx], self.masks[idx]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            params = sample_params(rng, len(idx), x.shape[1:3], self.config)
            x, y = (keras.ops.convert_to_numpy(t) for t in apply_augmentation(x, y, params))
        return x, y

    def on_epoch_end(self):
        self.counter.draw()
        self.epoch = self.counter.epoch


def make_dataset(images, masks, *, batch_size: int, augment: bool, seed: int, shuffle: bool = True,
                 config: AugmentConfig | None = None, backend: str | None = None, overlap: bool = True,
                 epochs: EpochCounter | None = None):
    """Training/evaluation input: ``tf.data`` under TensorFlow, a NumPy PyDataset otherwise.

    Training batches (``shuffle=True``) drop the remainder so every batch has ``batch_size`` slices.
    Epoch e's order and augmentation come from generators seeded with ``(seed, e)``: pass an
    :class:`EpochCounter` (also as a ``fit`` callback) so that e is Keras's epoch number and a
    resumed run draws what an uninterrupted one drew.
    ``overlap=False`` augments each batch when the training step asks for it instead of in parallel
    with the previous step: deterministic training needs it (measured: augmenting on the CPU while a
    step runs changes the step's float rounding, so two runs differed after one epoch).
    """
    config = config or AugmentConfig()
    backend = backend or keras.backend.backend()
    batch_size = min(int(batch_size), len(images)) if shuffle else int(batch_size)
    counter = epochs or EpochCounter()
    if backend != "tensorflow":
        return _NumpyBatches(images, masks, batch_size=batch_size, augment=augment, config=config, seed=seed,
                             shuffle=shuffle, counter=counter)
    import tensorflow as tf  # the optional tf.data input path

    if not shuffle and not augment:
        return tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    size, n = images.shape[1:3], len(images)
    n_batches = n // batch_size if shuffle else -(-n // batch_size)  # training batches drop the remainder
    example = sample_params(np.random.default_rng(0), batch_size, size, config)

    def epoch_stream():  # called once per pass: the order and the augmentation of that epoch
        epoch = counter.draw()
        order = _epoch_order(seed, epoch, n) if shuffle else np.arange(n)
        rng = np.random.default_rng([seed, epoch, 1])
        for b in range(n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            yield idx, (sample_params(rng, len(idx), size, config) if augment else {})

    rows = batch_size if shuffle else None  # a static batch size for training
    signature = (tf.TensorSpec((rows,), tf.int64),
                 {k: tf.TensorSpec((rows, *v.shape[1:]), tf.float32) for k, v in example.items()} if augment else {})
    x_all, y_all = tf.constant(images), tf.constant(masks)

    def batch(idx, params):
        x, y = tf.gather(x_all, idx), tf.gather(y_all, idx)
        return apply_augmentation(x, y, params) if augment else (x, y)

    data = tf.data.Dataset.from_generator(epoch_stream, output_signature=signature).map(
        batch, num_parallel_calls=tf.data.AUTOTUNE if overlap and augment else None)
    data = data.apply(tf.data.experimental.assert_cardinality(n_batches))
    return data.prefetch(tf.data.AUTOTUNE) if overlap else data
