"""Gray-matter segmentation of a NIfTI scan, as SCT's sct_deepseg_gm does it, but cord-centred.

Pipeline (SCT's, docs/design.md §3) with two robustness fixes:

1. load and validate; reorient to the working orientation (LAS+, the orientation SCT's model was
   trained on), so axis 2 is the slice axis whatever the stored orientation (SCT takes the orientation as stored);
2. resample in-plane to the model's spacing (0.25 mm, linear), slice thickness kept;
3. cut a 200x200 window per axial slice -- centred on the cord (SCT: on the image centre, which misses
   a cord off centre): from ``cord_mask`` when given, otherwise located automatically:
   a first batch of slices around the middle is predicted at the image centre; slices whose GM is cut
   by the window border or lies off centre are re-centred on their GM probability mass; when no GM is
   found at all, overlapping windows tile the middle slice to find it. Each slice is re-centred on its
   own GM (per-slice centring), slices without GM follow their nearest neighbours;
4. standardise with the mean/std of the stacked windows (SCT's volume standardisation); when the
   windows were moved to the cord, the statistics are taken again from the final windows and the
   slices predicted once more with them;
5. predict in batches with a model compiled once; optional test-time augmentation (8 passes with a
   seeded random intensity offset U(0, 2) plus the clean pass, averaged);
6. threshold at 0.999 (0 keeps the soft probabilities), resample back to the input grid (linear),
   threshold at 0.5, and return the input's orientation, shape and affine.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..exceptions import ParameterError
from ..geometry import ModelGrid, Window, centres_from_mask
from ..io import (
    check_binary,
    check_choice,
    check_output_path,
    check_same_grid,
    default_output_path,
    load_image,
    save_like,
    source_name,
    to_image_like,
)
from ..model import load_model
from ..registry import BUILTIN_MODELS
from ..schema import PADDINGS
from .cord_scale import SCALE_TOLERANCE, check_cord_scale, estimate_cord_scale, median_gm_area_mm2
from .engines import make_engine
from .uncertainty import UNCERTAINTY_METHODS, mc_dropout_passes, save_uncertainty, slice_scores, uncertainty_paths

__all__ = ["DEFAULT_PADDING", "PADDINGS", "SegmentationWarning", "Segmenter", "segment_file", "segment_image"]


class SegmentationWarning(UserWarning):
    """Segmentation went ahead but something may be wrong (e.g. no gray matter found)."""


_PROBE_SLICES = 8  # slices around the middle predicted first, to tell whether the cord is off centre

#: How the window is filled where it leaves a small field of view (one of :data:`PADDINGS`, from
#: :mod:`pedgm_kit.schema`; see :class:`Segmenter`).
DEFAULT_PADDING = "reflect"


@functools.lru_cache(maxsize=4)
def _cached_model(spec: str, stamp: tuple):
    """Loaded once per weights file version (``stamp`` = mtime and size, so retrained files reload)."""
    return load_model(spec)


@functools.lru_cache(maxsize=8)
def _cached_engine(spec: str, stamp: tuple, engine: str, batch_size: int):
    model, metadata = _cached_model(spec, stamp)
    return make_engine(engine, model, batch_size=batch_size, weights=metadata["source"],
                       input_size=int(metadata["input_size"]))


class Segmenter:
    """A loaded model plus the inference settings; call :meth:`segment` on images.

    Parameters
    ----------
    model : {"challenge", "large"} or path-like, default "challenge"
        SCT's pretrained weights by name, or a ``.hdf5`` weights file with its ``.json`` beside it.
    batch_size : int, default 8
        Windows per forward pass.
    engine : {"auto", "keras", "xla", "onnx"}, default "auto"
        What runs the network (:mod:`pedgm_kit.segment.engines`); the masks do not depend on it.
    padding : {"reflect", "mean", "background", "none"}, default "reflect"
        What fills the window where it reaches past the image (small fields of view): the image
        mirrored at its edge, the volume mean, the image's background (its 1st intensity percentile),
        or ``"none"``: as SCT, the network runs on the whole slice at its own size when the slice
        fits in the window. ``benchmarks/bench_small_fov.py`` compares them.
    """

    def __init__(self, model: str | os.PathLike = "challenge", *, batch_size: int = 8, engine: str = "auto",
                 padding: str = DEFAULT_PADDING):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
        check_choice(padding, PADDINGS, name="padding")
        if str(model) in BUILTIN_MODELS:
            spec, stamp = str(model), ()
        else:
            path = Path(model).resolve()
            stat = path.stat() if path.is_file() else None
            meta = path.with_suffix(".json")  # its metadata too: an edited .json is read again
            meta_stat = meta.stat() if meta.is_file() else None
            spec, stamp = str(path), ((stat.st_mtime_ns, stat.st_size) if stat else ()) + (
                (meta_stat.st_mtime_ns, meta_stat.st_size) if meta_stat else ())
        self.model, metadata = _cached_model(spec, stamp)
        self.metadata = dict(metadata)
        self.batch_size = int(batch_size)
        self.engine = _cached_engine(spec, stamp, engine, self.batch_size)
        self.padding = padding
        self.window = Window(int(self.metadata["input_size"]))
        self.spacing_mm = float(self.metadata["spacing_mm"])
        self.windows_predicted = 0
        self._fill = 0.0  # constant padding value (standardised units), per image

    # ------------------------------------------------------------------ model calls
    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Sigmoid output for standardised windows of shape (N, size, size), in fixed-size batches."""
        self.windows_predicted += len(windows)
        return self.engine.predict(windows)

    def _extract(self, plane: np.ndarray, centre) -> np.ndarray:
        if self.padding == "reflect":
            return self.window.extract(plane, centre, mode="symmetric")
        return self.window.extract(plane, centre, mode="constant", constant=self._fill)

    # ------------------------------------------------------------------ public API
    def segment(
        self,
        image: str | os.PathLike | nib.Nifti1Image,
        *,
        cord_mask: str | os.PathLike | nib.Nifti1Image | None = None,
        threshold: float | None = None,
        tta: bool = False,
        seed: int = 0,
        centre_on_cord: bool = True,
        cord_scale: float | str | None = None,
        uncertainty: str | None = None,
    ) -> nib.Nifti1Image:
        """Segment GM in a 3D image; see :func:`segment_image`."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
            raise ParameterError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        threshold = float(self.metadata["threshold"]) if threshold is None else threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold < 1.0:
            raise ParameterError(f"threshold must be a number in [0, 1), got {threshold!r}")
        threshold = float(threshold)
        scale = check_cord_scale(cord_scale)
        check_choice(uncertainty, (*UNCERTAINTY_METHODS, "", None), name="uncertainty")
        name = source_name(image)
        img = load_image(image, name=name)  # the input layer: header, voxels and geometry (check_geometry)
        mask_data = None
        mask_name = None
        if cord_mask is not None:
            mask_name = source_name(cord_mask, "<in-memory cord mask>")
            mask_img = load_image(cord_mask, what="cord mask", allow_constant=True, name=mask_name,
                                  geometry=False)  # on the image's grid (checked next), so its geometry too
            check_same_grid(img, mask_img, what="cord mask", image_name=name, other_name=mask_name)
            mask_data = check_binary(np.asanyarray(mask_img.dataobj), name=mask_name, what="cord mask")
        run = functools.partial(self._segment, img, mask_data, threshold=threshold, tta=tta, seed=seed,
                                centre_on_cord=centre_on_cord, uncertainty=uncertainty or None, mask_name=mask_name)
        if scale == "auto":
            first = run(self.spacing_mm)
            area = median_gm_area_mm2(first)
            scale = 1.0 if area is None else estimate_cord_scale(area)
            if abs(scale - 1.0) < SCALE_TOLERANCE:
                first.extra["pedgm_segment"].update(cord_scale=1.0, gm_area_first_pass_mm2=area)
                return first
            out = run(self.spacing_mm * scale)
            out.extra["pedgm_segment"].update(cord_scale=scale, gm_area_first_pass_mm2=area)
            return out
        out = run(self.spacing_mm * (scale or 1.0))
        out.extra["pedgm_segment"]["cord_scale"] = scale or 1.0
        return out

    def _segment(self, img, cord_mask, spacing_mm: float, *, threshold: float, tta: bool, seed: int,
                 centre_on_cord: bool, uncertainty: str | None = None, mask_name: str | None = None) -> nib.Nifti1Image:
        """One segmentation on a model grid of ``spacing_mm`` (the model's, or scaled to the cord)."""
        grid = ModelGrid(img, spacing_mm=spacing_mm)
        raw, target = grid.volume, grid.shape_2d
        n_slices = raw.shape[2]
        if cord_mask is not None:
            mask = grid.mask(cord_mask.astype(np.float32))
            centres, source = centres_from_mask(mask, name=f"{mask_name or 'cord mask'} (cord mask)"), "cord mask"
        else:
            centres, source = np.tile(np.asarray(target, float) / 2, (n_slices, 1)), "auto"
        if not centre_on_cord and cord_mask is None:
            source = "image centre"

        whole = self.padding == "none" and max(target) <= self.window.size
        if whole:  # SCT's small-FOV rule: the fully convolutional net on each whole slice
            volume = self._standardise(raw, raw)
            probs = self.predict_windows(np.moveaxis(volume, 2, 0))
            info = {"localised": False, "recentred_slices": 0, "centring": "whole slice (small field of view)"}
            spread = None
            if tta or uncertainty:
                mean, spread = self._passes(np.moveaxis(volume, 2, 0), probs, seed=seed, method=uncertainty or "tta")
                probs = mean if tta else probs
            full = np.moveaxis(probs, 0, 2)
            spread_full = None if spread is None else np.moveaxis(spread, 0, 2)
            centres = np.tile(np.asarray(target, float) / 2, (n_slices, 1))
        else:
            volume = self._standardise(raw, self._windows(raw, centres, fill_from=raw))
            probs, moved, info = self._locate(volume, centres, auto=source == "auto")
            if source == "auto" and not np.array_equal(moved, centres):
                # the statistics SCT takes over its windows come from the final, cord-centred ones
                volume = self._standardise(raw, self._windows(raw, moved, fill_from=raw))
                probs = self._predict_at(volume, moved)
                info["restandardised"] = True
            centres = moved
            info["centring"] = source
            spread = spread_full = None
            if tta or uncertainty:
                windows = np.stack([self._extract(volume[..., z], centres[z]) for z in range(n_slices)])
                mean, spread = self._passes(windows, probs, seed=seed, method=uncertainty or "tta")
                probs = mean if tta else probs
            full = np.zeros(volume.shape, dtype=np.float32)
            for z in range(n_slices):
                self.window.paste(full[..., z], probs[z], centres[z])
            if spread is not None:
                spread_full = np.zeros(volume.shape, dtype=np.float32)
                for z in range(n_slices):
                    self.window.paste(spread_full[..., z], spread[z], centres[z])

        if threshold > 0:
            full = (full > threshold).astype(np.float32)
        back = grid.to_input(full)
        if threshold > 0:
            back = (back > 0.5).astype(np.uint8)
            dtype = np.uint8
        else:
            back = np.clip(back, 0.0, 1.0)
            dtype = np.float32
        out = to_image_like(back, img, dtype=dtype)
        if threshold == 0:  # the model-grid map too: an ensemble thresholds its mean there, as one model does
            out.extra["pedgm_model_grid"] = {"probabilities": full, "grid": grid}
        scale = np.asarray(grid.in_plane, float) / np.asarray(target, float)
        info["model_spacing_mm"] = spacing_mm
        info["padding"] = self.padding
        info["engine"] = self.engine.name
        info["centres_model"] = [tuple(np.round(c, 1)) for c in centres]
        info["centres_las_vox"] = [tuple(np.round(c * scale - 0.5, 1)) for c in centres]
        out.extra["pedgm_segment"] = info
        if uncertainty and spread_full is not None:
            umap = to_image_like(np.clip(grid.to_input(spread_full), 0.0, 1.0).astype(np.float32), img, dtype=np.float32)
            out.extra["pedgm_uncertainty"] = {"method": uncertainty, "map": umap,
                                              "slices": slice_scores(umap, out)}
            info["uncertainty"] = uncertainty
        return out

    # ------------------------------------------------------------------ standardisation
    def _windows(self, volume: np.ndarray, centres, *, fill_from: np.ndarray) -> np.ndarray:
        """The windows of every slice (raw intensities), padded as :attr:`padding` says."""
        self._fill = self._fill_value(fill_from, standardised=False)
        return np.stack([self._extract(volume[..., z], centres[z]) for z in range(volume.shape[2])])

    def _fill_value(self, raw: np.ndarray, *, standardised: bool, mean: float = 0.0, std: float = 1.0) -> float:
        if self.padding == "background":
            value = float(np.percentile(raw, 1.0))
        elif self.padding == "mean":
            value = float(raw.mean())
        else:
            return 0.0
        return (value - mean) / std if standardised else value

    def _standardise(self, raw: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """``raw`` standardised with the mean/std of ``windows`` (SCT's volume standardisation)."""
        mean, std = float(windows.mean()), float(windows.std())
        std = std if std > 0 else 1.0
        self._fill = self._fill_value(raw, standardised=True, mean=mean, std=std)
        return (raw - mean) / std

    def _predict_at(self, volume, centres) -> np.ndarray:
        probs = np.zeros((volume.shape[2], self.window.size, self.window.size), dtype=np.float32)
        self._predict_slices(volume, centres, probs, range(volume.shape[2]))
        return probs

    # ------------------------------------------------------------------ centring
    def _locate(self, volume, centres, *, auto: bool, max_rounds: int = 2):
        """Predict every slice, re-centring windows on the GM found (see module docstring).

        Returns (probabilities, final centres, info); the input ``centres`` are not modified.
        """
        n_slices = volume.shape[2]
        centres = np.array(centres, dtype=float)
        probs = np.zeros((n_slices, self.window.size, self.window.size), dtype=np.float32)
        order = np.argsort(np.abs(np.arange(n_slices) - (n_slices - 1) / 2), kind="stable")
        todo = list(order)
        info = {"localised": False, "recentred_slices": 0}
        if auto:
            first = order[:_PROBE_SLICES]
            self._predict_slices(volume, centres, probs, first)
            todo = list(order[_PROBE_SLICES:])
            if all(_gm_component(probs[z]) is None for z in first):
                mid = int(order[0])
                found = self._search_plane(volume[..., mid])
                if found is not None:
                    centres[:] = found
                    info["localised"] = True
                    todo = list(order)
                else:
                    warnings.warn("no gray matter found anywhere in the middle slice; using the image centre",
                                  SegmentationWarning, stacklevel=3)
            else:
                wanted = self._wanted_centres(probs[first], centres[first])
                moved = np.linalg.norm(wanted - centres[first], axis=1) > 8
                if moved.sum() > len(first) / 2:  # the cord is off centre: every slice follows it
                    centres[:] = np.median(wanted[moved], axis=0)
                    info["recentred_slices"] += int(moved.sum())
                    todo = list(order)
        self._predict_slices(volume, centres, probs, todo)
        if not auto:
            return probs, centres, info
        for _ in range(max_rounds):
            wanted = self._wanted_centres(probs, centres)
            redo = np.flatnonzero(np.linalg.norm(wanted - centres, axis=1) > 8)
            if redo.size == 0:
                break
            centres[redo] = wanted[redo]
            self._predict_slices(volume, centres, probs, redo)
            info["recentred_slices"] += int(redo.size)
        return probs, centres, info

    def _wanted_centres(self, probs, centres, *, max_offset_px: float = 60.0, margin_px: int = 12):
        half = self.window.size / 2
        wanted = centres.copy()
        found = np.zeros(len(centres), dtype=bool)
        for z, prob in enumerate(probs):
            comp = _gm_component(prob)
            if comp is None:
                continue
            found[z] = True
            centroid, (r0, r1, c0, c1) = comp
            off_centre = np.linalg.norm(centroid - (half - 0.5)) > max_offset_px
            cut = min(r0, c0, self.window.size - r1, self.window.size - c1) < margin_px
            if off_centre or cut:
                wanted[z] = self.window.top_left(centres[z]) + centroid + 0.5
        if found.any() and not found.all():
            z_found = np.flatnonzero(found)
            for z in np.flatnonzero(~found):
                wanted[z] = wanted[z_found[np.argmin(np.abs(z_found - z))]]
        return wanted

    def _search_plane(self, plane, *, stride: int = 150):
        """Tile a whole slice with overlapping windows; centre of the strongest GM blob, or None."""
        size = self.window.size
        axes = []
        for n in plane.shape:
            if n <= size:
                axes.append(np.array([n / 2]))
            else:
                k = int(np.ceil((n - size) / stride)) + 1
                axes.append(np.linspace(size / 2, n - size / 2, k))
        tiles_at = [np.array([r, c]) for r in axes[0] for c in axes[1]]
        tiles = self.predict_windows(np.stack([self._extract(plane, c) for c in tiles_at]))
        full = np.zeros(plane.shape, dtype=np.float32)
        for centre, tile in zip(tiles_at, tiles):
            canvas = np.zeros_like(full)
            self.window.paste(canvas, tile, centre)
            np.maximum(full, canvas, out=full)
        comp = _gm_component(full)
        return None if comp is None else comp[0] + 0.5

    def _predict_slices(self, volume, centres, probs, slices):
        slices = [int(z) for z in slices]
        if not slices:
            return
        windows = np.stack([self._extract(volume[..., z], centres[z]) for z in slices])
        probs[slices] = self.predict_windows(windows)

    def _passes(self, windows, probs, *, seed: int, method: str = "tta", passes: int = 8):
        """Mean and standard deviation of the clean pass and ``passes`` perturbed ones (seeded).

        ``tta``: SCT's test-time augmentation, a random intensity offset U(0, 2) per pass (the mean is
        SCT's TTA output). ``mc_dropout``: the network's Dropout layers active (BatchNorm in inference),
        a new dropout draw per pass (Keras; the same seed gives the same draws).
        """
        total = probs.astype(np.float64)
        squares = total ** 2
        if method == "tta":
            rng = np.random.default_rng(seed)
            for offset in rng.uniform(0.0, 2.0, size=passes):
                p = self.predict_windows(windows + np.float32(offset)).astype(np.float64)
                total += p
                squares += p ** 2
        else:
            for p in mc_dropout_passes(self.model, windows, passes=passes, seed=seed, batch_size=self.batch_size):
                total += p
                squares += p ** 2
        n = passes + 1
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0))
        return mean.astype(np.float32), std.astype(np.float32)


