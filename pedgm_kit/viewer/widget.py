"""The ipywidgets slice viewer: controls wired to :func:`render_slice` and :func:`slice_readout`."""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import nibabel as nib
import numpy as np

from ..exceptions import DimensionError, ParameterError
from ..geometry import display_pixel_mm, display_plane
from ._render import (
    COLOURS,
    check_mode,
    check_opacity,
    check_scale,
    render_slice,
    to_png,
)
from ._scans import LoadedScan, ViewerScan, _default_slice, check_grids, load_scan
from .readout import SliceReadout, slice_readout
from .review import ReviewLog

__all__ = ["SliceViewer"]


def _fmt(value: float, digits: int) -> str:
    return "&ndash;" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


class SliceViewer:
    """Browse scans slice by slice with their manual and predicted GM masks overlaid.

    Controls: scan dropdown, slice slider, model dropdown (the named masks of the current scan),
    overlay mode (:data:`MODES`), opacity slider, zoom (cord window / full field of view) and,
    with a :class:`ReviewLog`, buttons that mark the scan accepted or needing correction. The
    picture is an ``ipywidgets.Image`` (PNG from :func:`render_slice`) and the readout an
    ``ipywidgets.HTML`` table: per-slice GM area (mm²) of every mask, Dice of every mask against
    the manual one, the orientation letters and the stored orientation. Display it by leaving the
    viewer as a cell's last expression or with ``display(viewer.widget)``.

    Parameters
    ----------
    scans : sequence of ViewerScan
        The scans, in dropdown order. Scan ids must be unique.
    review : ReviewLog, optional
        Add review buttons; decisions are written to this log.
    model : str, optional
        Mask name selected first (kept while scans that have it are browsed); default the first
        name of the first scan.
    mode : {"manual", "predicted", "both", "agreement"}, default "both"
    opacity : float, default 0.5
    zoom : {"cord", "full"}, default "cord"
        "cord": the window around the cord mask (else the manual GM, else every mask) plus
        ``cord_margin_mm``, fixed per scan; "full": the whole field of view.
    slice_index : int, optional
        First slice shown; default the middle labelled slice (of the manual mask, else of a mask).
    cord_margin_mm : float, default 6.0
        Margin around the cord window, mm.
    display_px : int, default 480
        Picture size (longest side, before the label margin) that the automatic scale aims at.
    scale : int, optional
        Fixed pixel repeat factor instead of the automatic one (kept the same along rows and
        columns, so non-square pixels are shown as square).
    validate : bool, default True
        Check every file's grid (shape and affine, headers only) against its image now.
    cache_size : int, default 4
        Scans kept in memory.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The whole viewer.
    scan_dropdown, slice_slider, model_dropdown, mode_buttons, opacity_slider, zoom_buttons
        The controls; setting their ``value`` updates the picture and the readout.
    image : ipywidgets.Image
    readout : ipywidgets.HTML
    accept_button, correction_button, note_text
        Review controls (only with ``review``).
    current_readout : SliceReadout
        The readout of what is shown.
    rendered : numpy.ndarray
        The RGB picture shown (the PNG in ``image.value`` decodes to it).

    Raises
    ------
    ParameterError
        No scans, duplicate scan ids, or a bad control value.
    InputFileError, GridMismatchError, ImageContentError, DimensionError
        A file is missing or unreadable, a mask is on another grid than its image (the message
        names the mask file), a mask is not binary, an image is not 3D.

    Examples
    --------
    >>> viewer = SliceViewer([ViewerScan("t2s", "t2s.nii.gz", manual="t2s_gmseg_manual.nii.gz",
    ...                                  masks={"challenge": "t2s_gmseg.nii.gz"})])  # doctest: +SKIP
    >>> viewer  # doctest: +SKIP
    """

    def __init__(
        self,
        scans: Sequence[ViewerScan],
        *,
        review: ReviewLog | None = None,
        model: str | None = None,
        mode: str = "both",
        opacity: float = 0.5,
        zoom: str = "cord",
        slice_index: int | None = None,
        cord_margin_mm: float = 6.0,
        display_px: int = 480,
        scale: int | None = None,
        validate: bool = True,
        cache_size: int = 4,
    ):
        scans = self._check_arguments(scans, mode=mode, zoom=zoom, opacity=opacity, cord_margin_mm=cord_margin_mm,
                                      display_px=display_px, scale=scale, cache_size=cache_size, model=model)
        if validate:
            for scan in scans:
                check_grids(scan)
        self._scans = {s.scan_id: s for s in scans}
        self._cache: OrderedDict[str, LoadedScan] = OrderedDict()
        self._cache_size = cache_size
        self._cord_margin_mm = float(cord_margin_mm)
        self._display_px = display_px
        self._scale = scale
        self.review = review
        if review is not None:
            review.add(list(self._scans))
        self._quiet = False
        self.rendered: np.ndarray | None = None
        self.current_readout: SliceReadout | None = None

        first = self._loaded(scans[0].scan_id)
        n = first.image.shape[2]
        start = _default_slice(first) if slice_index is None else slice_index
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < n:
            raise ParameterError(
                f"slice_index must be an integer in [0, {n - 1}] for scan '{scans[0].scan_id}'; got {slice_index!r}"
            )
        self._build_controls(first, model=model, mode=mode, zoom=zoom, opacity=opacity, start=int(start))
        self._wire()
        self.update()

    @staticmethod
    def _check_arguments(scans, *, mode, zoom, opacity, cord_margin_mm, display_px, scale, cache_size, model):
        """Every argument checked before any file is read (the same checks as :func:`render_slice`)."""
        scans = list(scans)
        if not scans:
            raise ParameterError("SliceViewer needs at least one scan")
        for scan in scans:
            if not isinstance(scan, ViewerScan):
                raise ParameterError(f"scans must be ViewerScan records; got {type(scan).__name__}")
        ids = [s.scan_id for s in scans]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ParameterError(f"duplicate scan id '{dup[0]}' among the viewer's scans")
        check_mode(mode)
        check_opacity(opacity)
        if zoom not in ("cord", "full"):
            raise ParameterError(f"zoom must be 'cord' or 'full'; got {zoom!r}")
        if not (isinstance(cord_margin_mm, (int, float)) and cord_margin_mm >= 0 and math.isfinite(cord_margin_mm)):
            raise ParameterError(f"cord_margin_mm must be a finite number >= 0 (mm); got {cord_margin_mm!r}")
        if isinstance(display_px, bool) or not isinstance(display_px, int) or display_px < 1:
            raise ParameterError(f"display_px must be a positive integer (pixels); got {display_px!r}")
        if scale is not None:
            check_scale(scale)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ParameterError(f"cache_size must be a positive integer; got {cache_size!r}")
        every = list(dict.fromkeys(name for s in scans for name in s.masks))
        if model is not None and model not in every:
            raise ParameterError(f"model {model!r} is not the name of any scan's mask; names: {every}")
        return scans

    def _build_controls(self, first: LoadedScan, *, model, mode, zoom, opacity, start: int) -> None:
        """The widgets and their layout (review controls only with a review log)."""
        import ipywidgets as w

        ids, names, n = list(self._scans), list(first.masks), first.image.shape[2]
        wide = {"description_width": "initial"}
        buttons = {"description_width": "initial", "button_width": "auto"}
        self.scan_dropdown = w.Dropdown(options=ids, value=ids[0], description="scan", style=wide)
        self.model_dropdown = w.Dropdown(options=names, value=model if model in names else (names[0] if names else None),
                                         description="mask", style=wide)
        self.slice_slider = w.IntSlider(value=start, min=0, max=n - 1, step=1, description="slice",
                                        style=wide, layout=w.Layout(width="420px"))
        self.slice_slider.add_class("pedgm-slice-slider")
        self.mode_buttons = w.ToggleButtons(
            options=[("manual", "manual"), ("predicted", "predicted"), ("both", "both"),
                     ("agreement TP/FP/FN", "agreement")], value=mode, description="overlay", style=buttons)
        self.zoom_buttons = w.ToggleButtons(options=[("cord window", "cord"), ("full FOV", "full")], value=zoom,
                                            description="zoom", style=buttons)
        self.opacity_slider = w.FloatSlider(value=float(opacity), min=0.0, max=1.0, step=0.05, description="opacity",
                                            readout_format=".2f", style=wide)
        self.image = w.Image(format="png")
        self.image.add_class("pedgm-image")
        self.readout = w.HTML()
        self.readout.add_class("pedgm-readout-box")
        rows = [
            w.HBox([self.scan_dropdown, self.model_dropdown]),
            self.slice_slider,
            self.mode_buttons,
            w.HBox([self.zoom_buttons, self.opacity_slider]),
            w.HBox([self.image, self.readout], layout=w.Layout(align_items="flex-start")),
        ]
        if self.review is not None:
            self.note_text = w.Text(description="note", placeholder="what needs correcting", style=wide)
            self.accept_button = w.Button(description="accept", button_style="success", icon="check")
            self.correction_button = w.Button(description="needs correction", button_style="warning", icon="pencil")
            rows.append(w.HBox([self.accept_button, self.correction_button, self.note_text]))
        self._preferred = self.model_dropdown.value
        self.widget = w.VBox(rows)
        self.widget.add_class("pedgm-viewer")

    def _wire(self) -> None:
        """Observers: a new scan resets the model and slice; any other control redraws."""
        self.scan_dropdown.observe(self._on_scan, names="value")
        for control in (self.slice_slider, self.model_dropdown, self.mode_buttons, self.zoom_buttons, self.opacity_slider):
            control.observe(self._on_control, names="value")
        if self.review is not None:
            self.accept_button.on_click(lambda _b: self._mark("accepted"))
            self.correction_button.on_click(lambda _b: self._mark("needs correction"))

    # ---------------------------------------------------------------------------- constructors

    @classmethod
    def from_index(
        cls,
        index,
        *,
        masks: Mapping[str, Mapping[str, str | os.PathLike]] | None = None,
        first: Sequence[str] = (),
        **kwargs,
    ) -> SliceViewer:
        """A viewer over a :class:`~pedgm_kit.datasets.DatasetIndex` and named mask files.

        Parameters
        ----------
        index : pedgm_kit.datasets.DatasetIndex
            Its labelled scans are shown with their manual GM mask (and cord mask, for the zoom
            window); its unlabelled images are shown when ``masks`` has a mask for them (drafts).
        masks : mapping, optional
            ``{model_name: {scan_id: mask path}}``; a model need not cover every scan.
        first : sequence of str, default ()
            Scan ids listed first, in this order (e.g. drafts, least certain first).
        **kwargs
            Passed to :class:`SliceViewer` (``review``, ``mode``, ...).

        Returns
        -------
        SliceViewer

        Raises
        ------
        ParameterError
            A scan id in ``masks`` is not in the index, or no scan is left to show.

        Examples
        --------
        >>> viewer = SliceViewer.from_index(index, masks={"baseline": {"sub-9418_run-1_T2starw":
        ...                                 "outputs/run/sub-9418_gmseg.nii.gz"}})  # doctest: +SKIP
        """
        masks = {str(k): dict(v) for k, v in (masks or {}).items()}
        known = {s.scan_id for s in tuple(index.scans) + tuple(index.unlabelled)}
        for name, per_scan in masks.items():
            unknown = sorted(set(per_scan) - known)
            if unknown:
                raise ParameterError(f"masks['{name}'] names scan '{unknown[0]}', which is not in the index of {index.root}")
        with_masks = {sid for per_scan in masks.values() for sid in per_scan}
        chosen = list(index.scans) + [s for s in index.unlabelled if s.scan_id in with_masks]
        rank = {sid: i for i, sid in enumerate(first)}
        chosen.sort(key=lambda s: rank.get(s.scan_id, len(rank)))  # stable: the rest keep index order
        if not chosen:
            raise ParameterError(f"nothing to show: the index of {index.root} has no labelled scan and masks name none")
        scans = [
            ViewerScan(
                s.scan_id, s.image, manual=s.gm_mask, cord_mask=s.cord_mask,
                masks={name: per_scan[s.scan_id] for name, per_scan in masks.items() if s.scan_id in per_scan},
            )
            for s in chosen
        ]
        return cls(scans, **kwargs)

    @classmethod
    def from_arrays(
        cls,
        image,
        *,
        manual=None,
        masks: Mapping[str, Any] | None = None,
        affine=None,
        spacing_mm: Sequence[float] | None = None,
        slice_axis: int = 2,
        scan_id: str = "scan",
        **kwargs,
    ) -> SliceViewer:
        """A viewer over in-memory arrays (augmented samples, test predictions ...).

        Parameters
        ----------
        image : array_like (3D, or 2D for one slice), or mapping of scan id to array
            The image(s). A mapping gives one scan per key (dropdown order = key order).
        manual : array_like or mapping, optional
            Manual GM mask(s), same shape(s) as the image(s).
        masks : mapping, optional
            ``{name: array}``, or ``{name: {scan_id: array}}`` when ``image`` is a mapping.
        affine : array_like (4, 4), optional
            Voxel-to-world affine of the arrays (after moving ``slice_axis`` last). Default: the
            working orientation LAS with ``spacing_mm`` voxels.
        spacing_mm : sequence of 3 floats, optional
            Voxel sizes (mm) of the default affine; default (1, 1, 1). Ignored with ``affine``.
        slice_axis : int, default 2
            Axis of the arrays that indexes slices; 0 for ``(N, rows, cols)`` stacks such as the
            arrays of :mod:`pedgm_kit.data_creation`.
        scan_id : str, default "scan"
            Id of the scan when ``image`` is a single array.
        **kwargs
            Passed to :class:`SliceViewer`.

        Returns
        -------
        SliceViewer

        Raises
        ------
        ParameterError
            Bad ``spacing_mm``, ``affine`` or ``slice_axis``, or mapping keys that do not match.
        GridMismatchError, ImageContentError, DimensionError
            As for files (the message names the array).

        Examples
        --------
        >>> data = np.load("train.npz")  # doctest: +SKIP
        >>> SliceViewer.from_arrays(data["images"], manual=data["masks"], slice_axis=0,
        ...                         spacing_mm=(0.25, 0.25, 1.0))  # doctest: +SKIP
        """
        if affine is None:
            sp = (1.0, 1.0, 1.0) if spacing_mm is None else spacing_mm
            values = np.asarray(sp, dtype=float) if not isinstance(sp, (str, bytes)) else np.array([])
            if values.shape != (3,) or not np.all(np.isfinite(values) & (values > 0)):
                raise ParameterError(f"spacing_mm must be 3 positive finite voxel sizes in mm; got {spacing_mm!r}")
            affine = np.diag([-values[0], values[1], values[2], 1.0])
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise ParameterError(f"affine must be a finite 4x4 matrix; got shape {affine.shape}")
        if isinstance(slice_axis, bool) or slice_axis not in (0, 1, 2):
            raise ParameterError(f"slice_axis must be 0, 1 or 2; got {slice_axis!r}")

        multi = isinstance(image, Mapping)
        images = dict(image) if multi else {scan_id: image}
        manuals = (dict(manual) if isinstance(manual, Mapping) else {}) if multi else {scan_id: manual}
        per_model: dict[str, dict[str, Any]] = {}
        for name, value in (masks or {}).items():
            if multi and not isinstance(value, Mapping):
                raise ParameterError(f"masks['{name}'] must map scan ids to arrays when image is a mapping")
            per_model[name] = dict(value) if multi else {scan_id: value}
        for what, keys in [("manual", manuals)] + [(f"masks['{n}']", v) for n, v in per_model.items()]:
            extra = sorted(set(keys) - set(images))
            if extra:
                raise ParameterError(f"{what} names scan '{extra[0]}', which is not a key of image")

        def nifti(arr, label):
            a = np.asarray(arr)
            if a.ndim == 2:
                a = a[..., None] if slice_axis == 2 else a[None]
            if a.ndim != 3:
                raise DimensionError(f"{label}: expected a 2D or 3D array; got shape {a.shape}")
            if a.dtype == bool:
                a = a.astype(np.uint8)
            return nib.Nifti1Image(np.ascontiguousarray(np.moveaxis(a, slice_axis, 2)), affine)

        scans = []
        for sid, arr in images.items():
            sid = str(sid)
            man = manuals.get(sid)
            scans.append(ViewerScan(
                sid, nifti(arr, f"image array of scan '{sid}'"),
                manual=None if man is None else nifti(man, f"manual array of scan '{sid}'"),
                masks={n: nifti(v[sid], f"'{n}' array of scan '{sid}'") for n, v in per_model.items() if sid in v},
            ))
        return cls(scans, **kwargs)

    # ---------------------------------------------------------------------------- behaviour

    def _loaded(self, scan_id: str) -> LoadedScan:
        if scan_id in self._cache:
            self._cache.move_to_end(scan_id)
            return self._cache[scan_id]
        loaded = load_scan(self._scans[scan_id], cord_margin_mm=self._cord_margin_mm)
        self._cache[scan_id] = loaded
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return loaded

    @property
    def current(self) -> LoadedScan:
        """The loaded current scan (LAS arrays, spacing, orientation letters)."""
        return self._loaded(self.scan_dropdown.value)

    def _on_scan(self, change) -> None:
        loaded = self._loaded(change["new"])
        names = list(loaded.masks)
        self._quiet = True
        try:
            self.model_dropdown.options = names
            self.model_dropdown.value = self._preferred if self._preferred in names else (names[0] if names else None)
            self.slice_slider.max = loaded.image.shape[2] - 1  # clamps the value if needed
            self.slice_slider.value = _default_slice(loaded)
        finally:
            self._quiet = False
        self.update()

    def _on_control(self, change) -> None:
        if self._quiet:
            return
        if change["owner"] is self.model_dropdown and change["new"] is not None:
            self._preferred = change["new"]  # the user's choice, kept across scans that have it
        self.update()

    def _mark(self, status: str) -> None:
        self.review.mark(self.scan_dropdown.value, status, note=self.note_text.value)
        self.update()

    def _scale_for(self, shape, pixel_mm) -> tuple[int, int]:
        if self._scale is not None:
            return check_scale(self._scale)
        dy, dx = pixel_mm
        fy, fx = dy / min(dy, dx), dx / min(dy, dx)
        k = max(1, int(self._display_px // max(shape[0] * fy, shape[1] * fx)))
        return max(1, round(k * fy)), max(1, round(k * fx))

    def render(self) -> np.ndarray:
        """Draw the current state; also updates :attr:`current_readout`.

        Returns
        -------
        numpy.ndarray of uint8, shape (H, W, 3)
        """
        loaded = self.current
        z = int(self.slice_slider.value)
        name = self.model_dropdown.value
        manual = None if loaded.manual is None else display_plane(loaded.manual, z)
        pred = display_plane(loaded.masks[name], z) if name in loaded.masks else None
        mode = self.mode_buttons.value
        if mode == "agreement" and (manual is None or pred is None):
            mode = "both"
        box = loaded.box if self.zoom_buttons.value == "cord" else None
        picture = display_plane(loaded.image, z)
        r0, r1, c0, c1 = box if box is not None else (0, picture.shape[0], 0, picture.shape[1])
        pixel_mm = display_pixel_mm(loaded.spacing_mm)
        self.rendered = render_slice(
            picture, manual=manual, predicted=pred, mode=mode, opacity=float(self.opacity_slider.value),
            zoom_box=box, scale=self._scale_for((r1 - r0, c1 - c0), pixel_mm),
            vmin=loaded.vmin, vmax=loaded.vmax, labels=loaded.labels,
        )
        self.current_readout = slice_readout(
            None if loaded.manual is None else loaded.manual[:, :, z],
            masks={n: m[:, :, z] for n, m in loaded.masks.items()},
            pixel_mm=loaded.spacing_mm[:2], slice_index=z, labels=loaded.labels,
            pixel_area_mm2=loaded.pixel_area_mm2,
        )
        self._shown_mode = mode
        return self.rendered

    def update(self) -> None:
        """Redraw the picture and the readout from the controls' values."""
        self.image.value = to_png(self.render())
        self.readout.value = self._readout_html()

    def _readout_html(self) -> str:
        loaded, r = self.current, self.current_readout
        selected = self.model_dropdown.value
        n = loaded.image.shape[2]
        lab = r.labels
        rows = []
        if "manual" in r.area_mm2:
            rows.append(f"<tr><td>manual</td><td class='pedgm-area-manual'>{_fmt(r.area_mm2['manual'], 2)}</td><td>&ndash;</td></tr>")
        for name in loaded.masks:
            sel = name == selected
            tr = "<tr class='pedgm-selected' style='font-weight:bold'>" if sel else "<tr>"
            rows.append(
                f"{tr}"
                f"<td>{escape(name)}</td><td class='pedgm-area{'-selected' if sel else ''}'>{_fmt(r.area_mm2[name], 2)}</td>"
                f"<td><span class='{'pedgm-dice' if sel else 'pedgm-dice-other'}' data-model='{escape(name, quote=True)}'>"
                f"{_fmt(r.dice[name], 4)}</span></td></tr>"
            )
        if loaded.manual is None:
            note = "no manual mask: Dice not available"
        elif not r.labelled:
            note = "slice not labelled in the manual mask: Dice not defined"
        else:
            note = "labelled slice"
        if selected is None and self.mode_buttons.value in ("predicted", "both", "agreement"):
            note += "; no model mask for this scan"
        if self._shown_mode != self.mode_buttons.value:
            note += f"; shown as '{self._shown_mode}' (agreement needs both masks)"
        legend = {
            "manual": [("manual", "manual")],
            "predicted": [("predicted", "model")],
            "both": [("predicted", "model (fill)"), ("manual", "manual (outline)")],
            "agreement": [("tp", "TP both"), ("fp", "FP model only"), ("fn", "FN manual only")],
        }[self._shown_mode]
        swatches = " ".join(
            f"<span style='display:inline-block;width:0.9em;height:0.9em;background:rgb{COLOURS[key]}'></span> {text}"
            for key, text in legend
        )
        review = ""
        if self.review is not None:
            review = f"<div>review: <b class='pedgm-review-status'>{escape(self.review.status(loaded.scan_id))}</b></div>"
        return (
            "<div class='pedgm-readout' style='font-family:sans-serif;font-size:13px;padding-left:12px'>"
            f"<div><b class='pedgm-scan'>{escape(loaded.scan_id)}</b> &middot; slice "
            f"<span class='pedgm-slice'>{r.slice_index}</span> of 0&ndash;{n - 1}</div>"
            f"<div><i>{escape(note)}</i></div>"
            "<table style='border-collapse:collapse'><tr><th style='text-align:left'>mask</th>"
            "<th>GM area (mm&sup2;)</th><th>Dice vs manual</th></tr>" + "".join(rows) + "</table>"
            f"<div>{swatches}</div>"
            f"<div class='pedgm-orientation'>edges: top {lab['top']}, bottom {lab['bottom']}, "
            f"left {lab['left']}, right {lab['right']} (stored {''.join(loaded.stored_axcodes)}, "
            f"shown as LAS, radiological)</div>"
            f"<div>voxel {' x '.join(f'{v:.3g}' for v in loaded.spacing_mm)} mm</div>"
            f"{review}</div>"
        )

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
