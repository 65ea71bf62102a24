"""Scores of one prediction against its manual mask: the ten metrics per scan and per slice, GM area.

Scope of the scores: scan-level scores are computed on the labelled slices only (see
:data:`SCOPE_NOTE` and :mod:`pedgm_kit.evaluate`). The slice axis is the stored array axis closest to
the superior-inferior direction of the affine (:func:`pedgm_kit.geometry.slice_axis`); spacing and
pixel area come from the affine, never from header fields by index.

One scoring path: every reported test number -- a training run's ``summary.json``, the fold table, the
data-efficiency curve and the evaluation's headline -- is the mean over persons of each person's mean
scan-level score (:func:`person_scores`, :func:`mean_over_persons`), the scans segmented whole by the
model at its own threshold (:func:`score_test_scans`, the evaluation's own call); see :data:`TEST_SCORING`.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pandas as pd

from .. import geometry
from ..exceptions import ImageContentError
from ..io import AFFINE_ATOL_MM, check_binary, check_same_grid, load_image, source_name
from ..metrics import area_per_slice_mm2, labelled_slices, per_slice_metrics, pixel_area_mm2, volume_metrics

__all__ = [
    "AREA_METRICS",
    "TEST_SCORING",
    "check_split_source",
    "mean_over_persons",
    "person_scores",
    "score_test_scans",
    "score_window_scans",
    "SCOPE_NOTE",
    "TIDY_COLUMNS",
    "evaluate_pair",
    "gm_area_per_slice",
    "load_mask",
    "score_masks",
    "score_pair",
    "slice_axis",
]

AREA_METRICS: tuple[str, ...] = ("gm_area_mm2", "manual_gm_area_mm2")
"""Area columns added to the ten metrics: predicted and manual GM area per slice (mm²); at scan
level the mean over the scored slices."""

TIDY_COLUMNS: tuple[str, ...] = ("model", "scan", "person", "level", "slice", "metric", "value")
"""Columns of the tidy table of :func:`evaluate_models`. ``level`` is ``"scan"`` or ``"slice"``;
``slice`` is the index along the slice axis (missing, ``<NA>``, on scan rows)."""

SCOPE_NOTE = (
    "Scan-level scores are computed on the labelled slices only (slices where the manual GM mask "
    "has a voxel); slice-level rows are the labelled slices."
)
"""The sentence written into every table, report and JSON about which slices are scored."""


def slice_axis(img: nib.Nifti1Image) -> int:
    """Array axis of ``img`` closest to superior-inferior (:func:`pedgm_kit.geometry.slice_axis`)."""
    return geometry.slice_axis(img.affine)


def load_mask(mask, *, what: str = "mask", name: str | None = None) -> tuple[nib.Nifti1Image, np.ndarray]:
    """A 3D 0/1 mask file or image: (the validated image, its voxels as bool)."""
    name = name or source_name(mask, f"<in-memory {what}>")
    img = load_image(mask, what=what, allow_constant=True, name=name)
    hint = "a probability map? threshold it first" if what == "prediction" else ""
    return img, check_binary(np.asanyarray(img.dataobj), name=name, what=what, hint=hint)


def gm_area_per_slice(mask, *, axis: int | None = None) -> np.ndarray:
    """GM area (mm²) of every slice of a binary mask.

    Parameters
    ----------
    mask : path-like or nibabel.Nifti1Image
        A 3D 0/1 mask.
    axis : int, optional
        Slice axis; default from the affine (:func:`slice_axis`).

    Returns
    -------
    numpy.ndarray of float
        One area per slice: voxels set times the in-plane pixel area from the affine.

    Raises
    ------
    InputFileError, DimensionError
        Unreadable or non-3D file.
    ImageContentError
        Values other than 0 and 1.
    """
    img, data = load_mask(mask)
    return area_per_slice_mm2(data, img.affine, axis=axis)


def score_masks(
    p: np.ndarray, t: np.ndarray, *, affine: np.ndarray, axis: int, labelled_only: bool, name: str
) -> tuple[dict, pd.DataFrame]:
    """Scan row and per-slice frame of two bool arrays on one grid."""
    spacing = tuple(float(s) for s in nib.affines.voxel_sizes(affine))
    area = pixel_area_mm2(affine, axis=axis)
    other = tuple(k for k in range(3) if k != axis)
    labelled = labelled_slices(t, axis=axis)
    if labelled_only and not labelled.any():
        raise ImageContentError(
            f"{name}: manual mask is empty, so no slice is labelled; score all slices instead "
            "(labelled_only=False, --all-slices)"
        )
    scored = np.flatnonzero(labelled) if labelled_only else np.arange(p.shape[axis])
    ps, ts = np.take(p, scored, axis=axis), np.take(t, scored, axis=axis)
    area_p = np.count_nonzero(p, axis=other) * area
    area_t = np.count_nonzero(t, axis=other) * area
    row = {
        "scope": "labelled slices" if labelled_only else "all slices",
        "n_slices": int(p.shape[axis]),
        "n_scored_slices": int(scored.size),
    }
    row.update(volume_metrics(ps, ts, spacing_mm=spacing, axis=axis))
    row["gm_area_mm2"] = float(area_p[scored].mean())
    row["manual_gm_area_mm2"] = float(area_t[scored].mean())

    frame = per_slice_metrics(ps, ts, spacing_mm=spacing, axis=axis)
    frame["slice"] = scored
    frame.insert(1, "labelled", labelled[scored])
    frame["gm_area_mm2"] = area_p[scored]
    frame["manual_gm_area_mm2"] = area_t[scored]
    return row, frame


def evaluate_pair(
    pred: str | os.PathLike | nib.Nifti1Image,
    truth: str | os.PathLike | nib.Nifti1Image,
    *,
    per_slice: bool = False,
    labelled_only: bool = True,
    axis: int | None = None,
    affine_atol: float = AFFINE_ATOL_MM,
) -> pd.DataFrame:
    """The ten SCGM-challenge metrics of a predicted GM mask against the manual one.

    Parameters
    ----------
    pred : path-like or nibabel.Nifti1Image
        Predicted 3D mask (0/1), e.g. the output of ``pedgm segment``.
    truth : path-like or nibabel.Nifti1Image
        Manual 3D mask (0/1) on the same grid.
    per_slice : bool, default False
        Return one row per scored slice instead of one row for the scan.
    labelled_only : bool, default True
        Score only the slices where ``truth`` has a voxel (see the module docstring); False
        scores every slice (an unlabelled slice with predicted GM then has DSC 0).
    axis : int, optional
        Slice axis; default from the affine (:func:`slice_axis`).
    affine_atol : float, default 1e-3
        Largest element-wise affine difference (mm) accepted between the two grids.

    Returns
    -------
    pandas.DataFrame
        ``per_slice=False``: one row with ``scope`` ("labelled slices" or "all slices"),
        ``n_slices``, ``n_scored_slices``, the ten :data:`~pedgm_kit.metrics.METRICS` (3D, on the
        scored slices; distances in mm) and :data:`AREA_METRICS` (mean GM area per scored
        slice, mm²). ``per_slice=True``: one row per scored slice with ``slice``, ``labelled``,
        the ten metrics (2D) and the two areas. ``frame.attrs`` holds ``pred``, ``truth`` (file
        names), ``scope``, ``spacing_mm`` and ``axis``.

    Raises
    ------
    InputFileError
        A file is missing or not NIfTI.
    DimensionError
        A mask is not 3D.
    GridMismatchError
        Shapes or affines differ (the message names both files and both values).
    ImageContentError
        A mask holds values other than 0 and 1, or (``labelled_only``) the manual mask is empty.

    Examples
    --------
    >>> evaluate_pair("sub-01_gmseg.nii.gz", "sub-01_gmseg-manual.nii.gz")["DSC"]  # doctest: +SKIP
    """
    scan, slices = score_pair(pred, truth, labelled_only=labelled_only, axis=axis, affine_atol=affine_atol)
    return slices if per_slice else scan


def score_pair(
    pred, truth, *, labelled_only: bool = True, axis: int | None = None, affine_atol: float = AFFINE_ATOL_MM
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both results of :func:`evaluate_pair` from one scoring: (scan row frame, per-slice frame)."""
    p_name, t_name = source_name(pred, "<in-memory prediction>"), source_name(truth, "<in-memory manual mask>")
    p_img, p = load_mask(pred, what="prediction", name=p_name)
    t_img, t = load_mask(truth, what="manual mask", name=t_name)
    check_same_grid(t_img, p_img, what="prediction", image_name=t_name, other_name=p_name, atol_mm=affine_atol,
                    reference="manual mask")
    axis = slice_axis(t_img) if axis is None else int(axis)
    row, frame = score_masks(p, t, affine=t_img.affine, axis=axis, labelled_only=labelled_only, name=t_name)
    attrs = {
        "pred": p_name, "truth": t_name, "scope": row["scope"], "axis": axis,
        "spacing_mm": [float(s) for s in nib.affines.voxel_sizes(t_img.affine)],
    }
    scan = pd.DataFrame([row])
    scan.attrs.update(attrs)
    frame.attrs.update(attrs)
    return scan, frame


