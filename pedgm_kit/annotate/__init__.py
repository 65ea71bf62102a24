"""The annotation loop's correction step: fix a draft GM mask by hand, save it, accept it.

- :class:`CorrectionEditor` -- NiiVue (ipyniivue) with the image and the draft as its drawing
  layer: pen / erase / undo, slice navigation, zoom on the cord, the uncertainty map as an
  optional overlay. *Save* writes ``<scan>_gmseg-corrected.nii.gz``, a binary mask on the
  image's own grid (shape, affine, qform/sform codes), atomically, and records the scan in the
  review log (:class:`pedgm_kit.viewer.ReviewLog`); *Accept* promotes it to the manual-mask name
  that dataset discovery picks up. :meth:`CorrectionEditor.save_array` and
  :meth:`CorrectionEditor.accept` do the same without a browser.

NiiVue keeps its drawing in its own voxel order; the conversion to and from the image file's
stored grid is in the private module ``_niivue_grid`` (a port of NiiVue's axis rule, tested on
LAS and LPS scans in a real browser). Nothing here imports a deep-learning backend until it trains.

The rest of the loop is in :mod:`pedgm_kit.annotate.loop`: where an accepted mask goes
(:func:`manual_mask_path`), drafts ranked least certain first (:func:`rank_drafts`), and the
pretrained fine-tune on what was corrected (:func:`retrain_on_labelled`).
"""

from .correction import CORRECTED_SUFFIX, ZOOM_LEVELS, CorrectionEditor
from .loop import manual_mask_path, rank_drafts, retrain_on_labelled

__all__ = ["CORRECTED_SUFFIX", "ZOOM_LEVELS", "CorrectionEditor", "manual_mask_path", "rank_drafts",
           "retrain_on_labelled"]
