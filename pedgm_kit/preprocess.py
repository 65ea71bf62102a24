"""Preprocessing for training: scans onto the model grid, cord-centred windows, QC, draft masks.

The same geometry as ``pedgm segment`` (:class:`pedgm_kit.segment.ModelGrid`): working orientation
LAS, in-plane resampling to 0.25 mm (linear; masks linear then > 0.5), slice thickness kept, and a
200x200 window centred on the cord. One window per scan is cut, centred on the median of the
per-slice cord centres that :class:`~pedgm_kit.segment.Segmenter` finds -- the way a user's new scan
is prepared by ``pedgm segment``, so no window is positioned (or sized, with ``cord_scale="auto"``) by
its manual mask. Every scan can be a validation or test scan (cross-validation tests each once), so
this is the default for all of them; ``centre_on="mask"`` (cord mask, else manual GM mask) is for
scans that are only ever trained on, and :mod:`pedgm_kit.data_creation` refuses such a scan in a
validation or test split (:data:`MASK_CENTRINGS`). Each preprocessed scan is a real image on a real
grid: it is saved as NIfTI with an exact affine and can be opened with its mask in fsleyes or
ITK-SNAP. Intensities are kept raw here; :func:`standardise` (per volume, as SCT) is applied when the
arrays are built.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .datasets import Scan, mask_array
from .exceptions import ParameterError
from .geometry import (
    GeometryWarning,
    ModelGrid,
    Window,
    centres_from_mask,
    check_geometry,
    display_plane,
)
from .io import (
    check_binary,
    check_choice,
    default_output_path,
    load_image,
    open_nifti,
    read_data,
    save_like,
)
from .segment import Segmenter, segment_file
from .segment.cord_scale import check_cord_scale

__all__ = [
    "CENTRE_ON",
    "MASK_CENTRINGS",
    "Preprocessed",
    "draft_mask",
    "draft_masks",
    "fsleyes_command",
    "index_row",
    "load_preprocessed",
    "montage",
    "preprocess_dataset",
    "preprocess_results",
    "preprocess_scan",
    "qc_montage",
    "save_preprocessed",
    "standardise",
]

#: ``centre_on`` choices of :func:`preprocess_scan`: "model" (as a new scan: every split) or "mask" (training only).
CENTRE_ON = ("model", "mask")

#: ``Preprocessed.centring`` values that mean the manual masks positioned the window: never for validation or test.
MASK_CENTRINGS = ("cord mask", "gm mask")


@dataclass
class Preprocessed:
    """One scan on the model grid, cut to its cord-centred window.

    Attributes
    ----------
    scan_id, person_id : str
    image : numpy.ndarray
        (size, size, n_slices) float32 raw intensities (not standardised).
    gm_mask : numpy.ndarray or None
        (size, size, n_slices) uint8 manual GM mask, if the scan has one.
    affine : numpy.ndarray
        Affine of the window grid (0.25 mm in-plane, LAS).
    centring : str
        What the window was centred on: "cord mask", "gm mask" or "model".
    spread_mm : float
        Largest distance between a slice's own centre and the window centre.
    """

    scan_id: str
    person_id: str
    image: np.ndarray
    gm_mask: np.ndarray | None
    affine: np.ndarray
    centring: str
    spread_mm: float
    metadata: dict = field(default_factory=dict)

    @property
    def spacing_mm(self) -> np.ndarray:
        return nib.affines.voxel_sizes(self.affine)


def preprocess_scan(
    scan: Scan,
    *,
    spacing_mm: float = 0.25,
    size: int = 200,
    segmenter: Segmenter | None = None,
    max_spread_mm: float = 10.0,
    cord_scale: float | str | None = None,
    centre_on: str = "model",
) -> Preprocessed:
    """Resample a scan (and its GM mask) to the model grid and cut its cord-centred window.

    Parameters
    ----------
    scan : pedgm_kit.datasets.Scan
        A discovered scan; its masks were checked at discovery.
    spacing_mm : float, default 0.25
        In-plane pixel size (mm) of the model grid.
    size : int, default 200
        Window side (pixels).
    segmenter : Segmenter, optional
        Finds the cord (default: challenge model), exactly as ``pedgm segment`` does on a new scan.
    max_spread_mm : float, default 10
        Warn when a slice's own centre lies further than this from the scan's window centre.
    cord_scale : "auto", float or None
        Size normalisation (as :func:`pedgm_kit.segment.segment_image`): the window is cut from a
        grid of ``spacing_mm * scale`` so the cord has the adult size the weights expect. "auto"
        estimates the scale from the segmenter's first pass (never from the manual mask).
    centre_on : {"model", "mask"}, default "model"
        "model": centre (and scale) from the segmenter, as for a user's new scan -- required for
        any scan that may be validated or tested on. "mask": the cord mask, else the manual GM
        mask (else the model): for training-only scans; ``centring`` records which was used.

    Returns
    -------
    Preprocessed
    """
    if not spacing_mm > 0 or int(size) < 16:
        raise ParameterError(f"spacing_mm must be > 0 and size >= 16, got spacing_mm={spacing_mm!r}, size={size!r}")
    img = load_image(scan.image)
    check_geometry(img, name=str(scan.image), model_spacing_mm=spacing_mm)
    scale = check_cord_scale(cord_scale)
    check_choice(centre_on, CENTRE_ON, name="centre_on")
    seg = None
    if centre_on == "model" or scale == "auto":
        # a new scan's preparation (pedgm segment): the segmenter finds the cord and, with "auto", its size
        seg = (segmenter or Segmenter("challenge")).segment(img, cord_scale=scale)
        info = seg.extra["pedgm_segment"]
        scale = float(info["cord_scale"])
    scale = scale or 1.0
    spacing_mm = spacing_mm * scale
    grid = ModelGrid(img, spacing_mm=spacing_mm)
    gm = None if scan.gm_mask is None else grid.mask(mask_array(scan, which="gm"))
    cord = None if scan.cord_mask is None or centre_on == "model" else grid.mask(mask_array(scan, which="cord"))
    if cord is not None and cord.any():
        centres, centring = centres_from_mask(cord), "cord mask"
    elif centre_on == "mask" and gm is not None and gm.any():
        centres, centring = centres_from_mask(gm), "gm mask"
    else:
        if seg is None:
            seg = (segmenter or Segmenter("challenge")).segment(img)
            info = seg.extra["pedgm_segment"]
        # the segmenter's centres are on the grid it used: convert to this grid's pixels
        centres = np.asarray(info["centres_model"], dtype=float) * (float(info["model_spacing_mm"]) / spacing_mm)
        centring = "model"
    centre = np.median(centres, axis=0)
    spread_mm = float(np.max(np.linalg.norm(centres - centre, axis=1)) * spacing_mm)
    if spread_mm > max_spread_mm:
        warnings.warn(
            f"{scan.scan_id}: the cord moves {spread_mm:.1f} mm across slices; one {size * spacing_mm:g} mm "
            "window per scan may cut it at the ends",
            GeometryWarning,
            stacklevel=2,
        )
    cut = Window(int(size))
    window = np.ascontiguousarray(cut.extract(grid.volume, centre), dtype=np.float32)
    mask = None if gm is None else np.ascontiguousarray(cut.extract(gm, centre, mode="constant"), dtype=np.uint8)
    return Preprocessed(
        scan.scan_id,
        scan.person_id,
        window,
        mask,
        grid.window_affine(cut.top_left(centre)),
        centring,
        spread_mm,
        {**scan.metadata, "cord_scale": scale},
    )


def standardise(volume: np.ndarray) -> np.ndarray:
    """Per-volume standardisation (SCT's): ``(v - mean) / std`` over all voxels; a new float32 array."""
    volume = np.asarray(volume, dtype=np.float32)
    std = float(volume.std())
    return ((volume - volume.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def save_preprocessed(pre: Preprocessed, folder: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``<scan_id>.nii.gz`` (float32 image) and ``<scan_id>_gmseg.nii.gz`` (uint8) atomically."""
    folder = Path(folder)
    like = nib.Nifti1Image(pre.image, pre.affine)
    like.set_qform(pre.affine, code=1)
    like.set_sform(pre.affine, code=1)
    paths = {"image": save_like(pre.image, like, folder / f"{pre.scan_id}.nii.gz", overwrite=overwrite, dtype=np.float32)}
    if pre.gm_mask is not None:
        paths["gm_mask"] = save_like(pre.gm_mask, like, folder / f"{pre.scan_id}_gmseg.nii.gz", overwrite=overwrite)
    return paths


def load_preprocessed(image_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Read a preprocessed scan back: (image float32, GM mask uint8 or None, affine)."""
    image_path = Path(image_path)
    img = open_nifti(image_path)
    mask_path = default_output_path(image_path, suffix="_gmseg")
    mask = None
    if mask_path.is_file():
        data = read_data(open_nifti(mask_path, what="GM mask"), name=str(mask_path), what="GM mask")
        mask = check_binary(data, name=str(mask_path), what="GM mask").astype(np.uint8)
    return np.asarray(read_data(img, name=str(image_path)), dtype=np.float32), mask, img.affine


def qc_montage(pre: Preprocessed, *, n_slices: int = 6, mask: np.ndarray | None = None, title: str | None = None):
    """A row of evenly spaced slices of a preprocessed scan with its GM mask outlined (see :func:`montage`)."""
    return montage(pre.image, pre.gm_mask if mask is None else mask, n_slices=n_slices,
                   title=title or f"{pre.scan_id} ({pre.centring}-centred)")


def montage(images: np.ndarray, masks: np.ndarray | None = None, *, n_slices: int = 6, title: str = ""):
    """A row of evenly spaced slices of a working-grid (LAS) stack, masks outlined in red.

    Parameters
    ----------
    images : numpy.ndarray
        (rows, cols, n) slices on the working grid (axis 2 = slices), e.g. a preprocessed scan or
        augmented windows stacked along axis 2.
    masks : numpy.ndarray, optional
        0/1 masks of the same shape.
    n_slices : int, default 6
        Slices shown (evenly spaced).
    title : str, default ""

    Returns
    -------
    matplotlib.figure.Figure
        Agg-safe. Slices are shown as the viewer shows them (:func:`pedgm_kit.geometry.display_plane`):
        anterior up, the subject's left on the right of the picture.
    """
    from matplotlib.figure import Figure

    n = images.shape[2]
    picks = np.unique(np.linspace(0, n - 1, min(n_slices, n)).round().astype(int))
    fig = Figure(figsize=(2.2 * len(picks), 2.6), layout="constrained")
    axes = fig.subplots(1, len(picks), squeeze=False)[0]
    for ax, z in zip(axes, picks):
        ax.imshow(display_plane(images, z), cmap="gray")
        if masks is not None and masks[..., z].any():
            ax.contour(display_plane(masks, z), levels=[0.5], colors="tab:red", linewidths=0.8)
        ax.set_title(f"slice {z}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel("A", rotation=0, labelpad=8)
    fig.suptitle(title, fontsize=9)
    return fig


def draft_mask(
    image: str | os.PathLike,
    output: str | os.PathLike,
    *,
    segmenter: Segmenter | None = None,
    overwrite: bool = False,
    uncertainty: str | None = None,
    seed: int = 0,
) -> Path:
    """Draft a GM mask with the pretrained model, on the image's own grid, for manual correction.

    With ``uncertainty``, the uncertainty map and per-slice scores are written beside the draft
    (``<draft>_uncertainty.nii.gz`` / ``.csv``), to review the least certain first.
    """
    return segment_file(image, output, overwrite=overwrite, model=segmenter or Segmenter("challenge"),
                        uncertainty=uncertainty or None, seed=seed)


def draft_masks(scans, draft_dir: str | os.PathLike, *, model: str = "challenge", uncertainty: str | None = None,
                seed: int = 0, progress: bool = True):
    """Draft a GM mask for each unlabelled scan into ``draft_dir``, with the review log the correction loop keeps.

    Each draft is ``<draft_dir>/<scan_id>_gmseg-draft.nii.gz`` (:func:`draft_mask`); the review log
    ``<draft_dir>/review.csv`` (:data:`pedgm_kit.layout.REVIEW_CSV`) lists every draft as "needs review".
    No scan: nothing is written.

    Returns
    -------
    pandas.DataFrame
        ``scan_id, image, draft, status``, one row per draft.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ._utils import atomic_path
    from .layout import REVIEW_CSV

    scans, draft_dir = list(scans), Path(draft_dir)
    rows = []
    if scans:
        draft_dir.mkdir(parents=True, exist_ok=True)
        segmenter = Segmenter(model)
        for scan in tqdm(scans, desc="drafting", unit="scan", disable=not progress):
            draft = draft_mask(scan.image, draft_dir / f"{scan.scan_id}_gmseg-draft.nii.gz", segmenter=segmenter,
                               overwrite=True, uncertainty=uncertainty or None, seed=seed)
            rows.append({"scan_id": scan.scan_id, "image": str(scan.image), "draft": str(draft), "status": "needs review"})
        with atomic_path(draft_dir / REVIEW_CSV) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    return pd.DataFrame(rows, columns=["scan_id", "image", "draft", "status"])


def fsleyes_command(image: str | os.PathLike, mask: str | os.PathLike) -> str:
    """The command that opens a draft over its image for correction (fsleyes; ITK-SNAP alternative)."""
    return (
        f"fsleyes {image} {mask} -cm red -a 50    "
        f"# or: itksnap -g {image} -s {mask}"
    )


def index_row(scan: Scan, pre: Preprocessed, paths: dict[str, Path], *, cord_scale_rule: str = "") -> dict:
    """One row of notebook 01's ``index.csv`` (:data:`pedgm_kit.layout.INDEX_CSV`): a preprocessed scan.

    Parameters
    ----------
    scan : Scan
        The source scan.
    pre : Preprocessed
        Its preprocessed window (:func:`preprocess_scan`).
    paths : dict
        What :func:`save_preprocessed` wrote (``image``, ``gm_mask``).
    cord_scale_rule : str, default ""
        The ``cord_scale`` setting ("" or "auto"); ``cord_scale`` is the factor it applied.

    Returns
    -------
    dict
        ``scan_id, person_id, image, gm_mask`` (file names in the preprocessed folder), ``n_slices``,
        ``centring`` (how the window was centred), ``spread_mm``, ``cord_scale``, ``cord_scale_rule``,
        ``source_image, source_gm_mask``, then the scan's metadata (e.g. ``participants.tsv`` columns).
    """
    return {"scan_id": scan.scan_id, "person_id": scan.person_id,
            "image": Path(paths["image"]).name, "gm_mask": Path(paths["gm_mask"]).name if paths.get("gm_mask") else None,
            "n_slices": pre.image.shape[2], "centring": pre.centring, "spread_mm": round(pre.spread_mm, 2),
            "cord_scale": round(pre.metadata["cord_scale"], 3), "cord_scale_rule": cord_scale_rule,
            "source_image": str(scan.image), "source_gm_mask": str(scan.gm_mask), **scan.metadata}


def preprocess_dataset(scans, output_dir: str | os.PathLike, *, spacing_mm: float = 0.25, size: int = 200,
                       cord_scale: str = "", qc: bool = True, progress: bool = True):
    """Preprocess labelled scans into a step folder: windows, ``index.csv`` and QC montages.

    Writes ``<output_dir>/preprocessed/<scan_id>.nii.gz`` (+ ``_gmseg``), the table of
    :func:`index_row` as ``<output_dir>/preprocessed/index.csv`` and, with ``qc``, a montage per scan
    in ``<output_dir>/qc/<scan_id>.png`` (folders from :mod:`pedgm_kit.layout`).

    Parameters
    ----------
    scans : iterable of Scan
        Labelled scans (each with a GM mask).
    output_dir : path-like
        The step folder (notebook 01's ``output_dir``).
    spacing_mm : float, default 0.25
        In-plane pixel size of the model grid, mm.
    size : int, default 200
        Window side, pixels.
    cord_scale : {"", "auto"}, default ""
        Size normalisation of small cords (:func:`preprocess_scan`).
    qc, progress : bool, default True
        Write QC montages; show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The index table; ``attrs["qc"]`` lists the montage PNGs in scan order, ``attrs["path"]`` is
        the ``index.csv`` written.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ._utils import atomic_path
    from .layout import INDEX_CSV, PREPROCESSED_DIR, QC_DIR

    pre_dir, qc_dir = Path(output_dir) / PREPROCESSED_DIR, Path(output_dir) / QC_DIR
    pre_dir.mkdir(parents=True, exist_ok=True)
    if qc:
        qc_dir.mkdir(parents=True, exist_ok=True)
    rows, montages = [], []
    for scan in tqdm(list(scans), desc="preprocessing", unit="scan", disable=not progress):
        pre = preprocess_scan(scan, spacing_mm=spacing_mm, size=size, cord_scale=cord_scale or None)
        paths = save_preprocessed(pre, pre_dir, overwrite=True)
        if qc:
            montages.append(qc_dir / f"{scan.scan_id}.png")
            qc_montage(pre).savefig(montages[-1], dpi=100)
        rows.append(index_row(scan, pre, paths, cord_scale_rule=cord_scale or ""))
    table = pd.DataFrame(rows)
    with atomic_path(pre_dir / INDEX_CSV) as tmp:
        table.to_csv(tmp, index=False)
    table.attrs.update(qc=montages, path=pre_dir / INDEX_CSV)
    return table


def preprocess_results(index, *, root: str | os.PathLike, layout: str, parameters: dict, table, shift=None,
                       drafts=(), ranking=None, retrained: dict | None = None) -> dict:
    """Notebook 01's results (``preprocess.json``, :data:`pedgm_kit.layout.PREPROCESS_JSON`), read by the report.

    Parameters
    ----------
    index : DatasetIndex
        The dataset discovered (after any SIMULATED shift).
    root : path-like
        Its folder.
    layout : str
        "bids" or "folders".
    parameters : dict
        The notebook's parameters recorded.
    table : pandas.DataFrame
        The index table of :func:`preprocess_dataset` (``attrs["path"]``: its ``index.csv``).
    shift : Shift, optional
        The SIMULATED shift applied (:func:`pedgm_kit.shift.parse_shift`), or None.
    drafts : sequence of dict
        The drafts made (:func:`draft_masks` rows).
    ranking : pandas.DataFrame, optional
        The drafts ranked least certain first.
    retrained : dict, optional
        The summary of :func:`pedgm_kit.annotate.retrain_on_labelled`, if it ran.

    Returns
    -------
    dict
    """
    from .data_creation import file_record

    index_csv = Path(table.attrs["path"])
    return {
        "notebook": "01_preprocess",
        "data_dir": str(root),
        "layout": layout,
        "parameters": dict(parameters),
        "shift": None if shift is None else {"name": shift.name, "label": shift.label},
        "n_labelled": len(index.scans), "n_persons": len(index.persons()), "n_preprocessed": len(table),
        "n_unlabelled": len(list(index.unlabelled)), "n_drafts": len(drafts), "missing": list(index.missing),
        "draft_ranking": ranking if ranking is not None else [],
        "retrained": None if retrained is None else {"weights": retrained["weights"],
                                                     "best_val_dice": retrained["best_val_dice"]},
        "preprocessed_dir": str(index_csv.parent), "index_csv": file_record(index_csv),
    }