# ---------------------------------------------------------------------------- the one scoring path
TEST_SCORING = (
    "Each test scan is segmented whole by the model (as pedgm segment does: centred and sized by the model, "
    "the model's own threshold) and scored on its labelled slices; a person's score is the mean over their "
    "scans, the reported score the mean over persons."
)
"""How every reported test number is computed (summary.json, fold table, data-efficiency curve, headline)."""


def person_scores(tidy: pd.DataFrame, *, metric: str = "DSC") -> pd.DataFrame:
    """Per model (and fold) and person: the mean of the person's scan-level ``metric``.

    The one aggregation behind every reported test number: the scan rows of a tidy table
    (:func:`pedgm_kit.evaluate.evaluate_models`, :func:`score_test_scans`) averaged per person, so two
    sessions of one person count once.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, (``fold`` if the table has it), ``person``, ``value``, ``n_scans``.
    """
    keys = ["model", "fold", "person"] if "fold" in tidy.columns else ["model", "person"]
    sub = tidy[(tidy["level"] == "scan") & (tidy["metric"] == metric)]
    out = sub.groupby(keys, sort=False)["value"].agg(value="mean", n_scans="size").reset_index()
    out["n_scans"] = out["n_scans"].astype(int)
    return out


def mean_over_persons(tidy: pd.DataFrame, *, metric: str = "DSC") -> dict[str, float]:
    """``{model: mean over persons of the per-person mean}`` of :func:`person_scores`."""
    per = person_scores(tidy, metric=metric)
    return {str(k): float(v) for k, v in per.groupby("model", sort=False)["value"].mean().items()}


