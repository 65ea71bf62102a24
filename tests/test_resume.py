"""An interrupted study resumes where it stopped: run state, ``pedgm run --resume``, ``pedgm status``,
SIGTERM during training (SLURM preemption), and resumed == uninterrupted."""

from __future__ import annotations

import os
import signal
import subprocess

import keras
import pytest

from pedgm_kit.runstate import PREEMPTED_EXIT, Preempted
from pedgm_kit.train import TrainConfig, train_variant


class _SigtermAt(keras.callbacks.Callback):
    """Sends this process SIGTERM after the first batch of ``epoch`` (counted from 0): mid-epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.first_epoch, self.current = epoch, None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.first_epoch = epoch if self.first_epoch is None else self.first_epoch
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 0:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_gives_the_uninterrupted_history(tiny_data, tmp_path):
    """Augmented training cut by SIGTERM in epoch 2, resumed: history.csv identical to an uninterrupted run."""
    config = TrainConfig(pretrained=False, augment=True, epochs=3, max_slices=8, batch_size=2, sweep=True)
    whole = train_variant(tiny_data, tmp_path / "whole", config, verbose=0, export_onnx=False)
    with pytest.raises(Preempted, match="1 completed epoch"):
        train_variant(tiny_data, tmp_path / "cut", config, verbose=0, export_onnx=False, callbacks=[_SigtermAt(1)])
    folder = tmp_path / "cut" / "scratch_aug"
    assert (folder / "backup").is_dir() and len((folder / "history.csv").read_text().splitlines()) == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    probe = _SigtermAt(99)
    resumed = train_variant(tiny_data, tmp_path / "cut", config, verbose=0, export_onnx=False, callbacks=[probe])
    assert probe.first_epoch == 1  # continued after the completed epoch, not from zero
    assert (folder / "history.csv").read_text() == (tmp_path / "whole" / "scratch_aug" / "history.csv").read_text()
    for key in ("best_epoch", "best_val_dice", "val_dice_hard", "test_dice"):
        assert resumed[key] == whole[key], key
