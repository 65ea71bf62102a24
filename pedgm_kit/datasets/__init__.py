"""Find the scans of a dataset, pair them with their masks and check them once, up front.

Two layouts are understood:

- :func:`discover_bids` -- a BIDS dataset such as the spinal cord gray-matter challenge data:
  images under ``sub-*/[ses-*/]anat/``, manual masks under
  ``derivatives/labels/<sub>/[ses-*/]anat/<image stem><suffix>.nii.gz`` and subject metadata in
  ``participants.tsv``.
- :func:`discover_folders` -- the original pediatric study's layout: one folder per ID with fixed
  file names (``<id>/mFFE_crop_r.nii.gz``, ``<id>/mFFE_crop_r_gmseg.nii.gz``), IDs listed in
  ``Controls.txt`` and second (lumbar) scans in ``<id>_second`` folders listed in
  ``Controls_second.txt``.

Both return a :class:`DatasetIndex`: the labelled :class:`Scan` records, the images without a
GM mask (candidates for a draft mask), the listed subjects without an image, and every warning
that was issued. Things that are merely absent (a listed subject without an image, an image without
a mask) are reported with a :class:`DatasetWarning`; things that are wrong (a mask on another voxel
grid, a mask that is not binary, a scan id seen twice) raise, before anything is written anywhere.

Nothing here writes files. :func:`discover` picks the layout by name, so notebooks and the
pipeline need no ``if layout == ...`` of their own.
"""

from __future__ import annotations

from pathlib import Path

from ..io import AFFINE_ATOL_MM, check_choice
from ._checks import mask_array, validate_scan
from ._records import DatasetIndex, DatasetWarning, Scan
from .bids import discover_bids
from .folders import discover_folders, read_id_list

__all__ = [
    "DEFAULT_AFFINE_ATOL",
    "FOLDER_OPTIONS",
    "LAYOUTS",
    "DatasetIndex",
    "DatasetWarning",
    "Scan",
    "discover",
    "discover_bids",
    "discover_folders",
    "mask_array",
    "read_id_list",
    "validate_scan",
]

#: Tolerance (mm) between a mask's affine and its image's: :data:`pedgm_kit.io.AFFINE_ATOL_MM`.
DEFAULT_AFFINE_ATOL = AFFINE_ATOL_MM

#: Layout names of :func:`discover` and the function each calls.
LAYOUTS = {"bids": discover_bids, "folders": discover_folders}

#: The :func:`discover_folders` options a parameter file may set (notebooks 01 and 05).
FOLDER_OPTIONS = ("ids_file", "second_ids_file", "image_name", "gm_name")


def discover(root: str | Path, *, layout: str = "bids", **options) -> DatasetIndex:
    """Index a dataset of either layout.

    Parameters
    ----------
    root : str or pathlib.Path
        The dataset folder.
    layout : {"bids", "folders"}, default "bids"
        :func:`discover_bids` or :func:`discover_folders`.
    **options
        Passed to that function. Options of the other layout (e.g. ``ids_file`` for a BIDS
        dataset) are ignored, so one parameter set serves both.

    Returns
    -------
    DatasetIndex

    Raises
    ------
    ParameterError
        An unknown layout.
    """
    check_choice(layout, LAYOUTS, name="layout")
    if layout == "bids":
        options = {k: v for k, v in options.items() if k not in FOLDER_OPTIONS}
    return LAYOUTS[layout](root, **options)
