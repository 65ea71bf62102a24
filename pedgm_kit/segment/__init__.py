"""Gray-matter segmentation with SCT's deepseg_gm weights (or any trained variant).

- :class:`Segmenter`, :func:`segment_image`, :func:`segment_file` -- one scan
  (:mod:`pedgm_kit.segment.segmenter`: SCT's pipeline with cord-centred windows);
- :mod:`pedgm_kit.segment.cord_scale` -- small cords brought to the adult size the network expects;
- :mod:`pedgm_kit.segment.uncertainty` -- uncertainty maps (TTA, MC dropout) and per-slice scores;
- :func:`segment_files`, :func:`segment_bids` -- a cohort with one loaded model
  (:mod:`pedgm_kit.segment.cohort`);
- :mod:`pedgm_kit.segment.engines` -- Keras, XLA or ONNX Runtime under the same weights;
- :class:`EnsembleSegmenter`, :func:`load_segmenter` -- a run's variant of fold models as one model
  (:mod:`pedgm_kit.segment.ensemble`).
"""

from ..geometry import ModelGrid, centres_from_mask
from .cohort import SUMMARY_COLUMNS, find_images, segment_bids, segment_files
from .engines import ENGINES
from .ensemble import EnsembleSegmenter, load_segmenter
from .segmenter import DEFAULT_PADDING, PADDINGS, SegmentationWarning, Segmenter, segment_file, segment_image
from .uncertainty import UNCERTAINTY_METHODS, save_uncertainty, slice_scores, uncertainty_paths

__all__ = [
    "DEFAULT_PADDING",
    "ENGINES",
    "EnsembleSegmenter",
    "PADDINGS",
    "UNCERTAINTY_METHODS",
    "SUMMARY_COLUMNS",
    "ModelGrid",
    "SegmentationWarning",
    "Segmenter",
    "centres_from_mask",
    "find_images",
    "load_segmenter",
    "save_uncertainty",
    "segment_bids",
    "segment_file",
    "segment_files",
    "segment_image",
    "slice_scores",
    "uncertainty_paths",
]
