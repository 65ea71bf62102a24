"""What a run leaves behind: history, learning curve, summary; the Dice numbers it records."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from .._backend import keras
from .._utils import atomic_path
from ..io import write_json
from ..layout import BEST_EPOCH_JSON, HISTORY_CSV, SUMMARY_JSON, WEIGHTS_FILE, TrainSummary
from ..model import dice_coefficient, save_legacy_weights

__all__ = ["SELECTION_METRIC", "dice_scores", "early_stop_epoch", "hard_dice", "load_summary", "person_dice",
           "plot_learning_curve", "validation_pick"]

#: The history column that selects the best epoch and drives early stopping: the hard Dice of the whole
#: validation split at the model's threshold, pooled per person (every voxel of a person's validation
#: slices), then averaged over persons. An empty prediction scores 0 on a person with GM.
SELECTION_METRIC = "val_dice_hard"


def person_dice(counts: dict) -> float:
    """Mean over persons of each person's Dice from pooled ``{person: [tp, fp, fn]}`` voxel counts.

    Persons without GM in their manual masks and none predicted (``tp + fp + fn == 0``) have no
    defined Dice and are left out; with no person left the result is NaN.
    """
    values = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in counts.values() if tp + fp + fn]
    return float(np.mean(values)) if values else float("nan")


def hard_dice(model, images, masks, *, threshold: float = 0.999, batch_size: int = 8, persons=None) -> float:
    """Hard Dice of thresholded predictions (SCT's threshold by default), pooled per person (see :func:`dice_scores`)."""
    return dice_scores(model, images, masks, thresholds=(threshold,), batch_size=batch_size,
                       persons=persons)[f"hard_{threshold:g}"]


def dice_scores(model, images, masks, *, thresholds=(0.5, 0.999), batch_size: int = 8, persons=None,
                loss=None) -> dict[str, float]:
    """Scores of one prediction pass over slices.

    ``soft``: the training metric (mean over batches of the smoothed soft Dice; logged, never used to
    select); ``hard_<t>``: for every threshold, each person's Dice of predictions > t over all their
    slices' voxels, averaged over persons (``persons``: one id per slice; None: all slices are one
    person); ``loss``: the mean over batches of ``loss(y_true, y_pred)`` when a loss is given.
    """
    ids = np.full(len(images), "all") if persons is None else np.asarray(persons).astype(str)
    counts = {t: {p: [0, 0, 0] for p in dict.fromkeys(ids.tolist())} for t in thresholds}
    soft, losses = [], []
    for start in range(0, len(images), batch_size):
        pred = np.asarray(model.predict_on_batch(images[start : start + batch_size]))
        truth_b = masks[start : start + batch_size]
        soft.append(float(dice_coefficient(truth_b, pred)))
        if loss is not None:
            losses.append(float(keras.ops.convert_to_numpy(keras.ops.mean(loss(truth_b, pred)))))
        truth = truth_b > 0.5
        for t in thresholds:
            p = pred > t
            for k, person in enumerate(ids[start : start + batch_size]):
                c = counts[t][person]
                c[0] += np.count_nonzero(p[k] & truth[k])
                c[1] += np.count_nonzero(p[k] & ~truth[k])
                c[2] += np.count_nonzero(~p[k] & truth[k])
    out = {"soft": float(np.mean(soft)) if soft else float("nan")}
    if loss is not None:
        out["loss"] = float(np.mean(losses)) if losses else float("nan")
    for t in thresholds:
        out[f"hard_{t:g}"] = person_dice(counts[t])
    return out


def validation_pick(scores: dict, thresholds) -> tuple[float, float]:
    """(threshold, hard Dice) of the best of ``thresholds`` in :func:`dice_scores`' result (first on ties)."""
    values = [scores[f"hard_{t:g}"] for t in thresholds]
    finite = [v if np.isfinite(v) else -np.inf for v in values]
    k = int(np.argmax(finite))
    return float(thresholds[k]), float(values[k])


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


class _Validator(keras.callbacks.Callback):
    """Scores the whole validation split once per epoch and puts the scores into the epoch's logs.

    Placed first among the callbacks, so the history recorder, early stopping and checkpointing all
    see ``val_loss``, ``val_dice`` (soft, logged only), :data:`SELECTION_METRIC` and ``val_threshold``
    (the model's threshold: fixed, or the best of a grid when the threshold is chosen on validation).
    """

    def __init__(self, images, masks, persons, *, thresholds, loss, batch_size: int = 8):
        super().__init__()
        self.images, self.masks, self.persons = images, masks, persons
        self.thresholds, self.loss, self.batch_size = tuple(thresholds), loss, batch_size
        self.seconds = 0.0

    def scores(self, model) -> dict:
        """``val_loss, val_dice, val_dice_hard, val_threshold`` of ``model`` now."""
        start = time.perf_counter()
        scores = dice_scores(model, self.images, self.masks, thresholds=self.thresholds, persons=self.persons,
                             loss=self.loss, batch_size=self.batch_size)
        threshold, hard = validation_pick(scores, self.thresholds)
        self.seconds += time.perf_counter() - start
        return {"val_loss": scores["loss"], "val_dice": scores["soft"], SELECTION_METRIC: hard,
                "val_threshold": threshold}

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.scores(self.model))


