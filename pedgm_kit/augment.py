"""The original study's augmentation, on the fly and batch-wise, written with ``keras.ops``.

The set (docs/design.md §1.3), all ranges and probabilities being parameters of :class:`AugmentConfig`:

- geometric, each applied to a slice with probability ``p_geometric`` (0.5):
  crop/pad each side by -10..+10 % (then resized back), affine scale 0.8..1.1 per axis, translation
  -10..+10 %, rotation -25..+25 degrees. Image and mask move together; the image is interpolated
  linearly, the mask with nearest neighbour, so it stays binary. Padding takes the slice's minimum.
- intensity, "0 to 5 of" (here: a random number of the four groups, in random order): Gaussian blur
  sigma 0..1.5 or average blur k 2..4; sharpen (alpha 0..1, lightness 0.75..1.25); additive
  Gaussian noise; linear contrast 0.5..1.5.
- every slice is re-standardised (mean 0, std 1) afterwards, as the original did.

Randomness is split from the work: :func:`sample_params` draws every parameter of a batch with a
NumPy generator (seeded, hence identical batches for identical seeds on every backend), and
:func:`apply_augmentation` is a pure ``keras.ops`` function of (images, masks, params) that runs
eagerly on any backend or inside a ``tf.data`` map. :class:`PairedAugmentation` wraps both as a
Keras layer taking ``{"images", "segmentation_masks"}`` like Keras' own preprocessing layers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ._backend import keras
from .exceptions import ParameterError

ops = keras.ops

__all__ = [
    "AugmentConfig",
    "PairedAugmentation",
    "apply_augmentation",
    "augment_numpy",
    "materialise",
    "sample_params",
    "standardise_slices",
]

_BLUR_RADIUS = 5  # covers sigma 1.5 at 3 sigma and box kernels up to 4


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the augmentation (defaults: the original study's).

    Ranges are (low, high); fractions are of the image size; angles in degrees.
    """

    p_geometric: float = 0.5
    crop_pad: tuple[float, float] = (-0.10, 0.10)
    scale: tuple[float, float] = (0.8, 1.1)
    translate: tuple[float, float] = (-0.10, 0.10)
    rotate_deg: tuple[float, float] = (-25.0, 25.0)
    max_intensity_ops: int = 5
    gaussian_sigma: tuple[float, float] = (0.0, 1.5)
    average_kernel: tuple[int, int] = (2, 4)
    sharpen_alpha: tuple[float, float] = (0.0, 1.0)
    sharpen_lightness: tuple[float, float] = (0.75, 1.25)
    noise_std: tuple[float, float] = (0.0, 0.1)
    contrast: tuple[float, float] = (0.5, 1.5)

    def __post_init__(self):
        if not 0.0 <= self.p_geometric <= 1.0:
            raise ParameterError(f"p_geometric must be in [0, 1], got {self.p_geometric!r}")
        for name in ("crop_pad", "scale", "translate", "rotate_deg", "gaussian_sigma", "average_kernel",
                     "sharpen_alpha", "sharpen_lightness", "noise_std", "contrast"):
            low, high = getattr(self, name)
            if low > high:
                raise ParameterError(f"{name} must be (low, high) with low <= high, got {(low, high)!r}")
        if self.scale[0] <= 0 or self.crop_pad[0] <= -0.5 or self.average_kernel[1] > 2 * _BLUR_RADIUS + 1:
            raise ParameterError(f"scale must be > 0, crop_pad > -0.5 and kernels <= 11; got {asdict(self)}")

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------- parameters