def score_test_scans(models, scans, *, output_dir: str | os.PathLike, seed: int = 0, cord_scale=None,
                     progress: bool = False) -> pd.DataFrame:
    """Segment whole test scans with each model and score them: the tidy table of :data:`TEST_SCORING`.

    The same call as notebook 05's evaluation (:func:`pedgm_kit.evaluate.evaluate_models` with its
    defaults: no TTA, labelled slices), so a training run's ``summary.json`` and the evaluation
    report give the same number for the same model and persons (:func:`mean_over_persons`).

    Parameters
    ----------
    models : mapping
        ``{label: spec}``: ``.hdf5`` weights (their ``best.json`` threshold is used) or a built-in.
    scans : sequence of pedgm_kit.datasets.Scan
        Labelled test scans (source images and manual masks).
    output_dir : path-like
        Predictions are saved under ``<output_dir>/pred/<label>/``.
    seed : int, default 0
    cord_scale : "auto", float or None
        As when the scans were preprocessed.
    """
    from ..datasets import DatasetIndex
    from .batch import evaluate_models

    index = DatasetIndex(scans=tuple(scans))
    return evaluate_models(index, models, output_dir=output_dir, seed=seed, progress=progress, cord_scale=cord_scale)


def score_window_scans(label: str, predict, arrays: dict, *, threshold: float) -> pd.DataFrame:
    """Score preprocessed windows scan by scan where no source scan is recorded (arrays built by hand).

    ``predict`` maps (N, h, w, 1) float32 images to probabilities; ``arrays`` is a split of
    :func:`pedgm_kit.data_creation.load_split`. Each scan's slices are stacked and scored with
    :func:`score_masks` on its labelled slices, on the window grid; the tidy scan rows (``DSC``)
    feed :func:`person_scores` like those of :func:`score_test_scans`.
    """
    rows = []
    scan_ids = arrays["scan_id"].astype(str)
    for scan_id in dict.fromkeys(scan_ids.tolist()):
        keep = np.flatnonzero(scan_ids == scan_id)
        images = arrays["images"][keep][..., None].astype(np.float32)
        pred = np.moveaxis(np.asarray(predict(images))[..., 0] > threshold, 0, 2)
        truth = np.moveaxis(arrays["masks"][keep] > 0, 0, 2)
        if not truth.any():
            continue
        affine = np.diag([*map(float, arrays["spacing_mm"][keep[0]]), 1.0])
        row, _ = score_masks(pred, truth, affine=affine, axis=2, labelled_only=True, name=scan_id)
        rows.append((label, scan_id, str(arrays["person_id"][keep[0]]), "scan", pd.NA, "DSC", float(row["DSC"])))
    out = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    out["slice"] = out["slice"].astype("Int64")
    return out


def check_split_source(models, *, split: str, split_manifest: str) -> None:
    """Refuse to re-draw a test split for trained models: their split comes from notebook 02's manifest.

    A split drawn again here (another seed, other fractions) could overlap the persons a model was
    trained or validated on; the manifest is the one source of the split. Pretrained built-in models
    (never trained here) may be evaluated on any split.

    Raises
    ------
    ParameterError
        ``split == "test"``, no ``split_manifest`` and a model that is not a built-in.
    """
    from ..exceptions import ParameterError
    from ..registry import BUILTIN_MODELS

    specs = models.values() if isinstance(models, dict) else models
    trained = [str(m) for m in specs if str(m) not in BUILTIN_MODELS]
    if split == "test" and not split_manifest and trained:
        raise ParameterError(f"split_manifest is empty: trained models ({', '.join(trained)}) are evaluated on the test "
                             "split of notebook 02's manifest.json, never on a split drawn again here")
