"""Cohort segmentation: many scans, one loaded model, one progress bar, one summary table.

A study segments dozens of scans; starting a process (and TensorFlow, and the model) per scan costs
more than segmenting. :func:`segment_files` loads the model once, keeps going past a bad file (its
one-line error goes into the table), skips scans already segmented unless asked to overwrite, and
returns -- and writes as CSV -- one row per scan: the file, its output, slices, GM volume (mm³), mean
GM area per slice (mm²), seconds and status. :func:`segment_bids` does the same for a BIDS dataset
and writes a BIDS derivative (``derivatives/<pipeline>/sub-*/[ses-*/]anat/<image>_gmseg.nii.gz``
with its ``dataset_description.json``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .. import __version__
from ..datasets.bids import IMAGE_PATTERN, anat_images
from ..exceptions import InputFileError, ParameterError, PedgmError
from ..io import check_output_folder, check_output_path, default_output_path, save_like, write_json
from .segmenter import Segmenter
from .uncertainty import save_uncertainty, uncertainty_paths

__all__ = ["SUMMARY_COLUMNS", "find_images", "made_folders", "segment_bids", "segment_files"]

SUMMARY_COLUMNS = ("file", "output", "slices", "gm_volume_mm3", "gm_area_mean_mm2", "seconds", "status", "error")
"""Columns of the table of :func:`segment_files` (``status``: ok, skipped, failed)."""

_NII = (".nii.gz", ".nii")
_DERIVED = ("_gmseg", "_gmseg-manual", "_seg-manual", "_seg", "_gmseg-draft", "_gmseg-corrected")


def find_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The images named by ``inputs``: files as given, folders expanded to their NIfTI files.

    A folder contributes its ``*.nii`` / ``*.nii.gz`` files (not recursively), leaving out masks and
    earlier outputs by name (``*_gmseg``, ``*_seg``, ``*_gmseg-manual`` ...). A path that does not
    exist (or a link in a folder that points nowhere) is kept, so it is reported as a failed row
    rather than silently dropped.

    Raises
    ------
    ParameterError
        No input, or a folder without any image.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if (p.is_file() or p.is_symlink()) and p.name.endswith(_NII)
                           and not _stem(p).endswith(_DERIVED))
            if not files:
                raise ParameterError(f"folder '{path}' holds no NIfTI image (*.nii, *.nii.gz) to segment")
            found += files
        else:
            found.append(path)
    if not found:
        raise ParameterError("no image to segment")
    return list(dict.fromkeys(found))


@contextlib.contextmanager
def made_folders(folder: str | os.PathLike):
    """Create ``folder`` (and missing parents) for an output; if the block fails, remove the folders
    it created that are still empty, so a failed scan leaves no empty ``anat/`` behind."""
    folder = Path(folder)
    created = []
    for parent in [folder, *folder.parents]:
        if os.path.lexists(parent):
            break
        created.append(parent)
    _mkdir(folder)
    try:
        yield folder
    except BaseException:
        for made in created:  # deepest first
            with contextlib.suppress(OSError):
                made.rmdir()  # only if empty
        raise


def _mkdir(folder: Path, what: str = "Output") -> None:
    """``mkdir -p``, with a file (or a dangling link) in the way as a one-line error."""
    for parent in [folder, *folder.parents]:
        if os.path.lexists(parent) and not parent.is_dir():
            check_output_folder(parent, what=what, target=folder)  # raises: says what is there instead
    folder.mkdir(parents=True, exist_ok=True)


def _stem(path: Path) -> str:
    name = path.name
    for ext in _NII:
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def segment_files(
    images: Sequence[str | os.PathLike],
    *,
    outputs: Sequence[str | os.PathLike] | None = None,
    output_dir: str | os.PathLike | None = None,
    model: str | os.PathLike | Segmenter = "challenge",
    overwrite: bool = False,
    csv: str | os.PathLike | None = None,
    progress: bool = True,
    cord_masks: Sequence | None = None,
    levels: Sequence | None = None,
    bids_morphometrics: bool = False,
    create_folders: bool = False,
    **segment_kwargs,
) -> pd.DataFrame:
    """Segment many scans with one loaded model; a bad file is reported, not fatal.

    Parameters
    ----------
    images : sequence of path-like
        The scans (see :func:`find_images` for folders).
    outputs : sequence of path-like, optional
        One output path per image. Default: ``<image>_gmseg.nii.gz`` beside each image, or in
        ``output_dir``.
    output_dir : path-like, optional
        Folder for the outputs (created if needed); ignored with ``outputs``.
    model : str, path-like or Segmenter, default "challenge"
        Loaded once (a :class:`Segmenter` is used as it is).
    overwrite : bool, default False
        Segment scans whose output exists (otherwise they are skipped, status ``skipped``). With
        ``uncertainty``, a scan whose mask exists but whose uncertainty map and scores do not is
        segmented again and only those two files are written (the mask is kept).
    csv : path-like, optional
        Also write the table there (atomically; replaced on a rerun, as the summary of that run).
    progress : bool, default True
        One tqdm bar over the scans.
    cord_masks, levels : sequence, optional
        One cord mask / level label image (path or None) per image, for the morphometrics
        (:mod:`pedgm_kit.morphometrics`); they do not change the segmentation.
    bids_morphometrics : bool, default False
        Per-scan morphometrics as ``<mask>_morphometrics.tsv`` beside each mask (a BIDS
        derivative) instead of ``morphometrics/<scan>_morphometrics.csv`` beside the CSV.
    create_folders : bool, default False
        Create each output's folder when its scan is segmented; a scan that fails leaves none.
    **segment_kwargs
        Passed to :meth:`Segmenter.segment` (``cord_mask`` is per scan, so not accepted here;
        ``threshold``, ``tta``, ``seed``, ``centre_on_cord``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`, one row per image in order. ``error`` holds the one-line
        message of a failed scan. ``attrs["failed"]`` counts the failures. With ``csv``, the
        cohort's morphometrics (long table ``morphometrics.csv``) and QC page (``qc/index.html``)
        are written beside it (``attrs["morphometrics"]``, ``attrs["qc"]``).

    Raises
    ------
    ParameterError
        Bad arguments (before any work); errors of single scans never raise.
    """
    images = [Path(p) for p in images]
    if not images:
        raise ParameterError("no image to segment")
    if "cord_mask" in segment_kwargs:
        raise ParameterError("segment_files takes no cord_mask (one per scan): use segment_file for that")
    if outputs is not None:
        outputs = [Path(p) for p in outputs]
        if len(outputs) != len(images):
            raise ParameterError(f"{len(images)} images but {len(outputs)} outputs")
    else:
        folder = None if output_dir is None else Path(output_dir)
        if folder is not None:
            _mkdir(folder, "--output-dir")
        outputs = [default_output_path(p) if folder is None else folder / default_output_path(p).name for p in images]
    for extra, name in ((cord_masks, "cord_masks"), (levels, "levels")):
        if extra is not None and len(extra) != len(images):
            raise ParameterError(f"{len(images)} images but {len(extra)} {name}")
    dup = sorted({str(o) for o in outputs if outputs.count(o) > 1})
    if dup:
        raise ParameterError(f"two images would write the same output '{dup[0]}'; use output_dir per source or outputs")
    if csv is not None:
        check_output_path(csv, overwrite=True, suffixes=(".csv",), what="CSV")
    from .ensemble import load_segmenter

    segmenter = load_segmenter(model)  # a weights file, a name, or a variant of fold models

    from tqdm.auto import tqdm

    rows = []
    bar = tqdm(list(zip(images, outputs)), desc="segmenting", unit="scan", disable=not progress)
    for image, output in bar:
        bar.set_postfix_str(image.name[-40:])
        rows.append(_one(segmenter, image, output, overwrite=overwrite, kwargs=segment_kwargs,
                         create_folders=create_folders))
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    table.attrs["failed"] = int((table["status"] == "failed").sum())
    table.attrs["csv"] = None if csv is None else Path(csv)
    if csv is not None:
        from .._utils import atomic_path

        with atomic_path(csv) as tmp:
            table.to_csv(tmp, index=False)
        _after_cohort(table, Path(csv), cord_masks=cord_masks, levels=levels, bids=bids_morphometrics)
    return table


def _after_cohort(table: pd.DataFrame, csv: Path, *, cord_masks, levels, bids: bool) -> None:
    """Morphometrics and the QC page of a cohort, beside its summary CSV (issue: from study to cohort)."""
    from ..morphometrics import cohort_morphometrics
    from ..qc import write_qc_page

    morpho = cohort_morphometrics(
        table, cord_masks=cord_masks, levels=levels, per_scan_dir=None if bids else csv.parent / "morphometrics",
        per_scan_ext=".tsv" if bids else ".csv", table_path=csv.parent / "morphometrics.csv")
    table.attrs["morphometrics"] = str(csv.parent / "morphometrics.csv")
    table.attrs["morphometrics_errors"] = morpho.attrs["errors"]
    table.attrs["qc"] = str(write_qc_page(table, csv.parent / "qc", morphometrics=morpho))


def _one(segmenter: Segmenter, image: Path, output: Path, *, overwrite: bool, kwargs: dict,
         create_folders: bool = False) -> dict:
    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(file=str(image), output=str(output))
    start = time.perf_counter()
    try:
        keep_mask = False
        if os.path.lexists(output) and not overwrite:
            extras = uncertainty_paths(output) if kwargs.get("uncertainty") else ()
            missing = [p for p in extras if not os.path.lexists(p)]
            if not missing:
                row.update(status="skipped", error="output exists (pass --overwrite to segment again)")
                _describe(row, output)
                return row
            if len(missing) < len(extras):
                there = next(p for p in extras if p not in missing)
                raise InputFileError(f"'{there}' exists but '{missing[0]}' does not; pass --overwrite to write both again")
            keep_mask = True  # the mask is there, its uncertainty map is not: write only the map and scores
        with made_folders(output.parent) if create_folders else contextlib.nullcontext():
            if not keep_mask:
                check_output_path(output, overwrite=overwrite, inputs=(image,))
            seg = segmenter.segment(image, **kwargs)
            data = np.asanyarray(seg.dataobj)
            dtype = np.uint8 if seg.get_data_dtype() == np.uint8 else np.float32
            save_uncertainty(seg, output, overwrite=overwrite)
            if not keep_mask:
                save_like(data, seg, output, overwrite=overwrite, dtype=dtype)
        row["status"] = "ok"
        _describe(row, output, None if keep_mask else seg)
    except PedgmError as err:
        row.update(status="failed", error=str(err))
    except OSError as err:
        row.update(status="failed", error=f"{err.strerror or err}: '{err.filename or output}'")
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def _describe(row: dict, output: Path, seg: nib.Nifti1Image | None = None) -> None:
    """Slices, GM volume and mean GM area per slice of a mask (along its slice axis)."""
    from ..geometry import slice_axis
    from ..metrics import area_per_slice_mm2

    try:
        img = seg if seg is not None else nib.load(output)
        data = np.asanyarray(img.dataobj) > 0.5
        axis = slice_axis(img.affine)
        per_slice = area_per_slice_mm2(data, img.affine, axis=axis)
    except Exception:  # noqa: BLE001 - a skipped, unreadable old output: leave its numbers empty
        return
    voxel_mm3 = abs(float(np.linalg.det(img.affine[:3, :3])))  # exact on sheared grids too
    row.update(slices=int(data.shape[axis]), gm_volume_mm3=round(float(np.count_nonzero(data) * voxel_mm3), 3),
               gm_area_mean_mm2=round(float(per_slice.mean()), 3))


def segment_bids(
    root: str | os.PathLike,
    *,
    pipeline: str = "pedgm_kit",
    image_pattern: str = IMAGE_PATTERN,
    model: str | os.PathLike | Segmenter = "challenge",
    overwrite: bool = False,
    progress: bool = True,
    output_dir: str | os.PathLike | None = None,
    csv: str | os.PathLike | None = None,
    **segment_kwargs,
) -> pd.DataFrame:
    """Segment every image of a BIDS dataset into a BIDS derivative.

    Outputs go to ``<root>/derivatives/<pipeline>/sub-*/[ses-*/]anat/<image stem>_gmseg.nii.gz``;
    ``dataset_description.json`` (``DatasetType: derivative``, ``GeneratedBy`` pedgm_kit with its
    version and model) is written if absent, and the table of :func:`segment_files` as
    ``<derivative>/gmseg_summary.csv``. Cord masks (``*_seg-manual``, ``*_seg``) and level labels
    (``*_labels`` ...) found in the dataset's other derivatives feed the morphometrics
    (``<mask>_morphometrics.tsv`` per scan, ``morphometrics.csv`` for the cohort).

    Images are the ``.nii.gz`` and ``.nii`` files matching ``image_pattern`` (default
    ``*_T2starw.nii*``) in ``sub-*/[ses-*/]anat``; a link among them that points nowhere is a failed
    row of the table, not left out. A scan's output folder is created when it is segmented, so a
    failed scan leaves no empty ``anat/``.

    ``output_dir`` replaces ``<root>/derivatives/<pipeline>`` as the derivative folder (created if
    needed), and ``csv`` the summary's path (default ``<derivative>/gmseg_summary.csv``).

    Raises
    ------
    InputFileError
        ``root`` is not a folder, or holds no image matching ``image_pattern``.
    ParameterError
        A pipeline name that is not a plain folder name.
    """
    import re

    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"BIDS dataset root '{root}' is not a folder")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", pipeline):
        raise ParameterError(f"pipeline name {pipeline!r} must be a plain folder name")
    images = [p for anat in sorted(root.glob("sub-*/anat")) for p in anat_images(anat, image_pattern, dangling=True)]
    images += [p for anat in sorted(root.glob("sub-*/ses-*/anat"))
               for p in anat_images(anat, image_pattern, dangling=True)]
    if not images:
        raise InputFileError(f"no image matching 'sub-*/[ses-*/]anat/{image_pattern}' under {root}")
    derivative = root / "derivatives" / pipeline if output_dir is None else Path(output_dir)
    csv = derivative / "gmseg_summary.csv" if csv is None else Path(csv)
    outputs = [derivative / p.parent.relative_to(root) / default_output_path(p).name for p in images]
    _mkdir(derivative, "Derivative")
    description = derivative / "dataset_description.json"
    if not description.exists():
        spec = model.metadata.get("source") if isinstance(model, Segmenter) else str(model)
        write_json({
            "Name": f"{pipeline}: spinal cord gray-matter masks",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "pedgm_kit", "Version": __version__,
                             "Description": f"pedgm segment, model {spec}"}],
            "SourceDatasets": [{"URL": f"file://{root.resolve()}"}],
        }, description)
    from ..morphometrics import CORD_SUFFIXES, LEVEL_SUFFIXES, bids_companion

    cords = [bids_companion(root, p, suffixes=CORD_SUFFIXES, skip=(pipeline,)) for p in images]
    levels = [bids_companion(root, p, suffixes=LEVEL_SUFFIXES, skip=(pipeline,)) for p in images]
    return segment_files(images, outputs=outputs, model=model, overwrite=overwrite,
                         csv=csv, progress=progress, create_folders=True, cord_masks=cords, levels=levels,
                         bids_morphometrics=True, **segment_kwargs)
