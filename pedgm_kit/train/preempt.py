"""Preemption-safe training: SIGTERM (what SLURM sends before it preempts or ends a job) stops a run
after the current batch, keeping its last completed epoch.

:class:`PreemptionGuard` is a Keras callback (placed after ``BackupAndRestore`` and the history
recorder, so an epoch that ends is saved first). During ``fit`` it catches SIGTERM in the training
process, and it also stops when the file named by ``$PEDGM_STOP_FILE`` appears: ``pedgm run`` and
``pedgm train`` execute notebook 04 in a Jupyter kernel (a separate process) and create that file
when they receive SIGTERM themselves. Stopping raises :class:`pedgm_kit.runstate.Preempted`: the
partial epoch is abandoned, ``backup/`` holds the last completed one, and rerunning the same
training run (``pedgm run --resume``, ``pedgm train`` with the same arguments) continues from it.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from .._backend import keras
from ..runstate import STOP_ENV, Preempted

__all__ = ["PreemptionGuard"]


class PreemptionGuard(keras.callbacks.Callback):
    """Stop training at the next batch end after SIGTERM or a stop file; raise :class:`Preempted`."""

    def __init__(self, stop_file: str | os.PathLike | None = None):
        super().__init__()
        stop_file = stop_file or os.environ.get(STOP_ENV)
        self.stop_file = Path(stop_file) if stop_file else None
        self.requested = False
        self.epochs_done = 0
        self._previous = None

    def _on_sigterm(self, signum, frame):
        self.requested = True

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._check()

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs_done = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        self._check()

    def on_train_end(self, logs=None):
        self._restore()

    def _restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _check(self):
        if not (self.requested or (self.stop_file is not None and self.stop_file.exists())):
            return
        self._restore()
        raise Preempted(f"training stopped by SIGTERM; {self.epochs_done} completed epoch(s) kept, "
                        "rerun to continue from there")
