"""Drawing a slice: the image, its masks in one of four overlay modes, orientation letters in a margin.

Plain functions of arrays (no widgets), so everything here is tested without a kernel. Letters are
drawn with Pillow's bundled font (no antialiasing, so they are crisp at any size and exactly
:data:`_TEXT_RGB`).
"""

from __future__ import annotations

import io as _io
from collections.abc import Mapping, Sequence

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from ..exceptions import (
    DimensionError,
    GridMismatchError,
    ImageContentError,
    ParameterError,
)
from ..io import check_binary, check_choice

__all__ = [
    "COLOURS",
    "LABEL_MARGIN_PX",
    "MODES",
    "check_mode",
    "check_opacity",
    "check_scale",
    "glyph",
    "orientation_labels",
    "render_slice",
    "to_png",
]

MODES: tuple[str, ...] = ("manual", "predicted", "both", "agreement")
"""Overlay modes of :func:`render_slice` and :class:`~pedgm_kit.viewer.SliceViewer`."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "manual": (0, 200, 255),  # cyan
    "predicted": (255, 0, 200),  # magenta
    "tp": (255, 215, 0),  # yellow: manual and model agree
    "fp": (255, 40, 40),  # red: model only
    "fn": (40, 110, 255),  # blue: manual only (missed)
}
"""RGB colour of each overlay; agreement mode uses ``tp``, ``fp`` and ``fn``."""

LABEL_MARGIN_PX = 20
"""Width (pixels) of the dark margin holding the orientation letters, on every side."""

_MARGIN_RGB = (24, 24, 24)
_TEXT_RGB = (240, 240, 240)
_FONT_PX = 14
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S", "?": "?"}


def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=_FONT_PX)


def glyph(letter: str) -> np.ndarray:
    """The bitmap :func:`render_slice` draws for an orientation letter (Pillow's default font).

    Parameters
    ----------
    letter : {"A", "P", "L", "R", "S", "I", "?"}
        Anything else is drawn as "?".

    Returns
    -------
    numpy.ndarray of bool
        True where the letter is drawn, cropped to its ink.
    """
    from PIL import Image, ImageDraw

    letter = letter if letter in _OPPOSITE else "?"
    canvas = Image.new("L", (2 * _FONT_PX, 2 * _FONT_PX), 0)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = "1"  # no antialiasing: every pixel is ink or background
    draw.text((_FONT_PX, _FONT_PX), letter, fill=255, font=_font(), anchor="mm")
    ink = np.asarray(canvas) > 127
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def orientation_labels(affine, *, slice_axis: int = 2) -> dict[str, str]:
    """Anatomical direction faced by each edge of a displayed slice.

    The picture is ``np.rot90(data.take(k, axis=slice_axis))`` for data on the voxel grid of
    ``affine`` (the viewer's convention): its columns run along the first in-plane voxel axis,
    its rows against the second one.

    Parameters
    ----------
    affine : array_like, shape (4, 4)
        Voxel-to-world (RAS+) affine of the data the slice is taken from.
    slice_axis : int, default 2
        Voxel axis the slices are taken along.

    Returns
    -------
    dict of str to str
        Keys ``top``, ``bottom``, ``left``, ``right``; values one of ``A P L R S I`` (``?`` for an
        axis the affine does not orient). An LAS grid gives ``top A, bottom P, left R, right L``
        (radiological); an LPS grid shown the same way gives ``top P``, i.e. upside down.

    Raises
    ------
    ParameterError
        ``affine`` is not 4x4 or ``slice_axis`` is not 0, 1 or 2.

    Examples
    --------
    >>> orientation_labels(np.diag([-0.5, 0.5, 5.0, 1.0]))
    {'top': 'A', 'bottom': 'P', 'left': 'R', 'right': 'L'}
    """
    aff = np.asarray(affine, dtype=float)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise ParameterError(f"affine must be a finite 4x4 matrix; got shape {aff.shape}")
    if isinstance(slice_axis, bool) or slice_axis not in (0, 1, 2):
        raise ParameterError(f"slice_axis must be 0, 1 or 2; got {slice_axis!r}")
    codes = [c if c is not None else "?" for c in nib.aff2axcodes(aff)]
    first, second = (codes[a] for a in range(3) if a != slice_axis)
    return {"top": second, "bottom": _OPPOSITE[second], "left": _OPPOSITE[first], "right": first}


def check_mode(mode) -> str:
    """``mode`` if it is one of :data:`MODES`, else a :class:`ParameterError`."""
    return check_choice(mode, MODES, name="mode")


def check_opacity(opacity) -> float:
    """``opacity`` as a float in [0, 1], else a :class:`ParameterError`."""
    if isinstance(opacity, bool) or not (isinstance(opacity, (int, float, np.number)) and 0.0 <= float(opacity) <= 1.0):
        raise ParameterError(f"opacity must be a number in [0, 1]; got {opacity!r}")
    return float(opacity)


def _as_mask(arr, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(arr)
    if a.shape != shape:
        raise GridMismatchError(f"{name} mask shape {a.shape} differs from image slice shape {shape}")
    return check_binary(a, name=name, what="mask")


def check_scale(scale) -> tuple[int, int]:
    values = (scale, scale) if np.isscalar(scale) else tuple(scale)
    ok = len(values) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values
    )
    if not ok:
        raise ParameterError(f"scale must be a positive integer or two of them (rows, columns); got {scale!r}")
    return int(values[0]), int(values[1])


def _check_box(zoom_box, shape) -> tuple[int, int, int, int]:
    if zoom_box is None:
        return 0, shape[0], 0, shape[1]
    try:
        r0, r1, c0, c1 = (int(v) for v in zoom_box)
        ints = all(float(v) == int(v) for v in zoom_box)
    except (TypeError, ValueError):
        ints = False
    if not ints or not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
        raise ParameterError(
            f"zoom_box must be integers (row_start, row_stop, col_start, col_stop) inside the "
            f"slice shape {shape}; got {zoom_box!r}"
        )
    return r0, r1, c0, c1


def _blend(rgb: np.ndarray, where: np.ndarray, colour, opacity: float) -> None:
    if where.any():
        rgb[where] = (1.0 - opacity) * rgb[where] + opacity * np.asarray(colour, dtype=np.float64)


def render_slice(
    image,
    *,
    manual=None,
    predicted=None,
    mode: str = "both",
    opacity: float = 0.5,
    zoom_box: Sequence[int] | None = None,
    scale: int | Sequence[int] = 1,
    vmin: float | None = None,
    vmax: float | None = None,
    labels: Mapping[str, str] | None = None,
    outline_px: int = 2,
) -> np.ndarray:
    """Draw one slice with its GM masks as an RGB picture.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        The slice as it is to be shown (row 0 at the top), e.g. ``np.rot90(las[:, :, k])``.
    manual : array_like of bool or 0/1, shape (rows, cols), optional
        Manual GM mask of the slice.
    predicted : array_like of bool or 0/1, shape (rows, cols), optional
        Model (or any other) GM mask of the slice.
    mode : {"manual", "predicted", "both", "agreement"}, default "both"
        What to overlay (see the module docstring). A mask that is None is not drawn, except
        that "agreement" needs both.
    opacity : float, default 0.5
        Weight of the overlay colours, 0 (image only) to 1 (opaque); the thin manual outline of
        mode "both" is drawn with ``min(1, 2 * opacity)``.
    zoom_box : (row_start, row_stop, col_start, col_stop), optional
        Part of the slice to show, half-open pixel ranges; default the whole slice.
    scale : int or (int, int), default 1
        Each pixel becomes a ``scale`` x ``scale`` block (or rows x columns), nearest neighbour.
    vmin, vmax : float, optional
        Intensities shown as black and white; default the 0.5 and 99.5 percentiles of the slice.
    labels : mapping, optional
        Letters to draw beside the ``top``, ``bottom``, ``left`` and ``right`` edges (from
        :func:`orientation_labels`). When given, a dark margin of :data:`LABEL_MARGIN_PX` pixels is
        added on every side and the letters (:func:`glyph`, Pillow's font) are centred in it.
    outline_px : int, default 2
        Width of the manual outline of mode "both", in output pixels.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
        ``H = (row_stop - row_start) * scale_rows`` (+ ``2 * LABEL_MARGIN_PX`` with labels),
        likewise ``W``. A pixel without overlay is grey ``g = round(255 * clip((v - vmin) / (vmax
        - vmin), 0, 1))``; an overlaid one ``round((1 - opacity) * g + opacity * colour)``.

    Raises
    ------
    DimensionError
        ``image`` is not 2D or is empty.
    GridMismatchError
        A mask's shape differs from the image's.
    ImageContentError
        The image holds NaN/infinite values or is not numeric, or a mask is not binary.
    ParameterError
        Bad ``mode``, ``opacity``, ``zoom_box``, ``scale``, ``outline_px``, or "agreement" without
        both masks.

    Examples
    --------
    >>> img = np.arange(16.0).reshape(4, 4)
    >>> truth = np.zeros((4, 4), bool); truth[1:3, 1:3] = True
    >>> rgb = render_slice(img, manual=truth, predicted=truth, mode="agreement", opacity=1.0)
    >>> tuple(rgb[1, 1]) == COLOURS["tp"]
    True
    """
    img = np.asarray(image)
    if img.ndim != 2 or 0 in img.shape:
        raise DimensionError(f"image slice must be a non-empty 2D array; got shape {img.shape}")
    if img.dtype.kind not in "iufb":
        raise ImageContentError(f"image slice has dtype {img.dtype}; expected numbers")
    img = img.astype(np.float64)
    if not np.isfinite(img).all():
        raise ImageContentError("image slice holds NaN or infinite values")
    check_mode(mode)
    opacity = check_opacity(opacity)
    if isinstance(outline_px, bool) or not isinstance(outline_px, (int, np.integer)) or outline_px < 1:
        raise ParameterError(f"outline_px must be a positive integer; got {outline_px!r}")
    man = None if manual is None else _as_mask(manual, "manual", img.shape)
    pred = None if predicted is None else _as_mask(predicted, "predicted", img.shape)
    if mode == "agreement" and (man is None or pred is None):
        raise ParameterError("mode 'agreement' needs both the manual and the predicted mask")
    sy, sx = check_scale(scale)
    r0, r1, c0, c1 = _check_box(zoom_box, img.shape)

    lo = float(np.percentile(img, 0.5)) if vmin is None else float(vmin)
    hi = float(np.percentile(img, 99.5)) if vmax is None else float(vmax)
    if not hi > lo:
        hi = lo + 1.0

    def show(a):
        return np.repeat(np.repeat(a[r0:r1, c0:c1], sy, axis=0), sx, axis=1)

    grey = np.round(255.0 * np.clip((show(img) - lo) / (hi - lo), 0.0, 1.0))
    rgb = np.repeat(grey[..., None], 3, axis=2)
    a = float(opacity)
    m = None if man is None else show(man)
    p = None if pred is None else show(pred)
    if mode == "manual" and m is not None:
        _blend(rgb, m, COLOURS["manual"], a)
    elif mode == "predicted" and p is not None:
        _blend(rgb, p, COLOURS["predicted"], a)
    elif mode == "both":
        if p is not None:
            _blend(rgb, p, COLOURS["predicted"], a)
        if m is not None:
            inner = ndi.binary_erosion(m, structure=ndi.generate_binary_structure(2, 1),
                                       iterations=int(outline_px), border_value=0)
            _blend(rgb, m & ~inner, COLOURS["manual"], min(1.0, 2.0 * a))  # thin: stronger than fills
    elif mode == "agreement":
        _blend(rgb, m & p, COLOURS["tp"], a)
        _blend(rgb, p & ~m, COLOURS["fp"], a)
        _blend(rgb, m & ~p, COLOURS["fn"], a)
    out = np.round(rgb).astype(np.uint8)
    if labels is not None:
        out = _add_labels(out, labels)
    return out


def _add_labels(rgb: np.ndarray, labels: Mapping[str, str]) -> np.ndarray:
    from PIL import Image, ImageDraw

    missing = {"top", "bottom", "left", "right"} - set(labels)
    if missing:
        raise ParameterError(f"labels must give top, bottom, left and right; missing {sorted(missing)}")
    m = LABEL_MARGIN_PX
    h, w = rgb.shape[:2]
    out = np.empty((h + 2 * m, w + 2 * m, 3), dtype=np.uint8)
    out[:] = _MARGIN_RGB
    out[m:m + h, m:m + w] = rgb
    H, W = out.shape[:2]
    picture = Image.fromarray(out)
    draw = ImageDraw.Draw(picture)
    draw.fontmode = "1"
    centres = {"top": (W / 2, m / 2), "bottom": (W / 2, H - m / 2), "left": (m / 2, H / 2), "right": (W - m / 2, H / 2)}
    for side, xy in centres.items():
        letter = str(labels[side]) if str(labels[side]) in _OPPOSITE else "?"
        draw.text(xy, letter, fill=_TEXT_RGB, font=_font(), anchor="mm")
    return np.asarray(picture, dtype=np.uint8).copy()


def to_png(rgb) -> bytes:
    """Encode an RGB ``uint8`` array as PNG (lossless), for ``ipywidgets.Image``.

    Parameters
    ----------
    rgb : array_like of uint8, shape (H, W, 3)

    Returns
    -------
    bytes
        The PNG file's bytes (Pillow if installed, else matplotlib).

    Raises
    ------
    DimensionError
        Not an (H, W, 3) uint8 array.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise DimensionError(f"expected an (H, W, 3) uint8 array; got {arr.dtype} of shape {arr.shape}")
    buf = _io.BytesIO()
    try:
        from PIL import Image as _PILImage
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        from matplotlib import image as mpimg

        mpimg.imsave(buf, arr, format="png")
    else:
        _PILImage.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
