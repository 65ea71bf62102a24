"""The parameter schema: every parameter's name, type, range, allowed values, default and meaning, once.

Everything else derives from it:

- the notebooks' ``parameters`` cells are :func:`render_cell` of their section (a test compares them;
  ``python -m pedgm_kit.schema`` rewrites those cells, and only those);
- parameter files (:func:`pedgm_kit.params.load_params`) are checked with :func:`section_problems`;
- :class:`pedgm_kit.train.TrainConfig` is built from the ``train`` section's fields marked ``config``
  and validates itself with the same checks;
- the command line's ``choices=`` are the tuples below (:data:`ENGINES`, :data:`PADDINGS`, ...).

Two defaults, on purpose, for training sizes. ``Param.default`` is what a notebook (and a parameter
file that leaves the key out) uses: a CPU demo size, so "Run All" finishes in minutes on a laptop.
``Param.study`` is the original study's value, :class:`~pedgm_kit.train.TrainConfig`'s default for
the Python API (``epochs`` 100 with early stopping, ``max_slices`` 0 = all). Both are written here;
a notebook's comment names the study's value (:func:`render_cell`).

A value's type is its default's: ``bool``, an integer, a number (an integer is accepted), a string,
a list (of the default's item type) or a mapping; ``Param.any_kind`` lets the check alone decide (a
number where the default is a string). A parameter's check is ``Param.choices`` or ``Param.rule``
(a description and a predicate); :data:`CONSTRAINTS` relate parameters of one section.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CONSTRAINTS", "ENGINES", "EXPORT_FORMATS", "FINAL_MODES", "FREEZE", "LAYOUTS", "LOSSES", "PADDINGS", "SCHEMA",
           "SECTIONS", "THRESHOLD_RULES", "UNCERTAINTY_METHODS", "Param", "config_parameters", "effective_values",
           "read_cell", "render_cell", "section_problems", "write_cells"]

# ---------------------------------------------------------------------------------------------- choices
#: Dataset layouts (:func:`pedgm_kit.datasets.discover`).
LAYOUTS = ("bids", "folders")
#: Inference engines (``pedgm segment --engine``).
ENGINES = ("auto", "keras", "xla", "onnx", "openvino")
#: How a window reaching past the image is filled (``pedgm segment --padding``).
PADDINGS = ("reflect", "mean", "background", "none")
#: Per-slice uncertainty methods (``pedgm segment --uncertainty``; notebooks add ``""``: none).
UNCERTAINTY_METHODS = ("tta", "mc_dropout")
#: Weights export formats (``pedgm export --format``).
EXPORT_FORMATS = ("onnx", "hdf5")
#: Frozen layers during fine-tuning: none, or the first two blocks.
FREEZE = ("none", "early")
#: Training losses: the study's soft Dice, or Dice plus binary cross-entropy.
LOSSES = ("dice", "dice_bce")
#: How ``pedgm train --final`` makes the deliverable model (:mod:`pedgm_kit.deliver`): the fold models as
#: one ensemble, or the variant retrained once on every non-locked person.
FINAL_MODES = ("ensemble", "retrain_all")
#: How a trained model's threshold is chosen, never on test data (see :mod:`pedgm_kit.train.config`).
THRESHOLD_RULES = ("loss", "validation")

Rule = tuple[str, Callable[[Any], bool]]


def _choice_text(options) -> str:
    shown = [repr(o) for o in options]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _at_least(n: int) -> Rule:
    return ("a positive integer" if n == 1 else f"an integer >= {n}"), (lambda v: v >= n)


_POSITIVE = _at_least(1)
_NON_NEGATIVE = _at_least(0)
_NON_NEGATIVE_NUMBER: Rule = ("a number >= 0", lambda v: v >= 0)
_SEED: Rule = ("an integer in [0, 2**32)", lambda v: 0 <= v < 2**32)
_OPEN_FRACTION: Rule = ("a number in (0, 1)", lambda v: 0 < v < 1)
_PROBABILITY: Rule = ("a probability in [0, 1]", lambda v: 0 <= v <= 1)
_THREE_FRACTIONS: Rule = ("three positive fractions summing to 1", lambda v: len(v) == 3 and all(x > 0 for x in v)
                          and math.isclose(sum(v), 1.0, abs_tol=1e-6))


def _shift_ok(v) -> bool:
    from .shift import parse_shift

    try:
        parse_shift(v)
    except Exception:  # noqa: BLE001 - any failure means "not a valid shift"
        return False
    return True


def _cord_scale_ok(v) -> bool:
    if isinstance(v, str):
        return v in ("", "auto")
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return False
    from .segment.cord_scale import check_cord_scale  # numbers: the range the segmenter enforces

    try:
        check_cord_scale(v)
    except ValueError:
        return False
    return True


def _locked_spec(v) -> bool:
    from .splits.locked import is_locked_spec

    return is_locked_spec(v)


def _metric_names(v) -> bool:
    from .metrics import METRICS

    return set(v) <= set(METRICS)


def _variant_names(v) -> bool:
    from .train.config import ADAPTED_VARIANT, VARIANTS

    return (len(v) > 0 and all(isinstance(x, str) and x in {**VARIANTS, **ADAPTED_VARIANT} for x in v)
            and len(set(v)) == len(v))


def _persons_list(v) -> bool:
    return len(v) > 0 and all((isinstance(x, int) and not isinstance(x, bool) and x >= 1) or x == "all" for x in v)


# ------------------------------------------------------------------------------------------------ Param
_SAME = object()


@dataclass(frozen=True)
class Param:
    """One parameter.

    Attributes
    ----------
    name : str
    default
        The notebook's (and a parameter file's) default; its type is the parameter's type.
    doc : str
        Units or allowed values: the comment beside it in the notebook.
    choices : tuple
        Allowed values (empty: any value of the type that passes ``rule``).
    rule : (str, callable) or None
        What the value must be, in words, and the predicate that checks it.
    study
        The original study's value where the notebook uses a smaller demo size: the default of
        :class:`~pedgm_kit.train.TrainConfig` (unset: ``default``).
    config : bool
        A field of :class:`~pedgm_kit.train.TrainConfig`.
    notebook : bool
        A line of the section's notebook ``parameters`` cell (False: the Python API only).
    smoke_for : str
        With ``smoke = True`` this parameter's value replaces the named one (``smoke_epochs`` -> ``epochs``).
    any_kind : bool
        The value may be of another kind than the default (the check alone decides).
    note : str
        A longer explanation, for docstrings.
    """

    name: str
    default: Any
    doc: str
    choices: tuple = ()
    rule: Rule | None = None
    study: Any = _SAME
    config: bool = False
    notebook: bool = True
    smoke_for: str = ""
    any_kind: bool = False
    note: str = ""

    @property
    def library_default(self):
        """The Python API's default (:class:`~pedgm_kit.train.TrainConfig`): the study's value if set."""
        return self.default if self.study is _SAME else self.study

    @property
    def type(self) -> type:
        return type(self.default)

    def requirement(self, value) -> str | None:
        """``"must be ..."`` when ``value`` is not acceptable, else None."""
        if not self.any_kind and not _same_kind(value, self.default):
            return f"must be {_type_name(self.default)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        text, ok = (_choice_text(self.choices), lambda v: v in self.choices) if self.choices else (self.rule or ("", None))
        if ok is None:
            return None
        try:
            good = bool(ok(value))
        except (TypeError, ValueError):
            good = False
        return None if good else f"must be {text}"

    def problem(self, value) -> str | None:
        """Why ``value`` is not acceptable (``"must be ..., got ..."``), or None."""
        why = self.requirement(value)
        if why is None:
            return None
        wrong_kind = why.startswith("must be") and not self.any_kind and not _same_kind(value, self.default)
        return f"{why}, got {_describe(value) if wrong_kind else repr(value)}"


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def _same_kind(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return _is_int(value) or (isinstance(value, numbers.Real) and not isinstance(value, bool))
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        if not isinstance(value, list):
            return False
        kinds = {type(x) for x in default}
        return all(_same_kind(x, default[0]) for x in value) if len(kinds) == 1 else True  # [] : any items
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True  # None: anything


def _type_name(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        inner = f" of {_type_name(default[0]).removeprefix('a ').removeprefix('an ')}s" if default else ""
        return f"a list{inner}"
    if isinstance(default, dict):
        return "a mapping"
    return "a value"


def _describe(value) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


# ------------------------------------------------------------------------------- parameters shared by sections
_DATA_DIR = Param("data_dir", "", "dataset root; \"\": the bundled gm-challenge-data sample (fetched through the registry)")
_LAYOUT = Param("layout", "bids", "\"bids\" or \"folders\" (original study: <id>/mFFE_crop_r.nii.gz, IDs in Controls.txt)",
                choices=LAYOUTS)
_IDS_FILE = Param("ids_file", "Controls.txt", "folders layout: file listing first-scan IDs (relative to data_dir)")
_SECOND_IDS_FILE = Param("second_ids_file", "Controls_second.txt",
                         "folders layout: second-scan IDs (\"<id>_second\" folders)")
_IMAGE_NAME = Param("image_name", "mFFE_crop_r.nii.gz", "folders layout: image file name in each folder")
_GM_NAME = Param("gm_name", "mFFE_crop_r_gmseg.nii.gz", "folders layout: manual GM mask file name")
_SEED_PARAM = Param("seed", 0, "seed", rule=_SEED)
_SMOKE = Param("smoke", False, "smoke-size run")
_CORD_SCALE = Param("cord_scale", "", "\"\" (none) or \"auto\"", rule=(
    "'' (off), 'auto' or a number in 0.4-1.6 (as --cord-scale)", _cord_scale_ok), any_kind=True)
_UNCERTAINTY = Param("uncertainty", "tta", "\"tta\", \"mc_dropout\" or \"\"", choices=(*UNCERTAINTY_METHODS, ""))
_BALANCE_ON = Param("balance_on", "", "column to balance across splits")


def _with(param: Param, **changes) -> Param:
    return dataclasses.replace(param, **changes)


_DATASET = (_DATA_DIR, _LAYOUT, _IDS_FILE, _SECOND_IDS_FILE, _IMAGE_NAME, _GM_NAME)

# --------------------------------------------------------------------------------------------- sections
_PREPROCESS = (
    *_DATASET,
    Param("output_dir", "../outputs/notebooks/preprocess", "everything is written under this folder"),
    Param("shift", "", "\"\" (none), \"invert\" or \"scale:0.7\": a SIMULATED domain shift of every scan "
          "(see pedgm_kit.shift)", rule=(
              "'', 'invert', 'scale:<factor>' (factor 0.3-2, not 1) or 'gamma:<g>' (g 0.2-5, not 1)", _shift_ok)),
    _with(_CORD_SCALE, doc="\"\" (none) or \"auto\": resample small (e.g. pediatric) cords to the adult size the "
          "weights expect"),
    Param("spacing_mm", 0.25, "in-plane pixel size of the model grid, mm", rule=(
        "a positive number of mm (0.05-5)", lambda v: 0.05 <= v <= 5)),
    Param("window", 200, "window side, pixels (the network's input size)", rule=_at_least(16)),
    Param("draft_model", "challenge", "model for draft masks: \"challenge\", \"large\" or a .hdf5 path"),
    Param("make_drafts", True, "draft GM masks for images without one"),
    _with(_UNCERTAINTY, doc="uncertainty of the drafts, to review the least certain first: \"tta\", \"mc_dropout\" or \"\""),
    Param("retrain", False, "True: fine-tune the pretrained model on every labelled scan (accepted corrections included)"),
    Param("retrain_epochs", 3, "epochs of that fine-tune (CPU demo size)", rule=_POSITIVE),
    Param("max_drafts", 2, "0: draft every unlabelled image; N > 0: at most N (the sample has 8; 2 keep the demo quick)",
          rule=_NON_NEGATIVE),
    Param("n_qc_shown", 3, "QC montages displayed inline (all are saved as PNG)", rule=_NON_NEGATIVE),
    _with(_SEED_PARAM, doc="nothing random here; kept so every notebook takes a seed"),
    _with(_SMOKE, doc="True: at most smoke_max_scans labelled scans and smoke_max_drafts drafts"),
    Param("smoke_max_scans", 3, "labelled scans preprocessed when smoke is True", rule=_POSITIVE),
    Param("smoke_max_drafts", 1, "drafts made when smoke is True", rule=_NON_NEGATIVE),
)

_DATA = (
    Param("preprocessed_dir", "../outputs/notebooks/preprocess/preprocessed",
          "folder notebook 01 wrote (index.csv + NIfTIs)"),
    Param("output_dir", "../outputs/notebooks/data", "writes data/{train,val,test}.npz, manifest.json, split table and plot"),
    Param("split_sheet", "", ".xlsx/.tsv/.csv with Training/Val/Testing ID columns; \"\": automatic split"),
    Param("split_sheet_name", "DTI_Normal_Level", "sheet of an .xlsx split file"),
    _with(_IDS_FILE, default="", doc="Controls.txt for the spreadsheet's ID rules (empty: none)"),
    _with(_SECOND_IDS_FILE, default="", doc="Controls_second.txt (empty: none)"),
    Param("fractions", [0.6, 0.2, 0.2], "train/val/test fractions of scans (automatic split); each > 0, sum 1",
          rule=_THREE_FRACTIONS),
    _with(_BALANCE_ON, doc="column to balance across splits, e.g. \"Site\" or a region code (empty: none)"),
    Param("keep_empty_slices", True, "keep slices without GM (the original kept them)"),
    Param("cv_folds", 0, "person-grouped k-fold cross-validation (k at least 2); 0: one train/val/test split",
          rule=("0 (one split) or an integer >= 2", lambda v: v == 0 or v >= 2)),
    Param("val_fraction", 0.25, "cross-validation: share of each fold's non-test scans used for validation",
          rule=_OPEN_FRACTION),
    Param("locked_test_persons", [], "locked test set: person ids, or a fraction (0-1) of scans whose persons are "
          "drawn seeded and balanced like the split; in no fold and no choice, scored once at the end ([]: none)",
          any_kind=True, rule=("a list of person ids or a number in [0, 1)", _locked_spec)),
    Param("review_logs", [], "annotation-loop review.csv files: a labelled scan listed there has a corrected-draft "
          "mask (pedgm_kit.provenance); notebook 01's drafts/review.csv is always read"),
    _with(_SEED_PARAM, doc="seed of the automatic split"),
    _with(_SMOKE, doc="no effect on the data here (01 already limits smoke runs); kept for the pipeline"),
)

_TRAIN_DATA = "../outputs/notebooks/data/data"

_AUGMENT = (
    _with(_DATA_DIR, default=_TRAIN_DATA, doc="folder with train.npz (notebook 02)"),
    Param("output_dir", "../outputs/notebooks/augment", "previews, materialised arrays and results are written here"),
    Param("n_preview", 8, "slices shown in the preview grid", rule=_POSITIVE),
    Param("multiplier", 16, "augmented copies per slice when materialising (the original's x16)", rule=_POSITIVE),
    Param("materialise_copies", False, "write the x16 augmented training set to output_dir/train_x16.npz"),
    Param("p_geometric", 0.5, "probability of each geometric step (crop/pad, affine)", rule=_PROBABILITY),
    _with(_SEED_PARAM, doc="seed of the augmentation parameters"),
    _with(_SMOKE, doc="True: preview and materialise at most smoke_max_slices slices"),
    Param("smoke_max_slices", 4, "training slices used when smoke is True", rule=_POSITIVE),
)

_TRAIN = (
    _with(_DATA_DIR, default=_TRAIN_DATA, doc="folder with train/val/test.npz (notebook 02)"),
    Param("output_dir", "../outputs/notebooks/train", "run folder; the variant writes <output_dir>/<variant>/"),
    Param("variant", "", "variant folder name; \"\": pretrained_aug / pretrained_noaug / scratch_aug / scratch_noaug"),
    Param("pretrained", True, "start from init_weights (True) or from random weights (False)", config=True),
    Param("init_weights", "challenge", "\"challenge\", \"large\" or a .hdf5 path; also the baseline compared with",
          config=True),
    Param("augment", True, "on-the-fly augmentation of training batches", config=True),
    Param("epochs", 3, "maximum epochs", rule=_POSITIVE, study=100, config=True),
    Param("patience", 5, "early stopping patience, epochs", rule=_NON_NEGATIVE, config=True,
          note="Early stopping (mode max) on the selection metric: the hard Dice of the whole validation split at "
               "the model's threshold, pooled per person then averaged over persons (``val_dice_hard``; the soft "
               "batch Dice is logged only)."),
    Param("min_delta", 0.001, "early stopping: smallest val Dice gain that counts", rule=_NON_NEGATIVE_NUMBER,
          config=True),
    Param("batch_size", 4, "slices per training batch", rule=_POSITIVE, config=True),
    Param("learning_rate", 0.001, "Adam learning rate", rule=("a positive number", lambda v: 0 < v < 10), config=True),
    Param("freeze", "none", "\"none\" or \"early\" (freeze the first two blocks)", choices=FREEZE, config=True,
          note="\"early\" freezes conv2d_1-2 and the dilation-2 convolutions."),
    Param("sweep", False, "epoch sweep: train all epochs without early stopping and plot where it would stop",
          config=True),
    Param("max_slices", 24, "use at most this many slices per split (0: all)", rule=_NON_NEGATIVE, study=0, config=True),
    Param("train_persons", 0, "train on this many training persons only (0: all): nested, seeded subsets "
          "(data-efficiency curve)", rule=_NON_NEGATIVE, config=True,
          note="A seeded subset, nested: the persons of a smaller subset are always in the larger ones."),
    Param("loss", "dice", "\"dice\" (the study's) or \"dice_bce\" (Dice + binary cross-entropy: adapts under a domain "
          "shift)", choices=LOSSES, config=True,
          note="Dice + BCE's gradient does not vanish when a pretrained network's sigmoid outputs are saturated "
               "on the wrong side."),
    Param("threshold", "loss", "\"loss\": fixed a priori by the loss (Dice 0.999, Dice + BCE 0.5); \"validation\": "
          "best of a grid on validation", choices=THRESHOLD_RULES, config=True,
          note="Never chosen on test data: \"loss\" fixes it before training (``a_priori_threshold``); "
               "\"validation\" picks the value of ``THRESHOLD_GRID`` with the best validation Dice, with the epoch. "
               "``best.json`` and ``summary.json`` record it and the rule."),
    Param("adabn", False, "re-estimate the BatchNorm statistics on the training slices before training (AdaBN)",
          config=True),
    Param("reinit_head", False, "re-initialise the last layer before fine-tuning", config=True),
    Param("warmup_epochs", 0, "linear learning-rate warm-up over this many epochs (0: none)", rule=_NON_NEGATIVE,
          config=True),
    Param("deterministic", True, "identical results for the same seed (a little slower); False: fastest kernels",
          config=True, note="TensorFlow op determinism, seeded pipelines, augmentation not overlapped with the "
                            "training step, one inter-op thread (``pedgm_kit._backend``); costs some speed "
                            "(``benchmarks/bench_train.py``)."),
    Param("export_onnx", True, "also write best.onnx for SCT (a few seconds per run)"),
    Param("mixed_precision", False, "float16 compute on GPUs", config=True),
    _with(_SEED_PARAM, doc="seed of weights init, shuffling and augmentation", config=True),
    _with(_SMOKE, doc="True: smoke_epochs epochs on at most smoke_max_slices slices per split"),
    Param("smoke_epochs", 2, "epochs when smoke is True", rule=_POSITIVE, smoke_for="epochs"),
    Param("smoke_max_slices", 12, "slices per split when smoke is True", rule=_POSITIVE, smoke_for="max_slices"),
    Param("augmentation", {}, "augmentation settings (pedgm_kit.augment; empty: its defaults)", config=True,
          notebook=False),
)

_EVALUATE = (
    _with(_DATA_DIR, doc="str: dataset root; \"\" for the bundled gm-challenge-data sample (fetched through the registry)"),
    *_DATASET[1:],
    Param("output_dir", "../outputs/notebooks", "str: run folder; everything is written under <output_dir>/evaluation/"),
    _with(_SEED_PARAM, doc="int: seed of the bootstrap resampling (and of test-time augmentation when tta is True)"),
    _with(_SMOKE, doc="bool: smoke-size run: at most smoke_max_scans scans and smoke_n_boot bootstrap resamples"),
    Param("smoke_max_scans", 2, "positive int: scans evaluated when smoke is True", rule=_POSITIVE),
    Param("smoke_n_boot", 200, "positive int: bootstrap resamples when smoke is True", rule=_POSITIVE),
    Param("models", ["challenge", "large"], "list: \"challenge\", \"large\" and/or paths to trained .hdf5 weights "
          "(.json beside)"),
    Param("baseline", "challenge", "str: label of the baseline in models (a weights file's label is its file stem)"),
    Param("split", "test", "\"test\" (test part of the person-grouped auto split) or \"all\" (every labelled scan)",
          choices=("test", "all")),
    Param("split_fractions", [0.6, 0.2, 0.2], "list of 3 floats summing to 1: train/val/test fractions of scans",
          rule=_THREE_FRACTIONS),
    Param("split_seed", 3, "int: seed of an auto split, for pretrained models only (trained models need "
          "split_manifest)", rule=_SEED),
    Param("split_manifest", "../outputs/notebooks/data/manifest.json", "str: notebook 02's manifest; its test scans "
          "are evaluated (empty: use split/split_seed)"),
    _with(_BALANCE_ON, doc="str: participants.tsv column the split balances, e.g. \"Site\"; \"\" for none"),
    Param("by", [], "list: participants.tsv columns to break the Dice down by (table + forest plot), e.g. [\"Site\"]"),
    Param("n_boot", 2000, "positive int: bootstrap resamples, where the measured interval rule picks a bootstrap",
          rule=_POSITIVE),
    Param("stat_metrics", ["DSC", "MSD", "HSD"], "list: metrics tested against the baseline (names in "
          "pedgm_kit.metrics.METRICS)", rule=("names of pedgm_kit.metrics.METRICS", _metric_names)),
    Param("alpha", 0.05, "float in (0, 1): family-wise level of the Holm-adjusted p-values", rule=_OPEN_FRACTION),
    Param("retest", True, "bool: segment the rescans (run-2) of the evaluated persons and report test-retest CV of "
          "GM area"),
    Param("retest_slices", "labelled", "\"labelled\" (slice positions labelled in the run-1 manual mask) or \"all\" "
          "(every slice)", choices=("labelled", "all")),
    Param("n_summary_slices", 3, "positive int: rows (slices) of the result-summary figure", rule=_POSITIVE),
    Param("tta", False, "bool: test-time augmentation, as `pedgm segment --tta` (9 forward passes: slower)"),
    _with(_CORD_SCALE, doc="\"\" or \"auto\": size normalisation of small cords before segmenting (pedgm segment "
          "--cord-scale)"),
    _with(_UNCERTAINTY, doc="\"tta\", \"mc_dropout\" or \"\" (none): per-slice uncertainty of every prediction "
          "(9 passes each)"),
    Param("mask_pattern", "{scan_id}_gmseg.nii.gz", "str: file names in a folder of another tool's masks given as a "
          "model"),
    Param("shift_label", "", "str: the SIMULATED shift of the data (e.g. \"simulated contrast inversion\"), named in "
          "every output"),
    Param("train_dir", "../outputs/notebooks/train", "str: every <variant>/best.hdf5 found here is evaluated too "
          "(empty: none)"),
    Param("curve_dir", "", "str: training folder with fold-*/persons-*/ runs: the data-efficiency curve (empty: none)"),
)

_VARIANTS_RULE: Rule = ("a non-empty list of variant names, each once (leave the key out for the default)",
                        _variant_names)
#: ``pedgm run``'s own section (:mod:`pedgm_kit.runner`): what the pipeline trains; no notebook.
_PIPELINE = (
    Param("variants", ["pretrained_aug"], "training variants (default the original four)", rule=_VARIANTS_RULE,
          notebook=False),
    Param("adapted_variant", True, "also train pretrained_adapted (Dice + BCE)", notebook=False),
    Param("train_persons", [], "data-efficiency curve: training-person counts, e.g. [1, 2, 4, all]", notebook=False,
          rule=("a list of person counts (integers >= 1) and/or 'all'", _persons_list)),
    Param("curve_variants", ["pretrained_noaug"], "variants of the data-efficiency curve", rule=_VARIANTS_RULE,
          notebook=False),
    Param("final", FINAL_MODES[0], "`pedgm train --final`: \"ensemble\" (the fold models, averaged) or \"retrain_all\" "
          "(retrained once on all non-locked persons, epochs = median best epoch of the folds)", choices=FINAL_MODES,
          notebook=False),
)

#: Parameter-file section -> notebook (``pipeline``: the runner's own section, no notebook).
SECTIONS: dict[str, str] = {
    "preprocess": "01_preprocess.ipynb",
    "data": "02_data_creation.ipynb",
    "augment": "03_augment.ipynb",
    "train": "04_train.ipynb",
    "evaluate": "05_evaluate.ipynb",
    "pipeline": "",
}

#: Section -> {name: :class:`Param`}, in the notebook cell's order.
SCHEMA: dict[str, dict[str, Param]] = {
    section: {p.name: p for p in params} for section, params in zip(
        SECTIONS, (_PREPROCESS, _DATA, _AUGMENT, _TRAIN, _EVALUATE, _PIPELINE), strict=True)
}

#: Rules relating parameters of one section: section -> [(names, what must hold, check of the values)].
#: They are checked on the values a run uses (:func:`effective_values`: defaults, the given values, the
#: smoke-size replacements).
CONSTRAINTS: dict[str, list[tuple[tuple[str, ...], str, Callable[[Mapping], bool]]]] = {
    "train": [
        (("warmup_epochs", "epochs"), "warmup_epochs must be 0 or fewer than the epochs",
         lambda v: v["warmup_epochs"] == 0 or v["warmup_epochs"] < v["epochs"]),
        (("adabn", "reinit_head", "pretrained"), "adabn and reinit_head adapt pretrained weights: set pretrained=True",
         lambda v: not ((v["adabn"] or v["reinit_head"]) and not v["pretrained"])),
    ],
}


def config_parameters() -> list[Param]:
    """The ``train`` parameters that are :class:`~pedgm_kit.train.TrainConfig` fields, in order."""
    return [p for p in SCHEMA["train"].values() if p.config]


def effective_values(section: str, values: Mapping[str, Any], *, library: bool = False) -> dict[str, Any]:
    """The values a run of ``section`` uses: defaults, then ``values``, then smoke-size replacements.

    ``library`` takes :attr:`Param.library_default` (the study's values, as ``TrainConfig``) for what
    ``values`` leaves out, instead of the notebook's defaults.
    """
    params = SCHEMA[section]
    out = {name: (p.library_default if library else p.default) for name, p in params.items()}
    out.update(values)
    if out.get("smoke") is True:
        out.update({p.smoke_for: out[name] for name, p in params.items() if p.smoke_for})
    return out


def section_problems(section: str, values: Mapping[str, Any], *, library: bool = False) -> list[tuple[str, str]]:
    """Problems of a section's values: ``[(key, "must be ..., got ...")]``; unknown keys are not checked here.

    Each known key is checked on its own, then :data:`CONSTRAINTS` on :func:`effective_values`
    (those whose parameters all passed), reported under the section's name as key ``""``.
    """
    params = SCHEMA[section]
    problems = [(key, why) for key, value in values.items() if key in params
                for why in [params[key].problem(value)] if why]
    bad = {key for key, _ in problems}
    smoke_bad = {params[k].smoke_for for k in bad if params[k].smoke_for}
    used = effective_values(section, {k: v for k, v in values.items() if k in params}, library=library)
    for names, text, ok in CONSTRAINTS.get(section, []):
        if bad & set(names) or smoke_bad & set(names):
            continue
        if not ok(used):
            problems.append(("", text))
    return problems


# ------------------------------------------------------------------------------------ notebook parameters cells
def _literal(value) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def _comment(p: Param) -> str:
    if p.study is _SAME:
        return p.doc
    return f"{p.doc}; CPU demo size (the original study's and TrainConfig's default: {_literal(p.study)})"


def render_cell(section: str) -> str:
    """The source of a section's notebook ``parameters`` cell: ``name = default  # doc`` per line."""
    return "\n".join(f"{p.name} = {_literal(p.default)}  # {_comment(p)}"
                     for p in SCHEMA[section].values() if p.notebook)


def _parameters_cell(cells: list) -> dict | None:
    return next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)


def read_cell(notebook: str | Path) -> str:
    """The source of a notebook's ``parameters`` cell (raises ``LookupError`` when it has none)."""
    cell = _parameters_cell(json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"])
    if cell is None:
        raise LookupError(f"{notebook}: no cell tagged 'parameters'")
    return "".join(cell["source"])


def write_cells(folder: str | Path) -> list[Path]:
    """Rewrite the ``parameters`` cell of each notebook in ``folder`` from the schema; returns those changed.

    Only that cell's source changes; the file is read right before it is written, written atomically.
    """
    from ._utils import atomic_path

    changed = []
    for section, name in SECTIONS.items():
        if not name:
            continue
        path = Path(folder) / name
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = _parameters_cell(notebook["cells"])
        source = render_cell(section)
        if cell is None or "".join(cell["source"]) == source:
            continue
        cell["source"] = source.splitlines(keepends=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        changed.append(path)
    return changed


if __name__ == "__main__":  # python -m pedgm_kit.schema [notebooks folder]: rewrite the parameters cells
    import sys

    for written in write_cells(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "notebooks"):
        print(f"rewrote the parameters cell of {written}")
