"""What a training run is: the variants and :class:`TrainConfig`."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from ..exceptions import ParameterError
from ..schema import SCHEMA, THRESHOLD_RULES, config_parameters, effective_values, section_problems

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


# How a trained model's threshold is chosen (``TrainConfig.threshold``; :data:`THRESHOLD_RULES`, from the
# schema), each without looking at test data: "loss" -- fixed before training by the loss
# (:func:`a_priori_threshold`); "validation" -- the value of :data:`THRESHOLD_GRID` with the best
# validation Dice, chosen together with the epoch.

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


def _refuse(values: Mapping[str, Any], *, library: bool = False) -> None:
    """A :class:`ParameterError` naming every problem of these ``train`` values (the schema's checks)."""
    problems = section_problems("train", values, library=library)
    if problems:
        raise ParameterError("invalid training parameters: " + ", ".join(
            f"{k}={values[k]!r} ({SCHEMA['train'][k].requirement(values[k])})" if k else why for k, why in problems))


def _fields() -> list[tuple]:
    out = []
    for p in config_parameters():
        default = p.library_default
        made = (field(default_factory=lambda d=default: copy.deepcopy(d)) if isinstance(default, (list, dict))
                else field(default=default))
        out.append((p.name, p.type, made))
    return out


#: The fields of :class:`TrainConfig`: the ``train`` parameters of :mod:`pedgm_kit.schema` marked ``config``,
#: with their :attr:`~pedgm_kit.schema.Param.library_default` (the original study's values).
_TrainFields = make_dataclass("_TrainFields", _fields(), namespace={"__module__": __name__})


@dataclass
class TrainConfig(_TrainFields):
    """Settings of one training run (defaults: the original study's).

    The fields, their types, allowed values and defaults are those of :mod:`pedgm_kit.schema`'s
    ``train`` section (the parameters marked ``config``); they are checked there, as a parameter
    file is (:func:`pedgm_kit.schema.section_problems`). Notebook 04 uses smaller CPU demo sizes
    for ``epochs`` and ``max_slices`` (``Param.default``); this class takes the study's
    (``Param.study``). :meth:`from_parameters` builds one from a notebook's or a file's values.

    Attributes
    ----------
    """  # the attributes, one per field, are appended from the schema below the class

    def __post_init__(self):
        _refuse({p.name: getattr(self, p.name) for p in config_parameters()}, library=True)

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The configuration notebook 04's parameters (or a ``train`` section) describe.

        ``values`` may hold any names (e.g. a notebook's ``globals()``); those of the ``train``
        section are checked as a parameter file's are and taken, on top of the notebook's defaults
        (CPU demo sizes); with ``smoke`` true ``smoke_epochs`` / ``smoke_max_slices`` replace
        ``epochs`` / ``max_slices``.

        Raises
        ------
        ParameterError
            A value of the wrong type or out of range (one line naming each).
        """
        given = {k: v for k, v in values.items() if k in SCHEMA["train"]}
        _refuse(given)
        used = effective_values("train", given)
        return cls(**{p.name: used[p.name] for p in config_parameters()})

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


def _attribute(p) -> str:
    kind = "{" + ", ".join(map(repr, p.choices)) + "}" if p.choices else p.type.__name__
    text = " ".join(filter(None, [p.doc[:1].upper() + p.doc[1:] + ".", p.note]))
    return f"    {p.name} : {kind}, default {p.library_default!r}\n        {text}\n"


if TrainConfig.__doc__:  # None under python -OO
    TrainConfig.__doc__ = TrainConfig.__doc__.rstrip(" ") + "".join(_attribute(p) for p in config_parameters())