def segment_image(
    image: str | os.PathLike | nib.Nifti1Image,
    *,
    model: str | os.PathLike | Segmenter = "challenge",
    cord_mask: str | os.PathLike | nib.Nifti1Image | None = None,
    threshold: float | None = None,
    tta: bool = False,
    seed: int = 0,
    batch_size: int = 8,
    centre_on_cord: bool = True,
    engine: str = "auto",
    padding: str = DEFAULT_PADDING,
    cord_scale: float | str | None = None,
    uncertainty: str | None = None,
) -> nib.Nifti1Image:
    """Segment spinal cord gray matter in a 3D NIfTI image.

    Parameters
    ----------
    image : path-like or nibabel.Nifti1Image
        Axial-ish 3D scan (T2*-weighted like SCT's training data), any stored orientation.
    model : {"challenge", "large"}, path-like or Segmenter, default "challenge"
        Weights by name, a ``.hdf5`` weights file (``.json`` metadata beside it), or a loaded
        :class:`Segmenter`.
    cord_mask : path-like or nibabel.Nifti1Image, optional
        Spinal cord mask on the image's grid; windows are centred on it slice by slice. Without it
        the cord is located automatically.
    threshold : float, optional
        Probability threshold on the model grid; default from the model metadata (0.999). ``0``
        returns the soft probability map (float32) instead of a binary mask.
    tta : bool, default False
        Test-time augmentation (8 seeded intensity-offset passes plus the clean pass, averaged).
    seed : int, default 0
        Seed of the TTA offsets.
    batch_size : int, default 8
        Windows per forward pass (when ``model`` is not a Segmenter).
    centre_on_cord : bool, default True
        Locate the cord and centre the windows on it. False reproduces SCT's fixed centre crop
        (for comparisons); ignored when ``cord_mask`` is given.
    engine, padding : str
        As in :class:`Segmenter` (when ``model`` is not a Segmenter).
    cord_scale : "auto", float or None
        Size normalisation for cords of another size than the adult ones the weights were trained on
        (children): the image is resampled so the cord has the adult size before the network sees
        it, and the mask mapped back to the input grid exactly. ``"auto"`` estimates the cord's
        linear size from a first pass (median GM area per slice against
        :data:`REFERENCE_GM_AREA_MM2`) and acts only when it is more than 12% off; a number gives
        it (0.7: the cord is 70% of an adult's). None: no normalisation.
    uncertainty : {"tta", "mc_dropout"} or None
        Also estimate a per-voxel uncertainty: the standard deviation of the network's output over
        8 seeded perturbed passes and the clean one (intensity-offset TTA, or Monte-Carlo dropout).
        The map (float32, on the input grid) and per-slice scores are in
        ``img.extra["pedgm_uncertainty"]``; the mask stays the clean pass's (unless ``tta``).

    Returns
    -------
    nibabel.Nifti1Image
        Mask (uint8, 0/1) or probabilities (float32) with exactly the input's shape, affine and
        qform/sform codes. ``img.extra["pedgm_segment"]`` records the centring done.

    Raises
    ------
    InputFileError, DimensionError, ImageContentError, GridMismatchError, WeightsError
        Bad image, cord mask or weights (one-line messages naming the file).

    Examples
    --------
    >>> seg = segment_image("t2s.nii.gz", model="challenge")  # doctest: +SKIP
    >>> seg.to_filename("t2s_gmseg.nii.gz")  # doctest: +SKIP
    """
    from .ensemble import load_segmenter

    segmenter = load_segmenter(model, batch_size=batch_size, engine=engine, padding=padding)
    return segmenter.segment(
        image, cord_mask=cord_mask, threshold=threshold, tta=tta, seed=seed, centre_on_cord=centre_on_cord,
        cord_scale=cord_scale, uncertainty=uncertainty,
    )


