"""Many scans, many models: segment once, save, score; scans paired with their rescans.

Every prediction is made by a model's predictor (:mod:`pedgm_kit.evaluate.models`: a loaded
network, or another tool's folder of masks), saved as ``<output_dir>/pred/<model>/<scan_id>.nii.gz``
and reused by the test-retest analysis, so a mask is never segmented twice in a run. With
cross-validation folds, each fold's test scans are predicted by that fold's models and pooled.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets import DatasetIndex, Scan, mask_array
from ..exceptions import ParameterError
from ..io import open_nifti
from ..metrics import METRICS, labelled_slices
from .cache import PredictionCache
from .models import DEFAULT_MASK_PATTERN, fold_model, make_predictor, model_labels, prediction_path
from .scoring import (
    AREA_METRICS,
    SCOPE_NOTE,
    TIDY_COLUMNS,
    gm_area_per_slice,
    load_mask,
    score_masks,
    slice_axis,
)
from .uncertainty import UNCERTAINTY_METRIC

__all__ = [
    "evaluate_models",
    "retest_areas",
    "retest_pairs",
]


def _progress(iterable, *, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def _select(index: DatasetIndex, scans: Iterable[str] | None) -> list[Scan]:
    if scans is None:
        chosen = list(index.scans)
    else:
        by_id = {s.scan_id: s for s in index.scans}
        chosen = []
        for scan_id in scans:
            if scan_id not in by_id:
                raise ParameterError(f"scan {scan_id!r} is not a labelled scan of the index of {index.root}")
            chosen.append(by_id[scan_id])
    unlabelled = [s.scan_id for s in chosen if s.gm_mask is None]
    if unlabelled:
        raise ParameterError(f"scan(s) {unlabelled} have no manual GM mask to evaluate against")
    if not chosen:
        raise ParameterError(f"no scan to evaluate in the index of {index.root}")
    return chosen


def evaluate_models(
    index: DatasetIndex,
    models: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    scans: Iterable[str] | None = None,
    output_dir: str | os.PathLike,
    seed: int,
    progress: bool = True,
    tta: bool = False,
    labelled_only: bool = True,
    folds: Sequence[Sequence[str]] | None = None,
    mask_pattern: str = DEFAULT_MASK_PATTERN,
    cord_scale=None,
    uncertainty: str | None = None,
) -> pd.DataFrame:
    """Segment each scan with each model once, save the masks, and score them.

    Each model is loaded once (:class:`~pedgm_kit.segment.Segmenter`); each scan is segmented
    with the defaults of ``pedgm segment`` (cord-centred windows, the model's threshold) and
    saved (atomically, replacing an older file) as
    ``<output_dir>/pred/<model>/<scan_id>.nii.gz`` (:func:`prediction_path`), so the scores
    can be reproduced with ``pedgm evaluate``.

    Parameters
    ----------
    index : DatasetIndex
        Scans with manual GM masks, from :func:`pedgm_kit.datasets.discover_bids` or
        :func:`~pedgm_kit.datasets.discover_folders`.
    models : sequence or mapping
        Model specifications (``"challenge"``, ``"large"``, paths to ``.hdf5`` weights) or
        ``{label: spec}``; labels from :func:`model_labels`.
    scans : iterable of str, optional
        Scan ids to evaluate (e.g. the test split); default all labelled scans of ``index``.
    output_dir : path-like
        Folder for the predictions (created if needed).
    seed : int
        Seed of the test-time augmentation offsets (used only with ``tta=True``).
    progress : bool, default True
        Show a tqdm progress bar per model.
    tta : bool, default False
        Test-time augmentation, as ``pedgm segment --tta``.
    labelled_only : bool, default True
        Score the labelled slices only (see the module docstring).
    folds : sequence of sequences of str, optional
        Cross-validation: the test scans of each fold (1-based in the ``fold`` column). Fold ``k``'s
        scans are predicted by the model specifications with ``{fold}`` replaced by ``k``, and the
        folds' rows are pooled. ``scans`` is ignored then.
    mask_pattern : str, default "{scan_id}_gmseg.nii.gz"
        File names in a folder of another tool's predictions (:mod:`pedgm_kit.evaluate.models`).
    cord_scale : "auto", float or None
        Size normalisation when segmenting (:func:`pedgm_kit.segment.segment_image`).
    uncertainty : {"tta", "mc_dropout"} or None
        Also estimate each prediction's uncertainty (saved beside it) and add its per-slice score as
        metric ``"uncertainty"`` (slice rows; the scan row is the mean over scored slices).

    Returns
    -------
    pandas.DataFrame
        Tidy: columns :data:`TIDY_COLUMNS` and ``fold`` (0 without folds). Per model and scan: ``level="scan"`` rows (slice
        ``<NA>``) for the ten metrics and :data:`AREA_METRICS`, and ``level="slice"`` rows for
        every scored slice. ``attrs["predictions"]`` maps ``(model, scan_id)`` to the saved
        file, ``attrs["models"]`` the labels to their specifications, ``attrs["scope"]`` states
        which slices were scored.

    Raises
    ------
    ParameterError
        Unknown or unlabelled scan ids, bad model list.
    PedgmError
        Any error of segmentation or scoring (weights, grids, masks), naming the file.
    """
    labels = model_labels(models)
    groups = [(0, _select(index, scans))] if folds is None else [
        (k, _select(index, fold)) for k, fold in enumerate(folds, start=1)]
    output_dir = Path(output_dir)
    frames, predictions = [], {}
    cache = None if uncertainty else PredictionCache.from_env()  # a run's predictions are made once
    for label, spec in labels.items():
        for fold, chosen in groups:
            fold_spec = fold_model(spec, fold or None)
            predictor = None  # loaded on the first scan the cache does not hold
            desc = f"segment+score {label}" + (f" (fold {fold})" if fold else "")
            for scan in _progress(chosen, enabled=progress, desc=desc):
                key = cache.key(fold_spec, scan.image, cord_scale=cord_scale, tta=tta, seed=seed) if cache else None
                path = cache.fetch(key, prediction_path(output_dir, label, scan.scan_id)) if key else None
                if path is None:
                    predictor = predictor or make_predictor(fold_spec, mask_pattern=mask_pattern,
                                                            cord_scale=cord_scale, uncertainty=uncertainty)
                    path = predictor.predict(scan, label=label, output_dir=output_dir, tta=tta, seed=seed)
                    if key:
                        cache.store(key, path)
                predictions[(label, scan.scan_id)] = path
                p_img, p = load_mask(path, what="prediction")
                row, per_slice = score_masks(
                    p, mask_array(scan, which="gm").astype(bool), affine=p_img.affine, axis=slice_axis(p_img),
                    labelled_only=labelled_only, name=str(scan.gm_mask),
                )
                frames.append(_tidy_rows(label, scan, row, per_slice).assign(fold=fold))
                if predictor is not None and predictor.last_scores is not None:
                    frames.append(_uncertainty_rows(label, scan, predictor.last_scores, per_slice["slice"]).assign(fold=fold))
    tidy = pd.concat(frames, ignore_index=True)
    tidy.attrs.update({
        "predictions": predictions, "models": labels, "folds": len(groups) if folds is not None else 0,
        "fold_of_scan": {s.scan_id: fold for fold, chosen in groups for s in chosen},
        "scope": SCOPE_NOTE if labelled_only else "All slices are scored.",
    })
    return tidy


def _tidy_rows(label: str, scan: Scan, row: Mapping, per_slice: pd.DataFrame) -> pd.DataFrame:
    names = list(METRICS) + list(AREA_METRICS)
    scan_part = pd.DataFrame({"metric": names, "value": [float(row[m]) for m in names]})
    scan_part["level"], scan_part["slice"] = "scan", pd.NA
    slice_part = per_slice.melt(id_vars=["slice"], value_vars=names, var_name="metric", value_name="value")
    slice_part["level"] = "slice"
    out = pd.concat([scan_part, slice_part], ignore_index=True)
    out["model"], out["scan"], out["person"] = label, scan.scan_id, scan.person_id
    out["slice"] = out["slice"].astype("Int64")
    out["value"] = out["value"].astype(float)
    return out[list(TIDY_COLUMNS)]


def _uncertainty_rows(label: str, scan: Scan, scores: list[dict], scored) -> pd.DataFrame:
    """Tidy rows of the per-slice uncertainty of the scored slices, and their mean as the scan row."""
    by_slice = {int(r["slice"]): float(r["score"]) for r in scores}
    slices = [int(k) for k in scored]
    values = [by_slice.get(k, float("nan")) for k in slices]
    rows = [(label, scan.scan_id, scan.person_id, "slice", k, UNCERTAINTY_METRIC, v) for k, v in zip(slices, values)]
    rows.append((label, scan.scan_id, scan.person_id, "scan", pd.NA, UNCERTAINTY_METRIC,
                 float(np.nanmean(values)) if values else float("nan")))
    out = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    out["slice"] = out["slice"].astype("Int64")
    return out


def retest_pairs(index: DatasetIndex, *, persons: Iterable[str] | None = None) -> list[tuple[Scan, Scan]]:
    """Scans paired with their rescans: same subject and session, runs 1 and 2.

    Parameters
    ----------
    index : DatasetIndex
        Labelled and unlabelled scans (e.g. gm-challenge-data: run-1 labelled, run-2 rescans
        without repositioning). Scans need ``subject`` and ``run`` metadata (BIDS entities);
        others are ignored.
    persons : iterable of str, optional
        Keep only pairs of these persons.

    Returns
    -------
    list of (Scan, Scan)
        ``(first run, second run)`` per subject/session with at least two runs (the two lowest
        run numbers), in index order of the first run.
    """
    wanted = None if persons is None else set(persons)
    groups: dict[tuple, list[Scan]] = {}
    for scan in index.scans + index.unlabelled:
        md = scan.metadata
        if md.get("subject") is None or md.get("run") is None:
            continue
        if wanted is not None and scan.person_id not in wanted:
            continue
        key = (md["subject"], md.get("session"))
        if all(s.scan_id != scan.scan_id for s in groups.get(key, [])):
            groups.setdefault(key, []).append(scan)
    pairs = []
    for members in groups.values():
        if len(members) >= 2:
            members = sorted(members, key=lambda s: int(s.metadata["run"]))
            pairs.append((members[0], members[1]))
    order = {s.scan_id: i for i, s in enumerate(index.scans + index.unlabelled)}
    return sorted(pairs, key=lambda pr: order[pr[0].scan_id])


def retest_areas(
    index: DatasetIndex,
    models: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    persons: Iterable[str] | None = None,
    output_dir: str | os.PathLike,
    seed: int,
    predicted: Mapping[tuple[str, str], str | os.PathLike] | None = None,
    progress: bool = True,
    tta: bool = False,
    fold_of_person: Mapping[str, int] | None = None,
    mask_pattern: str = DEFAULT_MASK_PATTERN,
    cord_scale=None,
) -> pd.DataFrame:
    """GM area per slice of each scan and its rescan, per model.

    Every scan of :func:`retest_pairs` is segmented with every model (saved like
    :func:`evaluate_models` does, under ``<output_dir>/pred/<model>/``), unless ``predicted``
    already holds its mask from this run.

    Parameters
    ----------
    index : DatasetIndex
        Scans and rescans.
    models : sequence or mapping
        As in :func:`evaluate_models`.
    persons : iterable of str, optional
        Only these persons (e.g. those of the test split).
    output_dir : path-like
        Folder of the predictions.
    seed : int
        TTA seed (used only with ``tta=True``).
    predicted : mapping, optional
        ``{(model label, scan_id): path}`` of masks already segmented in this run with the same
        settings (``tidy.attrs["predictions"]`` of :func:`evaluate_models`); reused, not
        recomputed.
    progress : bool, default True
        tqdm progress bar per model.
    tta : bool, default False
        Test-time augmentation.

    Returns
    -------
    pandas.DataFrame
        One row per (model, pair, run, slice): ``model, person, pair`` (the first run's scan
        id), ``run, scan, slice, gm_area_mm2`` and ``labelled`` (the first run's manual mask has
        GM on this slice; False when it has no mask). Empty if there is no pair.

    Warns
    -----
    UserWarning
        A pair whose two scans have different shapes (slices cannot be matched) is skipped.
    """
    labels = model_labels(models)
    predicted = dict(predicted or {})
    pairs = []
    for first, second in retest_pairs(index, persons=persons):
        a, b = open_nifti(first.image), open_nifti(second.image)
        if a.shape[:3] != b.shape[:3]:
            warnings.warn(
                f"rescan {second.image} has shape {b.shape[:3]} but {first.image} has {a.shape[:3]}; pair skipped",
                stacklevel=2,
            )
            continue
        pairs.append((first, second))
    columns = ["model", "person", "pair", "run", "scan", "slice", "gm_area_mm2", "labelled"]
    rows = []
    fold_of_person = dict(fold_of_person or {})
    for label, spec in labels.items():
        predictors: dict = {}
        todo = [(first, scan) for first, second in pairs for scan in (first, second)]
        for first, scan in _progress(todo, enabled=progress, desc=f"retest {label}"):
            path = predicted.get((label, scan.scan_id))
            if path is None:
                fold = fold_of_person.get(scan.person_id)
                if fold not in predictors:
                    predictors[fold] = make_predictor(spec, fold=fold, mask_pattern=mask_pattern, cord_scale=cord_scale)
                path = predictors[fold].predict(scan, label=label, output_dir=output_dir, tta=tta, seed=seed)
                predicted[(label, scan.scan_id)] = path
            axis = slice_axis(open_nifti(first.image))
            area = gm_area_per_slice(path, axis=axis)
            if first.gm_mask is not None:
                lab = labelled_slices(mask_array(first), axis=axis)
            else:
                lab = np.zeros(area.size, dtype=bool)
            for k, value in enumerate(area):
                rows.append((label, scan.person_id, first.scan_id, int(scan.metadata["run"]), scan.scan_id, k,
                             float(value), bool(lab[k])))
    return pd.DataFrame(rows, columns=columns)
