"""Training of the four transfer-learning variants: pretrained or from scratch, augmented or not.

As the original study: Dice loss, Adam 1e-3, batch 4, early stopping (mode max, min_delta 0.001,
patience 5) -- here on the hard Dice of the whole validation split at the model's threshold, per person
then averaged over persons (``val_dice_hard``; the soft batch Dice, which scores an empty prediction of a
slice without GM as perfect, is logged only). Each model's threshold is fixed before training by its
loss (:func:`a_priori_threshold`) or chosen on validation, never on test. Everything else is a
parameter of :class:`TrainConfig`. :func:`train_variant` writes, under ``<output_dir>/<variant>/``:

- ``history.csv`` (epoch 0 = the initial weights, then one row per epoch) and ``learning_curve.png``;
- ``best.hdf5`` + ``best.json``: the best weights in SCT's legacy layout with their metadata
  (``pedgm segment --model .../best.hdf5``), and ``best.onnx`` for SCT (TensorFlow backend);
- ``summary.json``: variant, epochs run, best epoch, best validation Dice, the threshold and how it
  was fixed, test Dice per person and its mean over persons at the model's own threshold (and the
  baseline's), from :func:`pedgm_kit.evaluate.scoring.score_test_scans` -- the evaluation's own
  scoring of the full test scans -- seconds, training slices/s, backend and device.

Input pipelines: with the TensorFlow backend a ``tf.data`` pipeline (parallel augmentation map,
prefetch); with any other backend a NumPy :class:`keras.utils.PyDataset`. Both draw augmentation
parameters from a seeded NumPy generator and apply :func:`pedgm_kit.augment.apply_augmentation`.
An interrupted run restarts from its last completed epoch (``keras.callbacks.BackupAndRestore``).
"""

from .config import ADAPTED_VARIANT, RECIPES, THRESHOLD_GRID, THRESHOLD_RULES, VARIANTS, TrainConfig, a_priori_threshold
from .data import load_arrays, make_dataset
from .loop import adapt_batchnorm, build_for_training, set_determinism, train_variant
from .records import (
    SELECTION_METRIC,
    dice_scores,
    early_stop_epoch,
    hard_dice,
    load_summary,
    person_dice,
    plot_learning_curve,
)

__all__ = [
    "ADAPTED_VARIANT",
    "RECIPES",
    "SELECTION_METRIC",
    "THRESHOLD_GRID",
    "THRESHOLD_RULES",
    "VARIANTS",
    "a_priori_threshold",
    "person_dice",
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