def segment_file(
    image: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    **kwargs,
) -> Path:
    """Segment ``image`` and save the result (default ``<input>_gmseg.nii.gz`` beside it).

    The output path is checked before any work, and the file is written atomically.
    Keyword arguments are those of :func:`segment_image`.
    """
    output = Path(output) if output is not None else default_output_path(image)
    check_output_path(output, overwrite=overwrite, inputs=(image, kwargs.get("cord_mask")))
    if kwargs.get("uncertainty"):
        for extra in uncertainty_paths(output):
            check_output_path(extra, overwrite=overwrite, suffixes=None, inputs=(image,))
    seg = segment_image(image, **kwargs)
    dtype = np.uint8 if seg.get_data_dtype() == np.uint8 else np.float32
    save_uncertainty(seg, output, overwrite=overwrite)
    return save_like(np.asanyarray(seg.dataobj), seg, output, overwrite=overwrite, dtype=dtype)


# ---------------------------------------------------------------------------------------- helpers


def _gm_component(prob: np.ndarray, *, level: float = 0.5, min_pixels: int = 40):
    """Centroid (row, col) and bbox of the connected GM blob with the largest probability mass."""
    binary = prob > level
    if np.count_nonzero(binary) < min_pixels:
        return None
    labels, n = ndimage.label(binary)
    mass = ndimage.sum_labels(prob, labels, index=np.arange(1, n + 1))
    best = int(np.argmax(mass)) + 1
    if np.count_nonzero(labels == best) < min_pixels:
        return None
    rows, cols = np.nonzero(labels == best)
    weights = prob[rows, cols]
    centroid = np.array([np.average(rows, weights=weights), np.average(cols, weights=weights)])
    return centroid, (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
