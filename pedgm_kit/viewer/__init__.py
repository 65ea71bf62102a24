"""Interactive slice viewers: predicted and manual GM masks over the image, slice by slice.

Three layers, so that everything but the wiring is testable without a kernel or a browser:

- :func:`render_slice` -- the drawing, a plain function: a 2D image slice and its masks in, an RGB
  ``uint8`` array out (overlay mode, opacity, zoom box, integer pixel scaling and orientation
  letters in a margin). :func:`to_png` encodes it for an ``ipywidgets.Image``.
- :func:`slice_readout` and :func:`orientation_labels` -- what the viewer reports: per-slice Dice of
  every mask against the manual one (:func:`pedgm_kit.metrics.dice`), GM area in mm² from the
  affine's voxel sizes, and which anatomical direction each edge of the picture faces.
- :class:`SliceViewer` -- ipywidgets controls (scan, slice, model, overlay mode, opacity, zoom)
  wired to the two functions above; no custom JavaScript, so it works in JupyterLab, the classic
  notebook and Voila. :class:`ReviewLog` records accepted / needs-correction decisions on draft
  masks in a CSV that is replaced atomically on every change.

Display convention (the one of :func:`pedgm_kit.preprocess.qc_montage`): every scan is brought to
the working orientation LAS (:class:`pedgm_kit.io.Canonical`) and axial slice ``k`` is shown as
``np.rot90(data[:, :, k])`` -- anterior up, the subject's left on the picture's right
(radiological). The letters on the picture's edges are computed from the affine of the displayed
grid, so a scan stored in any orientation is shown the same way and labelled truthfully.

Colours are in :data:`COLOURS`; overlay modes in :data:`MODES`:

=============  =====================================================================
``manual``     manual mask filled (``COLOURS["manual"]``)
``predicted``  selected model's mask filled (``COLOURS["predicted"]``)
``both``       model's mask filled, manual mask drawn as an outline on top
``agreement``  TP (both), FP (model only), FN (manual only) filled in three colours
=============  =====================================================================
"""

from ._render import (
    COLOURS,
    LABEL_MARGIN_PX,
    MODES,
    glyph,
    orientation_labels,
    render_slice,
    to_png,
)
from ._scans import LoadedScan, ViewerScan
from .readout import SliceReadout, slice_readout
from .review import REVIEW_STATUSES, ReviewLog
from .widget import SliceViewer

__all__ = [
    "COLOURS",
    "LABEL_MARGIN_PX",
    "LoadedScan",
    "MODES",
    "REVIEW_STATUSES",
    "ReviewLog",
    "SliceReadout",
    "SliceViewer",
    "ViewerScan",
    "glyph",
    "orientation_labels",
    "render_slice",
    "slice_readout",
    "to_png",
]
