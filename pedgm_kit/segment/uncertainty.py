"""Per-voxel uncertainty of a segmentation and its per-slice scores (``pedgm segment --uncertainty``).

The spread of the network's output over seeded passes: test-time augmentation (SCT's intensity
offsets, the default) or Monte-Carlo dropout (:func:`mc_dropout_passes`); an ensemble's members'
disagreement (:mod:`pedgm_kit.segment.ensemble`). :func:`slice_scores` turns a map into one score per
slice (notebook 01 ranks draft masks by it), :func:`save_uncertainty` writes the map and the scores
beside a segmentation (:func:`uncertainty_paths`).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..io import check_output_path, default_output_path, save_like
from ..schema import UNCERTAINTY_METHODS  # the methods, re-exported here

__all__ = ["UNCERTAINTY_METHODS", "mc_dropout_passes", "save_uncertainty", "slice_scores", "uncertainty_paths"]

# Per-voxel uncertainty of a segmentation (``uncertainty=``, one of UNCERTAINTY_METHODS): the spread of the
# network's output over test-time augmentation passes or Monte-Carlo dropout passes (benchmarks/uncertainty.py).


def mc_dropout_passes(model, windows: np.ndarray, *, passes: int, seed: int, batch_size: int):
    """``passes`` probability maps with Dropout active and BatchNorm in inference (yields each)."""
    from .._backend import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    trainable = [n.trainable for n in norms]
    # each Dropout layer draws from its own seed generator, whose state advances with every call:
    # start every layer from a state derived from ``seed`` (restored afterwards), so one seed, one map
    generators = [layer.seed_generator for layer in model.layers
                  if isinstance(layer, keras.layers.Dropout) and getattr(layer, "seed_generator", None) is not None]
    states = [keras.ops.convert_to_numpy(g.state.value) for g in generators]
    try:
        for i, g in enumerate(generators):
            g.state.assign(np.array([int(seed) * 1009 + i, 0], dtype=states[i].dtype))
        for n in norms:
            n.trainable = False  # a non-trainable BatchNorm normalises with its moving statistics, even in training mode
        for _ in range(passes):
            out = np.empty(windows.shape, np.float32)
            for start in range(0, len(windows), batch_size):
                batch = windows[start : start + batch_size, ..., None]
                out[start : start + len(batch)] = keras.ops.convert_to_numpy(model(batch, training=True))[..., 0]
            yield out
    finally:
        for n, t in zip(norms, trainable):
            n.trainable = t
        for g, state in zip(generators, states):
            g.state.assign(state)


def slice_scores(umap: nib.Nifti1Image, mask: nib.Nifti1Image | None = None, *, level: float = 0.05):
    """Per-slice uncertainty score: the mean uncertainty over the slice's uncertain-or-GM region.

    The region is every voxel whose uncertainty exceeds ``level`` or that the mask holds; a slice
    with neither scores 0. Returns a list of ``{"slice", "score", "gm_voxels"}`` along the slice axis.
    """
    from ..geometry import slice_axis

    u = np.asanyarray(umap.dataobj, dtype=np.float32)
    m = np.zeros(u.shape, bool) if mask is None else np.asanyarray(mask.dataobj) > 0.5
    axis = slice_axis(umap.affine)
    out = []
    for k in range(u.shape[axis]):
        uk, mk = np.take(u, k, axis=axis), np.take(m, k, axis=axis)
        region = (uk > level) | mk
        out.append({"slice": k, "score": float(uk[region].mean()) if region.any() else 0.0,
                    "gm_voxels": int(mk.sum())})
    return out


def uncertainty_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """``<output>_uncertainty.nii.gz`` (the map) and ``<output>_uncertainty.csv`` (per-slice scores)."""
    output = Path(output)
    nii = default_output_path(output, suffix="_uncertainty")
    stem = nii.name[: -len(".nii.gz")] if nii.name.endswith(".nii.gz") else nii.stem
    return nii, nii.with_name(stem + ".csv")


def save_uncertainty(seg: nib.Nifti1Image, output: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path] | None:
    """Write the uncertainty map and per-slice scores of ``seg`` beside ``output`` (atomically), if any."""
    extra = seg.extra.get("pedgm_uncertainty")
    if not extra:
        return None
    import pandas as pd

    from .._utils import atomic_path

    nii, csv = uncertainty_paths(output)
    umap = extra["map"]
    save_like(np.asanyarray(umap.dataobj), umap, nii, overwrite=overwrite, dtype=np.float32)
    check_output_path(csv, overwrite=overwrite, suffixes=(".csv",))
    with atomic_path(csv) as tmp:
        pd.DataFrame(extra["slices"]).assign(method=extra["method"]).to_csv(tmp, index=False)
    return nii, csv