def sample_params(rng: np.random.Generator, batch: int, size: tuple[int, int], config: AugmentConfig) -> dict:
    """Draw every random parameter of a batch (NumPy, float32 arrays of leading size ``batch``).

    Returns
    -------
    dict
        ``transform``: (batch, 8) projective transforms (output -> input pixel coordinates, the
        layout of ``keras.ops.image.affine_transform``); ``blur``: (batch, 11) separable kernels
        (identity where not applied); ``sharpen_alpha``, ``sharpen_light``, ``noise_std``,
        ``contrast``: (batch,) (neutral values where not applied); ``noise``: (batch, h, w, 1).
    """
    h, w = size
    c = config
    transforms = np.zeros((batch, 8), np.float32)
    for i in range(batch):
        transforms[i] = _geometry(rng, h, w, c)
    # intensity: a random number of the four groups, each picked at most once
    groups = np.zeros((batch, 4), bool)
    for i in range(batch):
        k = rng.integers(0, min(c.max_intensity_ops, 4) + 1)
        groups[i, rng.permutation(4)[:k]] = True
    blur = np.zeros((batch, 2 * _BLUR_RADIUS + 1), np.float32)
    blur[:, _BLUR_RADIUS] = 1.0
    for i in np.flatnonzero(groups[:, 0]):
        blur[i] = _blur_kernel(rng, c)
    alpha = np.where(groups[:, 1], rng.uniform(*c.sharpen_alpha, batch), 0.0).astype(np.float32)
    light = rng.uniform(*c.sharpen_lightness, batch).astype(np.float32)
    noise_std = np.where(groups[:, 2], rng.uniform(*c.noise_std, batch), 0.0).astype(np.float32)
    contrast = np.where(groups[:, 3], rng.uniform(*c.contrast, batch), 1.0).astype(np.float32)
    noise = rng.standard_normal((batch, h, w, 1)).astype(np.float32)
    return {"transform": transforms, "blur": blur, "sharpen_alpha": alpha, "sharpen_light": light,
            "noise_std": noise_std, "contrast": contrast, "noise": noise}


def _geometry(rng, h, w, c: AugmentConfig) -> np.ndarray:
    """3x3 output->input matrix (x = column, y = row) of crop/pad followed by the affine."""
    m = np.eye(3)
    if rng.random() < c.p_geometric:  # crop (negative) / pad (positive) each side, resized back
        top, bottom, left, right = rng.uniform(*c.crop_pad, 4)
        sx = (1 + left + right)
        sy = (1 + top + bottom)
        m = np.array([[sx, 0, -left * w], [0, sy, -top * h], [0, 0, 1]]) @ m
    if rng.random() < c.p_geometric:  # affine about the centre
        scale = rng.uniform(*c.scale, 2)
        shift = rng.uniform(*c.translate, 2) * (w, h)
        angle = math.radians(rng.uniform(*c.rotate_deg))
        cx, cy = (w - 1) / 2, (h - 1) / 2
        cos, sin = math.cos(angle), math.sin(angle)
        forward = (
            np.array([[1, 0, cx + shift[0]], [0, 1, cy + shift[1]], [0, 0, 1]])
            @ np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])
            @ np.diag([scale[0], scale[1], 1])
            @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
        )
        m = m @ np.linalg.inv(forward)
    return np.array([m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2], 0, 0], np.float32)


