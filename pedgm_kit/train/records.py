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
from ..model import dice_coefficient, save_legacy_weights

__all__ = ["dice_scores", "early_stop_epoch", "hard_dice", "load_summary", "plot_learning_curve"]


def hard_dice(model, images, masks, *, threshold: float = 0.999, batch_size: int = 8) -> float:
    """Dice of thresholded predictions over all given slices (SCT's threshold by default)."""
    return dice_scores(model, images, masks, thresholds=(threshold,), batch_size=batch_size)[f"hard_{threshold:g}"]


def dice_scores(model, images, masks, *, thresholds=(0.5, 0.999), batch_size: int = 8) -> dict[str, float]:
    """Dice of one prediction pass: ``soft`` (the training metric: mean over batches of the soft Dice)
    and ``hard_<t>`` (Dice of predictions > t over all slices) for every threshold."""
    counts = {t: [0, 0, 0] for t in thresholds}
    soft = []
    for start in range(0, len(images), batch_size):
        pred = np.asarray(model.predict_on_batch(images[start : start + batch_size]))
        truth_b = masks[start : start + batch_size]
        soft.append(float(dice_coefficient(truth_b, pred)))
        truth = truth_b > 0.5
        for t in thresholds:
            p = pred > t
            c = counts[t]
            c[0] += np.count_nonzero(p & truth)
            c[1] += np.count_nonzero(p & ~truth)
            c[2] += np.count_nonzero(~p & truth)
    out = {"soft": float(np.mean(soft)) if soft else float("nan")}
    for t, (tp, fp, fn) in counts.items():
        out[f"hard_{t:g}"] = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return out


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
        self.train_batches = 0  # steps timed: every step but the first of this process
        self.first_step_seconds = None  # the first step traces (compiles) the train function
        self.validation_seconds = 0.0
        self.epoch_seconds: list[float] = []  # wall time per epoch (kept out of history.csv: it is not deterministic)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.validation_seconds += time.perf_counter() - self.test_start

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
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))}
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
