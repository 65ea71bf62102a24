"""A run's variant as one model: the mean of its fold models' probabilities (nnU-Net's default).

Cross-validation leaves k models per variant (``<run>/train/fold-<k>/<variant>/best.hdf5``). Each
was selected on its own validation persons; together they are the deliverable:
``pedgm segment scans/ --model <run>/train/<variant>`` (the folder need not exist: its folds are
found beside it) or a folder holding ``fold-*/best.hdf5``:

1. every member is loaded once (:class:`~pedgm_kit.segment.Segmenter`, engines as for one model);
2. each segments the scan with its own cord centring and returns its soft probability map on the
   input grid (``threshold=0``);
3. the maps are averaged; the mask is the mean thresholded at the variant's threshold
   (:func:`ensemble_threshold`: the members' validation-chosen thresholds; their median when they
   differ) where one model thresholds its own map: on the model grid (the members' model-grid maps
   averaged), then resampled to the input grid and cut at 0.5 -- thresholding the resampled mean at
   0.999 instead would erode every mask;
4. when an uncertainty map is asked for (as for one model: ``uncertainty=...``, ``pedgm segment
   --uncertainty``), the members' disagreement -- the standard deviation of their maps, per voxel --
   is the map (``<output>_uncertainty.nii.gz`` and per-slice scores, method ``ensemble``).

A single ``.hdf5`` (or a folder holding ``best.hdf5``) stays a single model: :func:`load_segmenter`
returns a plain :class:`~pedgm_kit.segment.Segmenter` for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..exceptions import InputFileError, ParameterError
from ..io import check_choice, load_image, source_name, to_image_like
from ..layout import SUMMARY_JSON, WEIGHTS_FILE, fold_members
from ..registry import BUILTIN_MODELS
from .segmenter import DEFAULT_PADDING, Segmenter
from .uncertainty import UNCERTAINTY_METHODS, slice_scores

__all__ = ["ENSEMBLE_UNCERTAINTY", "EnsembleSegmenter", "ensemble_members", "ensemble_threshold", "is_ensemble", "load_segmenter"]


#: The uncertainty method of an ensemble: its members' disagreement (per-voxel standard deviation).
ENSEMBLE_UNCERTAINTY = "ensemble"


def ensemble_members(model: str | os.PathLike) -> list[Path]:
    """The fold models of a variant: ``<model>/fold-*/best.hdf5``, else ``<parent>/fold-*/<name>/best.hdf5``.

    Sorted by fold number. Raises :class:`InputFileError` when neither layout holds any.
    """
    path = Path(model)
    found = fold_members(path)
    if not found:
        raise InputFileError(
            f"No such model: '{path}' (a .hdf5 weights file, a folder with best.hdf5, or a variant of a "
            f"cross-validation run: {path.parent}/fold-<k>/{path.name}/best.hdf5)")
    return found


def is_ensemble(model) -> bool:
    """True when ``model`` names a variant of fold models rather than one weights file."""
    if isinstance(model, Segmenter) or str(model) in BUILTIN_MODELS:
        return False
    path = Path(model)
    if path.is_file() or (path.is_dir() and (path / WEIGHTS_FILE).is_file()):
        return False
    try:
        return len(ensemble_members(path)) > 0
    except InputFileError:
        return False


def _member_threshold(weights: Path) -> tuple[float | None, str | None]:
    for source in (weights.parent / SUMMARY_JSON, weights.with_suffix(".json")):
        if source.is_file():
            try:
                data = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(data, dict) and isinstance(data.get("threshold"), (int, float)):
                return float(data["threshold"]), data.get("threshold_rule")
    return None, None


def ensemble_threshold(members) -> tuple[float, str]:
    """The variant's threshold and how it was chosen, from its members' records.

    Each member's ``threshold`` (``summary.json``, else the weights' ``.json``) was chosen on its
    fold's validation persons (or fixed by the loss); equal values are used as they are, differing
    ones give their median. Members without any record count as SCT's default 0.999.
    """
    from ..weights import DEFAULT_METADATA

    values, rules = [], []
    for m in members:
        value, rule = _member_threshold(Path(m))
        values.append(DEFAULT_METADATA["threshold"] if value is None else value)
        rules.append(rule or "default")
    rule = rules[0] if len(set(rules)) == 1 else "; ".join(sorted(set(rules)))
    if len(set(values)) == 1:
        return float(values[0]), f"the members' threshold ({rule})"
    return float(np.median(values)), (f"median of the members' thresholds {', '.join(f'{v:g}' for v in values)} "
                                      f"({rule})")


class EnsembleSegmenter(Segmenter):
    """The fold models of a variant, segmenting as one (see the module docstring).

    Parameters
    ----------
    model : path-like
        A variant (see :func:`ensemble_members`), or ``members`` given explicitly.
    members : list of path-like, optional
        The member weights files (each with its ``.json``).
    batch_size, engine, padding
        As for :class:`~pedgm_kit.segment.Segmenter`, for every member.

    Attributes
    ----------
    members : list of Segmenter
    metadata : dict
        ``threshold`` (the variant's), ``threshold_rule``, ``source``, ``members``, and the first
        member's geometry keys.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, members=None, batch_size: int = 8,
                 engine: str = "auto", padding: str = DEFAULT_PADDING):
        paths = [Path(m) for m in members] if members is not None else ensemble_members(model)
        if len(paths) < 2:
            raise ParameterError(f"an ensemble needs at least 2 member models; got {len(paths)}")
        # the first member's settings, checks and geometry, as for one model (its load is cached: the
        # member built from it below reuses it)
        super().__init__(paths[0], batch_size=batch_size, engine=engine, padding=padding)
        self.members = [Segmenter(p, batch_size=batch_size, engine=engine, padding=padding) for p in paths]
        threshold, rule = ensemble_threshold(paths)
        self.metadata = {**self.metadata, "threshold": threshold, "threshold_rule": rule,
                         "source": str(model if model is not None else paths[0].parent),
                         "members": [str(p) for p in paths]}

    @property
    def windows_predicted(self) -> int:
        return sum(m.windows_predicted for m in self.members)

    @windows_predicted.setter
    def windows_predicted(self, value: int) -> None:  # Segmenter.__init__ sets it: the members count
        pass

    def member_probabilities(self, image, **kwargs) -> list[nib.Nifti1Image]:
        """Each member's soft probability map on the input grid (``threshold=0``)."""
        kwargs = {k: v for k, v in kwargs.items() if k not in ("threshold", "uncertainty")}
        return [m.segment(image, threshold=0.0, **kwargs) for m in self.members]

    def segment(self, image, *, cord_mask=None, threshold: float | None = None, tta: bool = False, seed: int = 0,
                centre_on_cord: bool = True, cord_scale=None, uncertainty: str | None = None) -> nib.Nifti1Image:
        """Segment with every member: the mean probability thresholded; with ``uncertainty``, the spread.

        ``threshold=0`` returns the mean probability map (float32). As for one model, the
        uncertainty map is made only when asked: ``uncertainty`` ``"ensemble"`` (or a one-model
        method, ``"tta"``/``"mc_dropout"``: an ensemble's uncertainty is always its members'
        disagreement, the per-voxel standard deviation of their maps, recorded as method
        ``ensemble``); None or "" makes none.
        """
        threshold = float(self.metadata["threshold"]) if threshold is None else threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold < 1.0:
            raise ParameterError(f"threshold must be a number in [0, 1), got {threshold!r}")
        check_choice(uncertainty, (ENSEMBLE_UNCERTAINTY, *UNCERTAINTY_METHODS, "", None), name="uncertainty")
        name = source_name(image)
        img = load_image(image, name=name)
        maps = self.member_probabilities(img, cord_mask=cord_mask, tta=tta, seed=seed, centre_on_cord=centre_on_cord,
                                         cord_scale=cord_scale)
        stack = np.stack([np.asanyarray(m.dataobj, dtype=np.float32) for m in maps])
        mean = stack.mean(axis=0)
        if threshold > 0:
            out = to_image_like(self._threshold(maps, mean, threshold), img, dtype=np.uint8)
        else:
            out = to_image_like(mean.astype(np.float32), img, dtype=np.float32)
        out.extra["pedgm_segment"] = {"ensemble": self.metadata["members"], "threshold": threshold,
                                      "threshold_rule": self.metadata["threshold_rule"],
                                      "members": [m.extra.get("pedgm_segment", {}) for m in maps]}
        if uncertainty:
            spread = stack.std(axis=0)
            umap = to_image_like(np.clip(spread, 0.0, 1.0).astype(np.float32), img, dtype=np.float32)
            out.extra["pedgm_uncertainty"] = {"method": ENSEMBLE_UNCERTAINTY, "map": umap,
                                              "slices": slice_scores(umap, out if threshold > 0 else None)}
            out.extra["pedgm_segment"]["uncertainty"] = ENSEMBLE_UNCERTAINTY
        return out

    @staticmethod
    def _threshold(maps, mean: np.ndarray, threshold: float) -> np.ndarray:
        """The mask of the mean probability, made as one model makes its mask: the mean of the members'
        model-grid maps thresholded there, resampled to the input grid (linear), then > 0.5. Members on
        different model grids (``cord_scale="auto"`` chose different scales) fall back to thresholding
        the mean on the input grid."""
        grids = [m.extra.get("pedgm_model_grid") for m in maps]
        same = all(g is not None for g in grids) and len({g["probabilities"].shape for g in grids}) == 1 and len(
            {float(m.extra.get("pedgm_segment", {}).get("model_spacing_mm", 0)) for m in maps}) == 1
        if not same:
            return (mean > threshold).astype(np.uint8)
        model_mean = np.mean([g["probabilities"] for g in grids], axis=0)
        back = grids[0]["grid"].to_input((model_mean > threshold).astype(np.float32))
        return (back > 0.5).astype(np.uint8)


def load_segmenter(model: str | os.PathLike | Segmenter = "challenge", **kwargs) -> Segmenter:
    """A :class:`Segmenter` for a weights file or name, an :class:`EnsembleSegmenter` for a variant of folds.

    A folder holding ``best.hdf5`` is that one model. Keyword arguments: ``batch_size``, ``engine``,
    ``padding``.
    """
    if isinstance(model, Segmenter):
        return model
    if is_ensemble(model):
        return EnsembleSegmenter(model, **kwargs)
    path = Path(model)
    if str(model) not in BUILTIN_MODELS and path.is_dir() and (path / WEIGHTS_FILE).is_file():
        model = path / WEIGHTS_FILE
    return Segmenter(model, **kwargs)
