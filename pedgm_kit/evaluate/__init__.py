"""Evaluate GM segmentations against manual masks: tables, figures and test-retest areas.

- :func:`evaluate_pair` -- the ten SCGM-challenge metrics (:mod:`pedgm_kit.metrics`) of one
  prediction against its manual mask, per scan or per slice, plus the GM area per slice;
- :func:`evaluate_models` -- segment every scan with every model once, save the masks under
  ``<output_dir>/pred/<model>/<scan_id>.nii.gz`` and return one tidy table
  (``model, scan, person, level, slice, metric, value``);
- :func:`write_tables` -- that table as CSV and as an ``.xlsx`` with one sheet per level;
- :func:`plot_metric_boxplots`, :func:`plot_result_summary`, :func:`plot_person_dice` (per-person
  Dice joined by person), :func:`plot_forest` (per site / covariate) -- the figures;
- :func:`retest_pairs`, :func:`retest_areas` -- GM area per slice of a scan and its rescan, for
  :func:`pedgm_kit.stats.retest_cv`.

Scope of the scores
-------------------
Manual labels of the SCGM challenge data (and of most datasets) leave some slices unlabelled, e.g.
the top slices of a scan. GM predicted on such a slice is not an error, so scan-level scores are
computed on the *labelled slices* only (slices where the manual mask has a voxel,
:func:`pedgm_kit.metrics.labelled_slices`), as in the challenge; ``labelled_only=False`` scores
every slice. The scan-level metrics are those of :func:`pedgm_kit.metrics.volume_metrics` on the
stack of labelled slices (3D overlap counts and 3D surface distances). Slice-level rows are
restricted the same way.

The slice axis is the array axis closest to the superior-inferior direction of the affine (axis 2
for axial scans stored as such), spacing and pixel area come from the affine, never from header
fields by index.
"""

from .batch import evaluate_models, retest_areas, retest_pairs
from .figures import (
    mark_simulated,
    plot_forest,
    plot_metric_boxplots,
    plot_person_dice,
    plot_result_summary,
    plot_retest_areas,
    save_figure,
)
from .folds import collect_curve, curve_table, per_fold_table, plot_efficiency
from .models import (
    DEFAULT_MASK_PATTERN,
    FolderPredictor,
    add_trained,
    check_evaluation,
    make_predictor,
    model_labels,
    predict_scan,
    prediction_path,
)
from .scoring import (
    AREA_METRICS,
    SCOPE_NOTE,
    TIDY_COLUMNS,
    evaluate_pair,
    gm_area_per_slice,
    load_mask,
    score_pair,
    slice_axis,
)
from .selection import ScanSelection, results_record, select_scans
from .tables import save_table, summary_table, wide_table, write_tables
from .uncertainty import UNCERTAINTY_METRIC, auroc, clustered_auroc, plot_uncertainty, uncertainty_table

__all__ = [
    "ScanSelection",
    "results_record",
    "select_scans",
    "AREA_METRICS",
    "DEFAULT_MASK_PATTERN",
    "FolderPredictor",
    "add_trained",
    "make_predictor",
    "mark_simulated",
    "save_figure",
    "save_table",
    "SCOPE_NOTE",
    "TIDY_COLUMNS",
    "UNCERTAINTY_METRIC",
    "auroc",
    "clustered_auroc",
    "plot_uncertainty",
    "uncertainty_table",
    "check_evaluation",
    "collect_curve",
    "curve_table",
    "per_fold_table",
    "plot_efficiency",
    "evaluate_models",
    "evaluate_pair",
    "gm_area_per_slice",
    "load_mask",
    "model_labels",
    "plot_forest",
    "plot_metric_boxplots",
    "plot_person_dice",
    "plot_result_summary",
    "plot_retest_areas",
    "predict_scan",
    "prediction_path",
    "retest_areas",
    "retest_pairs",
    "score_pair",
    "slice_axis",
    "summary_table",
    "wide_table",
    "write_tables",
]
