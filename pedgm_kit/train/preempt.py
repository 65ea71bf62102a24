"""Preemption-safe training: SIGTERM (what SLURM sends before it preempts or ends a job) stops a run
after the current batch, keeping its last completed epoch.

:class:`PreemptionGuard` is a Keras callback (placed after ``BackupAndRestore`` and the history
recorder, so an epoch that ends is saved first). During ``fit`` it catches SIGTERM in the training
process, and it also stops when the file named by ``$PEDGM_STOP_FILE`` appears: ``pedgm run`` and
``pedgm train`` execute notebook 04 in a Jupyter kernel (a separate process) and create that file
when they receive SIGTERM themselves. Stopping raises :class:`pedgm_kit.runstate.Preempted`: the
partial epoch is abandoned, ``backup/`` holds the last completed one, and rerunning the same
training run (``pedgm run --resume``, ``pedgm train`` with the same arguments) continues from it.

It also keeps what ``BackupAndRestore`` leaves out (``backup/seed_states.npz``, written at each
epoch end and read back when training resumes): the random-generator states of the dropout layers,
so a resumed run draws the dropout masks an uninterrupted one draws, and early stopping's counters
(``restore``: the run's other callbacks), so it stops at the epoch the uninterrupted run stops at.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np

from .._backend import keras
from .._utils import atomic_path
from ..runstate import STOP_ENV, Preempted

__all__ = ["PreemptionGuard"]

_STOPPING_STATE = ("wait", "best", "best_epoch", "stopped_epoch")


class PreemptionGuard(keras.callbacks.Callback):
    """Stop training at the next batch end after SIGTERM or a stop file; raise :class:`Preempted`."""

    def __init__(self, backup_dir: str | os.PathLike | None = None, *, restore: list | None = None,
                 stop_file: str | os.PathLike | None = None):
        super().__init__()
        self.stopping = [cb for cb in restore or [] if isinstance(cb, keras.callbacks.EarlyStopping)]
        self.seed_file = Path(backup_dir) / "seed_states.npz" if backup_dir else None
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
        if self.seed_file is not None and self.seed_file.is_file():  # resuming: BackupAndRestore ran first
            with np.load(self.seed_file) as saved:
                for i, variable in enumerate(self._seed_states()):
                    variable.assign(saved[f"s{i}"])
                for i, cb in enumerate(self.stopping):  # after its own on_train_begin reset them
                    for name in _STOPPING_STATE:
                        if f"e{i}_{name}" in saved:
                            setattr(cb, name, saved[f"e{i}_{name}"].item())
        self._check()

    def _seed_states(self):
        return [v for v in self.model.non_trainable_variables if v.path.endswith("seed_generator_state")]

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs_done = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        if self.seed_file is not None and self.seed_file.parent.is_dir():  # BackupAndRestore saved this epoch
            states = {f"s{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(self._seed_states())}
            states.update({f"e{i}_{name}": np.asarray(getattr(cb, name)) for i, cb in enumerate(self.stopping)
                           for name in _STOPPING_STATE if getattr(cb, name, None) is not None})
            with atomic_path(self.seed_file) as tmp:
                np.savez(tmp, **states)
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
