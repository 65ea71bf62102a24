"""Models in an evaluation: their labels, where their predictions go, and what makes them.

A model specification is one of

- a built-in name (``"challenge"``, ``"large"``) or a ``.hdf5`` weights file (``.json`` beside it):
  scans are segmented with it, as ``pedgm segment`` does;
- a folder of masks another tool predicted (SCT's ``sct_deepseg graymatter``, an nnU-Net or ivadomed
  model ...): each scan's mask is looked up by file name with a pattern (default
  ``"{scan_id}_gmseg.nii.gz"``; ``*`` wildcards allowed, exactly one file must match), checked (grid,
  binary) and then treated like any prediction;
- either of these with ``{fold}`` in it, for cross-validation: fold ``k``'s test scans are predicted by
  the specification with ``{fold}`` replaced by ``k`` (e.g. ``train/fold-{fold}/pretrained_aug/best.hdf5``).

Every prediction is saved as ``<output_dir>/pred/<model>/<scan_id>.nii.gz`` (:func:`prediction_path`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..datasets import Scan
from ..exceptions import InputFileError, ParameterError
from ..io import (
    check_binary,
    check_choice,
    check_same_grid,
    load_image,
    open_nifti,
    save_like,
)
from ..layout import FOLD_PLACEHOLDER, WEIGHTS_FILE
from ..registry import BUILTIN_MODELS

__all__ = [
    "DEFAULT_MASK_PATTERN",
    "FolderPredictor",
    "SegmenterPredictor",
    "add_trained",
    "check_evaluation",
    "fold_model",
    "make_predictor",
    "model_labels",
    "predict_scan",
    "prediction_path",
]

DEFAULT_MASK_PATTERN = "{scan_id}_gmseg.nii.gz"
"""File name of a scan's mask in a folder of another tool's predictions."""


def model_labels(models: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike]) -> dict[str, str]:
    """Short labels of model specifications, used in tables, figures and folder names.

    Parameters
    ----------
    models : sequence or mapping
        ``"challenge"``, ``"large"`` or paths to ``.hdf5`` weights; or ``{label: spec}``.

    Returns
    -------
    dict of str to str
        ``{label: spec}`` in input order. A built-in keeps its name; a weights file gets its
        stem (``outputs/run/pretrained_aug.hdf5`` -> ``pretrained_aug``), prefixed with its
        folder name if two stems collide.

    Raises
    ------
    ParameterError
        No model, a label repeated, or a label that is not a plain folder name.
    """
    if isinstance(models, (str, os.PathLike)):
        models = [models]
    if isinstance(models, Mapping):
        out = {str(k): str(v) for k, v in models.items()}
    else:
        specs = [str(m) for m in models]
        stems = [m if m in BUILTIN_MODELS else Path(m).name.removesuffix(".hdf5").removesuffix(".h5") for m in specs]
        out = {}
        for spec, stem in zip(specs, stems):
            label = stem
            if stems.count(stem) > 1 and spec not in BUILTIN_MODELS:
                label = f"{Path(spec).parent.name}-{stem}"
            if label in out:
                raise ParameterError(
                    f"model {spec!r} gets the label {label!r} of model {out[label]!r}; pass a {{label: path}} mapping"
                )
            out[label] = spec
    if not out:
        raise ParameterError("models is empty; expected at least one of 'challenge', 'large' or a weights path")
    for label in out:
        if not label or label in (".", "..") or not re.fullmatch(r"[A-Za-z0-9._+-]+", label):
            raise ParameterError(f"model label {label!r} must be a plain name (letters, digits, . _ + -)")
    return out


def add_trained(models, train_dir: str | os.PathLike) -> dict[str, str]:
    """``models`` (labels from :func:`model_labels`) plus every ``<train_dir>/<variant>/best.hdf5``.

    How notebook 05 finds what notebook 04 trained at its default place. A missing or empty
    ``train_dir`` adds nothing.
    """
    labels = model_labels(models)
    folder = Path(train_dir) if train_dir else None
    if folder is not None and folder.is_dir():
        for weights in sorted(folder.glob(f"*/{WEIGHTS_FILE}")):
            labels.setdefault(weights.parent.name, str(weights))
    return labels


def check_evaluation(
    models: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    baseline: str,
    split: str = "test",
    retest_slices: str = "labelled",
) -> dict[str, str]:
    """Check the settings of an evaluation (notebook 05's parameters) before any work.

    Returns
    -------
    dict of str to str
        The model labels (:func:`model_labels`).

    Raises
    ------
    ParameterError
        A bad model list, a baseline that is not one of its labels, or an unknown ``split`` /
        ``retest_slices``.
    """
    check_choice(split, ("test", "all"), name="split")
    check_choice(retest_slices, ("labelled", "all"), name="retest_slices")
    labels = model_labels(models)
    if baseline not in labels:
        raise ParameterError(f"baseline {baseline!r} is not one of the model labels {list(labels)}")
    return labels


def prediction_path(output_dir: str | os.PathLike, model: str, scan_id: str) -> Path:
    """Where :func:`evaluate_models` saves a prediction: ``<output_dir>/pred/<model>/<scan_id>.nii.gz``."""
    return Path(output_dir) / "pred" / model / f"{scan_id}.nii.gz"


class SegmenterPredictor:
    """Predicts by segmenting with a loaded model (:class:`pedgm_kit.segment.Segmenter`)."""

    def __init__(self, spec: str, *, cord_scale=None, uncertainty: str | None = None):
        from ..segment import load_segmenter

        self.segmenter = load_segmenter(spec)  # a variant of fold models is their ensemble (a locked test set)
        self.cord_scale = cord_scale
        self.uncertainty = uncertainty or None
        self.last_scores: list[dict] | None = None  # per-slice uncertainty of the last prediction

    def predict(self, scan: Scan, *, label: str, output_dir: str | os.PathLike, tta: bool, seed: int) -> Path:
        seg = self.segmenter.segment(scan.image, tta=tta, seed=seed, cord_scale=self.cord_scale,
                                     uncertainty=self.uncertainty)
        target = prediction_path(output_dir, label, scan.scan_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        from ..segment import save_uncertainty

        save_uncertainty(seg, target, overwrite=True)
        extra = seg.extra.get("pedgm_uncertainty")
        self.last_scores = None if extra is None else extra["slices"]
        return save_like(np.asanyarray(seg.dataobj), seg, target, overwrite=True, dtype=np.uint8)


class FolderPredictor:
    """Takes another tool's masks from a folder, matched to scans by file name."""

    last_scores = None  # another tool's masks come without an uncertainty

    def __init__(self, folder: str | os.PathLike, *, pattern: str = DEFAULT_MASK_PATTERN):
        self.folder = Path(folder)
        if "{scan_id}" not in pattern:
            raise ParameterError(f"mask_pattern must contain '{{scan_id}}', got {pattern!r}")
        self.pattern = pattern

    def find(self, scan: Scan) -> Path:
        """The folder's mask for ``scan`` (exactly one file must match the pattern)."""
        name = self.pattern.format(scan_id=scan.scan_id)
        hits = sorted(self.folder.glob(name)) if any(c in name for c in "*?[") else (
            [self.folder / name] if (self.folder / name).is_file() else [])
        if not hits:
            raise InputFileError(f"No mask '{name}' for scan {scan.scan_id} in the predictions folder '{self.folder}'")
        if len(hits) > 1:
            raise InputFileError(f"{len(hits)} files in '{self.folder}' match '{name}' for scan {scan.scan_id}: "
                                 f"{', '.join(p.name for p in hits[:3])}; make mask_pattern specific")
        return hits[0]

    def predict(self, scan: Scan, *, label: str, output_dir: str | os.PathLike, tta: bool, seed: int) -> Path:
        source = self.find(scan)
        image = open_nifti(scan.image)
        mask = load_image(source, what="predicted mask", allow_constant=True)
        check_same_grid(image, mask, what="predicted mask", image_name=str(scan.image), other_name=str(source))
        data = check_binary(np.asanyarray(mask.dataobj), name=str(source), what="predicted mask",
                            hint="threshold the other tool's output first")
        target = prediction_path(output_dir, label, scan.scan_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        return save_like(data.astype(np.uint8), image, target, overwrite=True, dtype=np.uint8)


def fold_model(spec: str, fold: int | None) -> str:
    """The specification of fold ``fold``'s model: ``{fold}`` replaced by the fold number."""
    spec = str(spec)
    if FOLD_PLACEHOLDER in spec:
        if fold is None:
            raise ParameterError(f"model {spec!r} depends on the fold, but the evaluation has no folds")
        spec = spec.replace(FOLD_PLACEHOLDER, str(int(fold)))
    return spec


def make_predictor(spec: str, *, fold: int | None = None, mask_pattern: str = DEFAULT_MASK_PATTERN, cord_scale=None,
                   uncertainty: str | None = None):
    """The predictor of a model specification (see the module docstring), for ``fold`` if templated."""
    from ..segment.ensemble import is_ensemble

    spec = fold_model(spec, fold)
    if spec not in BUILTIN_MODELS and Path(spec).is_dir() and not is_ensemble(spec):
        return FolderPredictor(spec, pattern=mask_pattern)
    return SegmenterPredictor(spec, cord_scale=cord_scale, uncertainty=uncertainty)


def predict_scan(segmenter, scan: Scan, *, label: str, output_dir: str | os.PathLike, tta: bool, seed: int,
                 cord_scale=None) -> Path:
    """Segment one scan with one loaded model and save the mask at :func:`prediction_path`.

    The file is written atomically and replaces an older one of the same run.
    """
    seg = segmenter.segment(scan.image, tta=tta, seed=seed, cord_scale=cord_scale)
    target = prediction_path(output_dir, label, scan.scan_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    return save_like(np.asanyarray(seg.dataobj), seg, target, overwrite=True, dtype=np.uint8)
