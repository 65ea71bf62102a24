"""The rest of the annotation loop: where an accepted mask goes, drafts ranked worst first, retraining.

draft -> review the least certain first -> correct -> accept -> retrain -> new drafts:

- :func:`manual_mask_path` -- the file name dataset discovery picks up as a scan's manual GM mask
  (BIDS: ``derivatives/labels/<sub>/[ses-*/]anat/<image stem>_gmseg-manual.nii.gz``; the original
  study's folders: ``<id>/<gm_name>``), where *Accept* puts a corrected mask;
- :func:`rank_drafts` -- drafts ordered by their uncertainty (worst scan first), each with its least
  certain slice, from the per-slice scores ``pedgm segment --uncertainty`` writes;
- :func:`retrain_on_labelled` -- the pretrained fine-tune (notebook 04's recipe: pretrained, no
  augmentation) on every labelled scan of the dataset, accepted corrections included: preprocess,
  a person-grouped train/val split, train; returns the new weights for the next round of drafts.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from ..datasets import Scan
from ..exceptions import ParameterError
from ..layout import PREPROCESSED_DIR, RunLayout
from ..io import check_choice
from ..schema import LAYOUTS, SCHEMA

_PRE = SCHEMA["preprocess"]  # notebook 01's parameters: the retraining defaults

__all__ = ["manual_mask_path", "rank_drafts", "retrain_on_labelled"]


def manual_mask_path(scan: Scan, *, root: str | os.PathLike, layout: str = "bids",
                     gm_suffix: str = "_gmseg-manual", labels_dir: str = "derivatives/labels",
                     gm_name: str = "mFFE_crop_r_gmseg.nii.gz") -> Path:
    """Where a scan's manual GM mask must be for discovery (the defaults of the discover functions)."""
    image, root = Path(scan.image), Path(root)
    if layout == "folders":
        return image.parent / gm_name
    check_choice(layout, LAYOUTS, name="layout")
    name = image.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else image.stem
    return root / labels_dir / image.parent.relative_to(root) / f"{stem}{gm_suffix}.nii.gz"


def rank_drafts(drafts: dict[str, str | os.PathLike]) -> pd.DataFrame:
    """Drafts, least certain first: ``scan_id, draft, uncertainty_map, score, worst_slice``.

    ``score`` is the scan's highest per-slice score (its worst slice); drafts without scores go last.
    """
    from ..segment import uncertainty_paths

    rows = []
    for scan_id, draft in drafts.items():
        umap, csv = uncertainty_paths(draft)
        score, worst = float("nan"), None
        if Path(csv).is_file():
            slices = pd.read_csv(csv)
            if len(slices):
                best = slices.loc[slices["score"].idxmax()]
                score, worst = float(best["score"]), int(best["slice"])
        rows.append({"scan_id": scan_id, "draft": str(draft), "uncertainty_map": str(umap) if Path(umap).is_file() else "",
                     "score": score, "worst_slice": worst})
    table = pd.DataFrame(rows, columns=["scan_id", "draft", "uncertainty_map", "score", "worst_slice"])
    return table.sort_values("score", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def retrain_on_labelled(index, output_dir: str | os.PathLike, *,
                        init_weights: str = _PRE["draft_model"].default,
                        epochs: int = _PRE["retrain_epochs"].default,
                        max_slices: int = SCHEMA["train"]["max_slices"].default,
                        seed: int = _PRE["seed"].default,
                        spacing_mm: float = _PRE["spacing_mm"].default,
                        window: int = _PRE["window"].default,
                        val_fraction: float = SCHEMA["data"]["val_fraction"].default) -> dict:
    """Fine-tune the pretrained network (no augmentation) on every labelled scan of ``index``.

    The defaults are notebook 01's (``draft_model``, ``retrain_epochs``, ``spacing_mm``, ``window``),
    notebook 04's CPU demo ``max_slices`` and notebook 02's ``val_fraction`` (:mod:`pedgm_kit.schema`).

    Preprocesses the labelled scans into ``<output_dir>/preprocessed`` (with notebook 01's
    ``index.csv``: :func:`pedgm_kit.preprocess.preprocess_dataset`), splits them by person into
    train and validation (``val_fraction``, seeded; no test split: the new drafts are the test),
    builds the arrays and trains. Returns the training summary with ``weights``: the new
    ``best.hdf5`` to draft with next.
    """
    from ..data_creation import write_arrays
    from ..preprocess import preprocess_dataset
    from ..splits import auto_split
    from ..train import TrainConfig, train_variant

    output_dir = Path(output_dir)
    if len(index.persons()) < 2:
        raise ParameterError(f"retraining needs labelled scans of at least 2 persons; the dataset has {len(index.persons())}")
    frame = preprocess_dataset(index.scans, output_dir, spacing_mm=spacing_mm, size=window, qc=False, progress=False)
    pre = output_dir / PREPROCESSED_DIR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = auto_split(frame, fractions=(1 - val_fraction, val_fraction), names=("train", "val"), seed=seed)
    split["test"] = []
    lay = RunLayout(output_dir)
    write_arrays(frame, split, root=pre, data_dir=lay.data)
    config = TrainConfig(pretrained=True, augment=False, init_weights=init_weights, epochs=epochs,
                         max_slices=max_slices, seed=seed)
    summary = train_variant(lay.data, lay.train, config, verbose=0, export_onnx=False)
    summary["weights"] = str(lay.weights(summary["variant"]))
    return summary