class _Recorder(keras.callbacks.Callback):
    """Writes history.csv each epoch (atomically) and best.hdf5 whenever :data:`SELECTION_METRIC` improves."""

    def __init__(self, folder: Path, metadata: dict, initial: dict, min_delta: float, *, initial_is_candidate: bool):
        super().__init__()
        self.folder, self.metadata, self.min_delta = folder, metadata, min_delta
        self.rows = [initial]
        self.best, self.best_epoch, self.best_threshold = -np.inf, None, initial["val_threshold"]
        history = folder / HISTORY_CSV
        if (folder / "backup").exists() and history.is_file():  # resuming: keep the epochs already done
            with open(history) as fh:
                self.rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
            best = json.loads((folder / BEST_EPOCH_JSON).read_text()) if (folder / BEST_EPOCH_JSON).is_file() else {}
            self.best, self.best_epoch = best.get(SELECTION_METRIC, -np.inf), best.get("epoch")
            self.best_threshold = best.get("threshold", self.best_threshold)
        else:
            (folder / BEST_EPOCH_JSON).unlink(missing_ok=True)
        self._pending_initial = self.best_epoch is None and initial_is_candidate
        if self._pending_initial:  # fine-tuning must beat the weights it started from
            self.best, self.best_epoch = initial[SELECTION_METRIC], 0
        self.epoch_start = self.batch_start = time.perf_counter()
        self.train_seconds = 0.0  # time inside training steps only (no validation, no callbacks)
        self.train_batches = 0  # steps timed: every step but the first of this process
        self.first_step_seconds = None  # the first step traces (compiles) the train function
        self.epoch_seconds: list[float] = []  # wall time per epoch (kept out of history.csv: it is not deterministic)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        seconds = time.perf_counter() - self.batch_start
        if self.first_step_seconds is None:
            self.first_step_seconds = seconds
            return
        self.train_seconds += seconds
        self.train_batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self.epoch_start)
        row = {"epoch": float(epoch + 1), "loss": float(logs["loss"]), "dice": float(logs["dice"]),
               "val_loss": float(logs["val_loss"]), "val_dice": float(logs["val_dice"]),
               SELECTION_METRIC: float(logs[SELECTION_METRIC]), "val_threshold": float(logs["val_threshold"]),
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))}
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        _write_csv(self.rows, self.folder / HISTORY_CSV)
        if row[SELECTION_METRIC] > self.best + self.min_delta or self.best_epoch is None:
            self._save_best(epoch + 1, row[SELECTION_METRIC], row["val_threshold"])

    def _save_best(self, epoch: int, value: float, threshold: float):
        self.best, self.best_epoch, self.best_threshold = value, epoch, threshold
        save_legacy_weights(self.model, self.folder / WEIGHTS_FILE,
                            metadata={**self.metadata, "epoch": epoch, "threshold": float(threshold)})
        write_json({"epoch": epoch, SELECTION_METRIC: value, "threshold": float(threshold)},
                   self.folder / BEST_EPOCH_JSON)

    def on_train_begin(self, logs=None):
        if self._pending_initial:
            self._save_best(0, self.best, self.best_threshold)
            self._pending_initial = False


def _write_csv(rows, path: Path):
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[-1]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in rows[-1]})


def plot_learning_curve(rows, *, baseline_val_dice=None, min_delta: float = 0.001, patience: int = 5, title: str = "",
                        best_epoch: int | None = None):
    """Train and validation Dice per epoch, the baseline's and where selection and early stopping land (a Figure).

    The selection metric (:data:`SELECTION_METRIC`, hard and pooled per person) is drawn solid; the
    soft batch Dice of training and validation, logged only, dotted.
    """
    from matplotlib.figure import Figure

    epochs = [int(r["epoch"]) for r in rows]
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    # a history written before selection moved to the hard Dice has the soft one only: it selected then
    key = SELECTION_METRIC if SELECTION_METRIC in rows[0] else "val_dice"
    if key == SELECTION_METRIC:
        ax.plot(epochs, [r[key] for r in rows], "s-", label="validation Dice (hard, per person): selects")
    ax.plot(epochs[1:], [r["dice"] for r in rows[1:]], "o:", alpha=0.7, label="train Dice (soft, logged)")
    ax.plot(epochs, [r["val_dice"] for r in rows], "^:", alpha=0.7,
            label="validation Dice (soft, logged)" if key == SELECTION_METRIC else "validation Dice (soft): selects")
    if baseline_val_dice is not None:
        ax.axhline(baseline_val_dice, color="grey", ls="--", label="baseline (pretrained) val Dice")
    val = [r[key] for r in rows[1:]]
    if val:
        best, stop = early_stop_epoch(val, min_delta=min_delta, patience=patience)
        best = best if best_epoch is None else best_epoch  # the run's own pick (0: the initial weights kept)
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
    """Read a variant's ``summary.json`` (:class:`pedgm_kit.layout.TrainSummary`) as a dict."""
    return TrainSummary.read(Path(folder) / SUMMARY_JSON).to_json()
