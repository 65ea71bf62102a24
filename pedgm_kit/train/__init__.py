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

from .config import ADAPTED_VARIANT, RECIPES, VARIANTS, TrainConfig
from .data import load_arrays, make_dataset
from .loop import adapt_batchnorm, build_for_training, set_determinism, train_variant
from .records import (
    dice_scores,
    early_stop_epoch,
    hard_dice,
    load_summary,
    plot_learning_curve,
)

__all__ = [
    "ADAPTED_VARIANT",
    "RECIPES",
    "VARIANTS",
    "adapt_batchnorm",
    "build_for_training",
    "dice_scores",
    "set_determinism",
    "TrainConfig",
    "early_stop_epoch",
    "hard_dice",
    "load_arrays",
    "load_summary",
    "make_dataset",
    "plot_learning_curve",
    "train_variant",
]
