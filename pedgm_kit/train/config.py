"""What a training run is: the variants and :class:`TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..exceptions import ParameterError

__all__ = ["ADAPTED_VARIANT", "RECIPES", "THRESHOLD_GRID", "THRESHOLD_RULES", "VARIANTS", "TrainConfig",
           "a_priori_threshold"]

#: The original study's four variants: name -> the :class:`TrainConfig` settings that make it.
VARIANTS: dict[str, dict] = {
    "pretrained_aug": {"pretrained": True, "augment": True},
    "pretrained_noaug": {"pretrained": True, "augment": False},
    "scratch_aug": {"pretrained": False, "augment": True},
    "scratch_noaug": {"pretrained": False, "augment": False},
}

#: Fine-tuning recipes compared under a simulated domain shift (``benchmarks/adapt_recipes.py``):
#: name -> settings. ``original`` is the study's (Dice loss from the pretrained weights).
RECIPES: dict[str, dict] = {
    "original": {"loss": "dice", "adabn": False, "reinit_head": False, "warmup_epochs": 0},
    "dice_bce": {"loss": "dice_bce", "adabn": False, "reinit_head": False, "warmup_epochs": 0},
    "adabn": {"loss": "dice", "adabn": True, "reinit_head": False, "warmup_epochs": 0},
    "adabn_dice_bce": {"loss": "dice_bce", "adabn": True, "reinit_head": False, "warmup_epochs": 0},
    "adabn_dice_bce_head": {"loss": "dice_bce", "adabn": True, "reinit_head": True, "warmup_epochs": 0},
    "adabn_dice_bce_warmup": {"loss": "dice_bce", "adabn": True, "reinit_head": False, "warmup_epochs": 2},
}

#: The fifth variant: the pretrained network fine-tuned with the recipe that adapted best under a
#: simulated contrast inversion (Dice + binary cross-entropy; AdaBN added nothing once training
#: starts, see the README); switched off with ``adapted_variant: false``.
ADAPTED_VARIANT: dict[str, dict] = {
    "pretrained_adapted": {"pretrained": True, "augment": False, **RECIPES["dice_bce"]},
}


#: How a trained model's threshold is chosen (``TrainConfig.threshold``), each without looking at test data:
#: "loss" -- fixed before training by the loss (:func:`a_priori_threshold`); "validation" -- the value of
#: :data:`THRESHOLD_GRID` with the best validation Dice, chosen together with the epoch.
THRESHOLD_RULES = ("loss", "validation")

#: Thresholds tried by the "validation" rule (SCT's 0.999 included).
THRESHOLD_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.999)


def a_priori_threshold(loss: str, init_threshold: float) -> tuple[float, str]:
    """The threshold a loss implies, fixed before any training or scoring: (threshold, rule in words).

    The rule is a property of the loss, not a measurement. A network trained on soft Dice alone
    saturates its sigmoid, so it keeps the threshold of the weights it starts from (SCT's 0.999 for
    the challenge weights, whose models were trained that way). With a binary cross-entropy term
    (``dice_bce``) the output is a calibrated probability of GM, and the threshold of a probability
    is 0.5. Neither value was chosen by looking at validation or test results.
    """
    if loss == "dice_bce":
        return 0.5, "fixed a priori by the loss: Dice + BCE outputs a probability, thresholded at 0.5"
    return float(init_threshold), (f"fixed a priori by the loss: Dice loss keeps the initial weights' threshold "
                                   f"({float(init_threshold):g}, SCT's)")


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
        Early stopping (mode max) on the selection metric: the hard Dice of the whole validation
        split at the model's threshold, pooled per person then averaged over persons
        (``val_dice_hard``; the soft batch Dice is logged only).
    batch_size : int
    learning_rate : float
    freeze : {"none", "early"}
        "early" freezes the first two blocks (conv2d_1-2 and the dilation-2 convolutions).
    seed : int
        Seed of weights, shuffling, augmentation and the person subset.
    sweep : bool
        Epoch sweep ("identify epochs"): train all ``epochs`` without early stopping.
    max_slices : int
        Use at most this many slices per split (0 = all; smoke runs).
    train_persons : int
        Train on the slices of this many training persons only (0 = all): a seeded subset, nested
        (the persons of a smaller subset are always in the larger ones) -- the data-efficiency curve.
    mixed_precision : bool
        float16 compute, float32 weights and output.
    loss : {"dice", "dice_bce"}
        The study's soft Dice loss, or Dice plus binary cross-entropy (whose gradient does not vanish
        when a pretrained network's sigmoid outputs are saturated on the wrong side).
    threshold : {"loss", "validation"}
        How the model's threshold is chosen, never on test data (:data:`THRESHOLD_RULES`): "loss"
        fixes it before training (:func:`a_priori_threshold`: Dice + BCE 0.5, Dice SCT's 0.999);
        "validation" picks the value of :data:`THRESHOLD_GRID` with the best validation Dice, with
        the epoch. The weights' ``best.json`` and ``summary.json`` record it and the rule.
    adabn : bool
        Re-estimate every BatchNorm layer's statistics on the training slices before training
        (AdaBN: the network's normalisation moves to the new domain before any weight does).
    reinit_head : bool
        Re-initialise the last (``predictions``) layer before fine-tuning.
    warmup_epochs : int
        Linear learning-rate warm-up over this many epochs (0: none).
    deterministic : bool
        Identical results for the same seed (TensorFlow op determinism, seeded pipelines, augmentation
        not overlapped with the training step, one inter-op thread: see ``pedgm_kit._backend``); costs
        some speed (``benchmarks/bench_train.py``). False for the backend's fastest kernels.
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
    train_persons: int = 0
    mixed_precision: bool = False
    loss: str = "dice"
    threshold: str = "loss"
    adabn: bool = False
    reinit_head: bool = False
    warmup_epochs: int = 0
    deterministic: bool = True
    augmentation: dict = field(default_factory=dict)

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 1, "patience": self.patience >= 0, "min_delta": self.min_delta >= 0,
            "batch_size": self.batch_size >= 1, "learning_rate": self.learning_rate > 0,
            "freeze": self.freeze in ("none", "early"), "max_slices": self.max_slices >= 0,
            "train_persons": self.train_persons >= 0, "loss": self.loss in ("dice", "dice_bce"),
            "threshold": self.threshold in THRESHOLD_RULES,
            "warmup_epochs": 0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0,
            "seed": 0 <= self.seed < 2**32,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ParameterError("invalid training parameters: " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
        if (self.adabn or self.reinit_head) and not self.pretrained:
            raise ParameterError("adabn and reinit_head adapt pretrained weights: set pretrained=True")

    @property
    def variant(self) -> str:
        """The variant's name: one of :data:`VARIANTS` or :data:`ADAPTED_VARIANT`, else base and recipe."""
        for name, settings in {**VARIANTS, **ADAPTED_VARIANT}.items():
            if all(getattr(self, k) == v for k, v in {**RECIPES["original"], **settings}.items()):
                return name
        base = f"{'pretrained' if self.pretrained else 'scratch'}_{'aug' if self.augment else 'noaug'}"
        settings = {k: getattr(self, k) for k in RECIPES["original"]}
        return f"{base}_{next((n for n, r in RECIPES.items() if r == settings), 'custom')}"

    @classmethod
    def names(cls) -> list[str]:
        """Field names (what notebook 04 and ``pedgm train`` may set)."""
        return [f.name for f in fields(cls)]
