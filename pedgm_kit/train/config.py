"""What a training run is: the four variants and :class:`TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import ParameterError

__all__ = ["VARIANTS", "TrainConfig"]

VARIANTS = {
    "pretrained_aug": (True, True),
    "pretrained_noaug": (True, False),
    "scratch_aug": (False, True),
    "scratch_noaug": (False, False),
}


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