def _blur_kernel(rng, c: AugmentConfig) -> np.ndarray:
    taps = np.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, dtype=float)
    if rng.random() < 0.5:
        sigma = rng.uniform(*c.gaussian_sigma)
        if sigma < 1e-3:
            kernel = (taps == 0).astype(float)
        else:
            kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    else:
        k = int(rng.integers(c.average_kernel[0], c.average_kernel[1] + 1))
        start = -(k // 2)
        kernel = ((taps >= start) & (taps < start + k)).astype(float)
    return (kernel / kernel.sum()).astype(np.float32)


# ------------------------------------------------------------------------------------- the work


def standardise_slices(images):
    """Per-slice standardisation (mean 0, std 1 over each slice) with ``keras.ops``."""
    mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
    std = ops.std(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) / ops.maximum(std, 1e-6)


def _shifted(x, offset: int, axis: int):
    """``x`` shifted by ``offset`` pixels along ``axis`` (1 = rows, 2 = cols), edges replicated."""
    r = _BLUR_RADIUS
    pad = [(0, 0)] * 4
    pad[axis] = (r, r)
    padded = ops.pad(x, pad, mode="symmetric")
    n = ops.shape(x)[axis]
    start = r + offset
    return padded[:, start : start + n] if axis == 1 else padded[:, :, start : start + n]


def _separable(x, kernel):
    """Convolve each sample with its own separable kernel (batch, taps) along rows then columns."""
    out = x
    for axis in (1, 2):
        acc = 0.0
        for j, offset in enumerate(range(-_BLUR_RADIUS, _BLUR_RADIUS + 1)):
            acc = acc + kernel[:, j, None, None, None] * _shifted(out, offset, axis)
        out = acc
    return out


def apply_augmentation(images, masks, params: dict):
    """Augment a batch; pure ``keras.ops`` (any backend, eager or in a ``tf.data`` map).

    Parameters
    ----------
    images : tensor (batch, h, w, 1) float32
        Standardised slices.
    masks : tensor (batch, h, w, 1)
        Binary masks.
    params : dict
        From :func:`sample_params`.

    Returns
    -------
    (images, masks)
        Images float32, re-standardised per slice; masks float32 holding only 0 and 1.
    """
    images = ops.cast(images, "float32")
    masks = ops.cast(masks, "float32")
    low = ops.min(images, axis=(1, 2, 3), keepdims=True)
    moved = ops.image.affine_transform(images - low, params["transform"], interpolation="bilinear",
                                       fill_mode="constant", fill_value=0.0) + low
    masks = ops.image.affine_transform(masks, params["transform"], interpolation="nearest",
                                       fill_mode="constant", fill_value=0.0)
    x = _separable(moved, params["blur"])
    # sharpen (imgaug): (1 - a) x + a ((9 + L) x - 3x3 box sum)
    box = _separable(x, _box3(ops.shape(x)[0]))
    alpha = params["sharpen_alpha"][:, None, None, None]
    light = params["sharpen_light"][:, None, None, None]
    x = (1 - alpha) * x + alpha * ((9 + light) * x - 9 * box)
    x = x + params["noise_std"][:, None, None, None] * params["noise"]
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * params["contrast"][:, None, None, None] + mean
    return standardise_slices(x), ops.cast(masks > 0.5, "float32")


def _box3(batch):
    kernel = np.zeros(2 * _BLUR_RADIUS + 1, np.float32)
    kernel[_BLUR_RADIUS - 1 : _BLUR_RADIUS + 2] = 1 / 3
    return ops.broadcast_to(ops.convert_to_tensor(kernel)[None, :], (batch, kernel.size))


def augment_numpy(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None = None):
    """Augment NumPy arrays (batch, h, w[, 1]) eagerly; returns NumPy (images float32, masks uint8)."""
    config = config or AugmentConfig()
    images = np.asarray(images, np.float32)
    masks = np.asarray(masks)
    if images.ndim == 3:
        images, masks = images[..., None], masks[..., None]
    params = sample_params(rng, images.shape[0], images.shape[1:3], config)
    out_images, out_masks = apply_augmentation(images, masks, params)
    return ops.convert_to_numpy(out_images), ops.convert_to_numpy(out_masks).astype(np.uint8)


def materialise(images: np.ndarray, masks: np.ndarray, *, multiplier: int = 16, seed: int = 0,
                config: AugmentConfig | None = None, batch_size: int = 32):
    """``multiplier`` augmented copies of every slice (the original's x16), for inspection/reproduction.

    Returns (images (n * multiplier, h, w) float32, masks uint8, source index (n * multiplier,)).
    """
    if int(multiplier) < 1:
        raise ParameterError(f"multiplier must be >= 1, got {multiplier!r}")
    rng = np.random.default_rng(seed)
    source = np.repeat(np.arange(len(images)), multiplier)
    out_i = np.empty((source.size,) + images.shape[1:3], np.float32)
    out_m = np.empty((source.size,) + images.shape[1:3], np.uint8)
    for start in range(0, source.size, batch_size):
        idx = source[start : start + batch_size]
        a, m = augment_numpy(images[idx], masks[idx], rng, config)
        out_i[start : start + len(idx)] = a[..., 0]
        out_m[start : start + len(idx)] = m[..., 0]
    return out_i, out_m, source


class PairedAugmentation(keras.layers.Layer):
    """Keras layer: augments ``{"images": ..., "segmentation_masks": ...}`` together.

    Parameters
    ----------
    config : AugmentConfig, optional
        Ranges and probabilities (default: the original study's).
    seed : int, default 0
        Seed of the NumPy generator that draws each call's parameters.

    Notes
    -----
    Runs eagerly (parameters are drawn in NumPy per call). For input pipelines use
    :func:`sample_params` + :func:`apply_augmentation` (see :mod:`pedgm_kit.train`).
    """

    def __init__(self, config: AugmentConfig | None = None, *, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.config = config or AugmentConfig()
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def call(self, data, training=True):
        images, masks = data["images"], data["segmentation_masks"]
        if not training:
            return {"images": images, "segmentation_masks": masks}
        shape = tuple(int(v) for v in ops.shape(images))
        params = sample_params(self._rng, shape[0], shape[1:3], self.config)
        images, masks = apply_augmentation(images, masks, params)
        return {"images": images, "segmentation_masks": masks}

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
