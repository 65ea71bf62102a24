"""Training input: split arrays, and batches (``tf.data`` under TensorFlow, a NumPy PyDataset otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

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

__all__ = ["load_arrays", "make_dataset"]


def load_arrays(data_dir: str | os.PathLike, split: str, *, max_slices: int = 0, seed: int = 0, persons: int = 0,
                with_persons: bool = False):
    """(images (N, h, w, 1) float32, masks (N, h, w, 1) float32) of ``<data_dir>/<split>.npz``.

    With ``persons``, only the slices of that many persons: the first ``persons`` of a seeded
    permutation of the split's persons (so smaller subsets are nested in larger ones). With
    ``max_slices``, a seeded subset that keeps the GM slices first (smoke runs). With
    ``with_persons``, the person ids used are returned as a third item.
    """
    path = Path(data_dir) / f"{split}.npz"
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
                 config: AugmentConfig | None = None, backend: str | None = None, overlap: bool = True):
    """Training/evaluation input: ``tf.data`` under TensorFlow, a NumPy PyDataset otherwise.

    Training batches (``shuffle=True``) drop the remainder so every batch has ``batch_size`` slices.
    ``overlap=False`` augments each batch when the training step asks for it instead of in parallel
    with the previous step: deterministic training needs it (measured: augmenting on the CPU while a
    step runs changes the step's float rounding, so two runs differed after one epoch).
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
            lambda xy, p: apply_augmentation(xy[0], xy[1], p), num_parallel_calls=tf.data.AUTOTUNE if overlap else None
        )
        data = data.apply(tf.data.experimental.assert_cardinality(n_batches))
        if not overlap:
            return data
    return data.prefetch(tf.data.AUTOTUNE)
