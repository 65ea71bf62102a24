"""The correction step of the annotation loop: edit a draft GM mask in NiiVue, save, accept.

:class:`CorrectionEditor` shows the image in NiiVue (ipyniivue, an anywidget: JupyterLab,
Notebook 7 and Voila) with the draft mask as NiiVue's drawing layer, and ipywidgets controls
around it. Everything that touches files goes through :mod:`pedgm_kit.io`, so the checks and the
one-line messages are the toolkit's own; the voxel order of NiiVue's drawing is converted by
:mod:`pedgm_kit.annotate._niivue_grid`.

How the drawing travels (ipyniivue 2.4, NiiVue 0.65):

- *to the browser*: the draft is written in memory as a ``uint8`` NIfTI with the image's own
  header (NiiVue reorders a drawing file with that file's header, so it must be the image's) and
  sent with ipyniivue's ``load_drawing_from_url`` message, once the background image has loaded
  in the browser (the canvas exists only then);
- *back to Python*: NiiVue never pushes pen strokes. Save sends ``set_drawing_enabled``, which
  makes the browser send the whole drawing bitmap back (``NiiVue.draw_bitmap``); the file is
  written when that arrives, in an observer, because a button callback cannot wait for a reply
  (the kernel handles the reply only after the callback returns).
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._utils import atomic_path
from ..exceptions import (
    GridMismatchError,
    InputFileError,
    OutputExistsError,
    ParameterError,
    PedgmError,
)
from ..io import (
    check_binary,
    check_choice,
    check_output_path,
    check_same_grid,
    load_image,
    open_nifti,
    save_like,
    to_image_like,
)
from ..viewer.review import REVIEW_STATUSES
from ._niivue_grid import (
    bitmap_to_stored,
    frac_to_stored,
    niivue_affine,
    perm_ras,
    stored_to_frac,
)

__all__ = ["CORRECTED_SUFFIX", "ZOOM_LEVELS", "CorrectionEditor"]

CORRECTED_SUFFIX = "_gmseg-corrected"
"""Ending (before ``.nii.gz``) of the default corrected-mask name, ``<scan>_gmseg-corrected.nii.gz``."""

ZOOM_LEVELS: dict[str, float] = {"full view": 1.0, "cord 2x": 2.0, "cord 4x": 4.0, "cord 8x": 8.0}
"""The zoom buttons: label -> NiiVue 2D zoom factor. Above 1 the view is centred on the draft."""

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_CORRECTED_STATUS = "corrected" if "corrected" in REVIEW_STATUSES else "needs review"


def _nifti_suffix(path: Path) -> str | None:
    return next((s for s in _NIFTI_SUFFIXES if path.name.endswith(s)), None)


def _stem(path: Path) -> str:
    suffix = _nifti_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def _as_path(value, what: str) -> Path:
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise ParameterError(f"{what} must be the path of a NIfTI file; got {type(value).__name__}")
    return Path(value)


def _same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


class CorrectionEditor:
    """Correct a draft GM mask by hand in NiiVue; save it on the image's grid; accept it.

    The widget (:attr:`widget`, shown when the editor is a cell's last expression) holds NiiVue's
    axial view of the image with the draft as the drawing layer, and controls: pen (GM = 1) /
    erase (0), filled pen, Undo, Revert to draft, the drawing's opacity, a slice slider (stored
    slice index along the image's axial axis; it moves NiiVue's crosshair, hidden so as not to
    cover the GM, and follows it when NiiVue changes slice), zoom on the cord (centred on the
    draft) or the full view, the uncertainty map as a warm overlay with its opacity (when one is
    given), Save, Accept and a status line.

    *Save* writes the drawing as a binary ``uint8`` NIfTI on the image's own grid (same shape,
    affine, qform/sform and codes as the image file) to :attr:`output`, atomically
    (:func:`pedgm_kit.io.save_like`), and marks the scan ``"corrected"`` in the review log.
    *Accept* saves the drawing the same way, then copies the saved file atomically to
    ``accept_to``, the manual-mask name that dataset discovery picks up (its folder is created if
    needed), and marks the scan ``"accepted"``; it refuses to replace an existing manual mask
    unless ``overwrite_manual``. Without a browser, :meth:`save_array` and :meth:`accept` do the
    same from Python.

    Parameters
    ----------
    image : path-like
        The scan (3D NIfTI). NiiVue shows it as stored; the corrected mask is written on its grid.
    draft : path-like
        The draft GM mask: 0/1 voxels on the image's grid (shape, and affine within
        :data:`pedgm_kit.io.AFFINE_ATOL_MM`).
    output : path-like, optional
        The corrected mask (``.nii.gz`` or ``.nii``); default
        ``<draft folder>/<scan_id>_gmseg-corrected.nii.gz``. Replaced on every save.
    uncertainty : path-like, optional
        An uncertainty map on the image's grid, shown as an overlay (colormap "warm").
    review : pedgm_kit.viewer.ReviewLog, optional
        Where saves ("corrected") and accepts ("accepted") are recorded.
    scan_id : str, optional
        The scan's id in the review log and in the default output name; default the image's
        file name without ``.nii.gz``.
    accept_to : path-like, optional
        The manual-mask path that discovery picks up (e.g.
        ``derivatives/labels/<sub>/anat/<scan>_gmseg-manual.nii.gz``); same ending as ``output``.
        Without it the Accept button is disabled and :meth:`accept` raises.
    overwrite_manual : bool, default False
        Let Accept replace an existing file at ``accept_to``.
    zoom : float, default 4.0
        Starting zoom, one of the values of :data:`ZOOM_LEVELS` (1 = the full view).
    slice_index : int, optional
        Starting slice (stored index along the axial axis); default the slice with the most draft
        voxels.
    uncertainty_opacity : float, default 0.4
        Starting opacity of the uncertainty overlay, 0-1.
    height : int, default 500
        Height of the NiiVue canvas, pixels.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The whole editor.
    nv : ipyniivue.NiiVue
        The viewer.
    tool_buttons, filled_checkbox, undo_button, revert_button, mask_opacity_slider, slice_slider,
    zoom_buttons, save_button, accept_button, status
        The controls; ``status`` (an ``ipywidgets.Label`` with CSS class
        ``pedgm-annotate-status``) says what happened last (``"ready: ..."``, ``"saved #n: ..."``,
        ``"accepted: ..."``, ``"error: ..."``).
    uncertainty_checkbox, opacity_slider
        Overlay controls (only with ``uncertainty``).
    scan_id : str
    review : ReviewLog or None
    n_saved : int
        Saves so far.

    Raises
    ------
    InputFileError
        A file is missing or unreadable, ``output``'s folder does not exist, ``output`` or
        ``accept_to`` is one of the inputs or lacks a NIfTI ending.
    GridMismatchError
        The draft or the uncertainty map is not on the image's grid (the message names the file).
    ImageContentError
        The draft holds values other than 0 and 1, or a file has NaNs, a bad affine ...
    DimensionError
        A file is not 3D.
    ParameterError
        A bad argument (zoom, slice_index, height, opacity, review, scan_id).

    Examples
    --------
    >>> editor = CorrectionEditor("sub-01_T2starw.nii.gz", "drafts/sub-01_T2starw_gmseg.nii.gz",
    ...                           review=ReviewLog("drafts/review.csv"),
    ...                           accept_to="derivatives/labels/sub-01/anat/"
    ...                                     "sub-01_T2starw_gmseg-manual.nii.gz")  # doctest: +SKIP
    >>> editor  # doctest: +SKIP
    >>> editor.save_array(mask)  # without a browser  # doctest: +SKIP
    """

    def __init__(
        self,
        image: str | os.PathLike,
        draft: str | os.PathLike,
        *,
        output: str | os.PathLike | None = None,
        uncertainty: str | os.PathLike | None = None,
        review=None,
        scan_id: str | None = None,
        accept_to: str | os.PathLike | None = None,
        overwrite_manual: bool = False,
        zoom: float = 4.0,
        slice_index: int | None = None,
        uncertainty_opacity: float = 0.4,
        height: int = 500,
    ):
        self._image_path = _as_path(image, "image")
        self._draft_path = _as_path(draft, "draft")
        self._uncertainty_path = None if uncertainty is None else _as_path(uncertainty, "uncertainty")
        self._check_arguments(review=review, scan_id=scan_id, zoom=zoom, height=height,
                              uncertainty_opacity=uncertainty_opacity, overwrite_manual=overwrite_manual)
        self.review = review
        self.scan_id = str(scan_id) if scan_id is not None else _stem(self._image_path)
        self.overwrite_manual = bool(overwrite_manual)
        self.n_saved = 0

        # inputs, all checked before anything is shown
        self._stored = open_nifti(self._image_path, what="image")  # NiiVue reads this header
        self._image = load_image(self._stored, name=str(self._image_path))
        draft_img = load_image(self._draft_path, what="draft mask", allow_constant=True)
        check_same_grid(self._image, draft_img, what="draft mask", image_name=str(self._image_path),
                        other_name=str(self._draft_path))
        self._draft = check_binary(np.asarray(draft_img.dataobj), name=str(self._draft_path),
                                   what="draft mask").astype(np.uint8)
        self._uncertainty_max = None
        if self._uncertainty_path is not None:
            unc = load_image(self._uncertainty_path, what="uncertainty map", allow_constant=True)
            check_same_grid(self._image, unc, what="uncertainty map", image_name=str(self._image_path),
                            other_name=str(self._uncertainty_path))
            self._uncertainty_max = float(np.max(np.asarray(unc.dataobj)))

        # outputs
        inputs = tuple(p for p in (self._image_path, self._draft_path, self._uncertainty_path) if p is not None)
        default = self._draft_path.parent / f"{self.scan_id}{CORRECTED_SUFFIX}.nii.gz"
        self._output = check_output_path(default if output is None else _as_path(output, "output"),
                                         overwrite=True, inputs=inputs, what="Corrected mask")
        self._accept_to = None
        if accept_to is not None:
            self._accept_to = self._check_accept_to(_as_path(accept_to, "accept_to"), inputs)

        # where NiiVue puts things
        self._perm = perm_ras(niivue_affine(self._stored))
        self._slice_axis = abs(self._perm[2]) - 1  # stored axis shown as axial slices
        n_slices = self._image.shape[self._slice_axis]
        if slice_index is None:
            counts = np.moveaxis(self._draft, self._slice_axis, -1).reshape(-1, n_slices).sum(axis=0)
            slice_index = int(np.argmax(counts)) if counts.any() else n_slices // 2
        elif isinstance(slice_index, bool) or not isinstance(slice_index, (int, np.integer)) \
                or not 0 <= slice_index < n_slices:
            raise ParameterError(f"slice_index must be an integer in [0, {n_slices - 1}]; got {slice_index!r}")
        voxels = np.argwhere(self._draft)
        centre = voxels.mean(axis=0) if len(voxels) else (np.asarray(self._image.shape[:3]) - 1) / 2
        self._centre_frac = stored_to_frac(centre, self._stored)

        self._pending: str | None = None  # "save" or "accept", waiting for the browser's bitmap
        self._loading = False  # a draft was sent; its bitmap has not come back yet
        self._quiet = False
        self._drawing: np.ndarray | None = None
        self._drawing_bytes = self._encode_draft()
        self._build(zoom=float(zoom), slice_index=int(slice_index), height=int(height),
                    uncertainty_opacity=float(uncertainty_opacity))

    # ---------------------------------------------------------------------------- checks

    @staticmethod
    def _check_arguments(*, review, scan_id, zoom, height, uncertainty_opacity, overwrite_manual) -> None:
        if review is not None and not callable(getattr(review, "mark", None)):
            raise ParameterError(f"review must be a pedgm_kit.viewer.ReviewLog; got {type(review).__name__}")
        if scan_id is not None and (not isinstance(scan_id, str) or not scan_id.strip()):
            raise ParameterError(f"scan_id must be a non-empty string; got {scan_id!r}")
        check_choice(zoom, tuple(ZOOM_LEVELS.values()), name="zoom")
        if isinstance(height, bool) or not isinstance(height, (int, np.integer)) or height < 100:
            raise ParameterError(f"height must be an integer number of pixels >= 100; got {height!r}")
        if isinstance(uncertainty_opacity, bool) or not isinstance(uncertainty_opacity, (int, float)) \
                or not 0 <= uncertainty_opacity <= 1:
            raise ParameterError(f"uncertainty_opacity must be a number in [0, 1]; got {uncertainty_opacity!r}")
        if not isinstance(overwrite_manual, bool):
            raise ParameterError(f"overwrite_manual must be True or False; got {overwrite_manual!r}")

    def _check_accept_to(self, path: Path, inputs: Sequence[Path]) -> Path:
        """The manual-mask path: a NIfTI name with the output's ending, not an input or the output."""
        ending = _nifti_suffix(path)
        if ending is None or not path.name[: -len(ending)].strip(". "):
            raise InputFileError(f"Manual mask '{path}' must be a file name ending in .nii.gz or .nii")
        if ending != _nifti_suffix(self._output):
            raise InputFileError(
                f"Manual mask '{path}' must end in {_nifti_suffix(self._output)} like the corrected mask "
                f"'{self._output}' (accept copies that file)"
            )
        for other in (*inputs, self._output):
            if _same_path(path, other):
                raise InputFileError(f"Manual mask '{path}' is the file '{other}' that this editor reads or writes")
        if path.is_dir():
            raise InputFileError(f"Manual mask '{path}' is a folder, not a file name")
        return path

    # ---------------------------------------------------------------------------- public API

    @property
    def image_path(self) -> Path:
        """The image file."""
        return self._image_path

    @property
    def draft_path(self) -> Path:
        """The draft mask file."""
        return self._draft_path

    @property
    def output(self) -> Path:
        """Where Save writes the corrected mask."""
        return self._output

    @property
    def accept_to(self) -> Path | None:
        """The manual-mask path Accept copies the corrected mask to (None: no Accept)."""
        return self._accept_to

    @property
    def draft(self) -> np.ndarray:
        """A copy of the draft mask (``uint8`` 0/1 on the image's stored grid)."""
        return self._draft.copy()

    @property
    def drawing(self) -> np.ndarray | None:
        """The drawing as last received from the browser (``uint8``, image's stored grid), or None."""
        return None if self._drawing is None else self._drawing.copy()

    def save_array(self, data) -> Path:
        """Write ``data`` as the corrected mask, as Save does with the drawing.

        Parameters
        ----------
        data : array_like, shape ``image.shape[:3]``
            0/1 (or bool) on the image file's stored voxel grid.

        Returns
        -------
        pathlib.Path
            :attr:`output`, written atomically as ``uint8`` on the image's grid (shape, affine,
            qform/sform and codes of the image file).

        Raises
        ------
        GridMismatchError
            ``data`` does not have the image's shape.
        ImageContentError
            ``data`` holds values other than 0 and 1.
        """
        a = np.asarray(data)
        shape = tuple(self._image.shape[:3])
        if a.shape != shape:
            raise GridMismatchError(
                f"{self._output}: corrected mask array shape {a.shape} differs from image {self._image_path} shape {shape}"
            )
        mask = check_binary(a, name=f"{self._output}", what="corrected mask array")
        return self._write(mask)

    def accept(self) -> Path:
        """Promote the saved corrected mask to the manual-mask name (:attr:`accept_to`).

        The file at :attr:`output` is checked (a 0/1 mask on the image's grid), copied to a
        temporary name beside ``accept_to`` and renamed into place; the folder of ``accept_to`` is
        created if it does not exist. The review log, if any, marks the scan ``"accepted"``.

        Returns
        -------
        pathlib.Path
            ``accept_to``.

        Raises
        ------
        ParameterError
            The editor was given no ``accept_to``.
        InputFileError
            Nothing was saved yet (no file at :attr:`output`).
        OutputExistsError
            A file exists at ``accept_to`` and ``overwrite_manual`` is False.
        GridMismatchError, ImageContentError
            The saved file is no longer a 0/1 mask on the image's grid.
        """
        target = self._accept_to
        if target is None:
            raise ParameterError("this CorrectionEditor has no accept_to path (the manual-mask name); nothing to accept to")
        if not self._output.is_file():
            raise InputFileError(f"No corrected mask to accept: '{self._output}' does not exist; save first")
        self._check_manual_free()
        saved = load_image(self._output, what="corrected mask", allow_constant=True)
        check_same_grid(self._image, saved, what="corrected mask", image_name=str(self._image_path),
                        other_name=str(self._output))
        check_binary(np.asarray(saved.dataobj), name=str(self._output), what="corrected mask")
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(target):  # replace the link itself, never the file it points to
            os.unlink(target)
        with atomic_path(target) as tmp:
            shutil.copyfile(self._output, tmp)
        if self.review is not None:
            self.review.mark(self.scan_id, "accepted", note=f"accepted: {target}")
        return target

    def close(self) -> None:
        """Close the widgets (frees the browser side)."""
        self.widget.close()
        self.nv.close()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ---------------------------------------------------------------------------- files

    def _check_manual_free(self) -> None:
        if os.path.lexists(self._accept_to) and not self.overwrite_manual:
            raise OutputExistsError(
                f"Manual mask '{self._accept_to}' exists; pass overwrite_manual=True to CorrectionEditor to replace it"
            )

    def _write(self, mask: np.ndarray) -> Path:
        path = save_like(np.asarray(mask, dtype=np.uint8), self._image, self._output, overwrite=True)
        self.n_saved += 1
        if self.review is not None:
            self.review.mark(self.scan_id, _CORRECTED_STATUS, note=f"corrected: {path}")
        return path

    def _encode_draft(self) -> bytes:
        """The draft as gzipped NIfTI bytes with the image's header (NiiVue reorders by that header)."""
        img = to_image_like(self._draft, self._image, dtype=np.uint8)
        return gzip.compress(img.to_bytes(), compresslevel=1)

    # ---------------------------------------------------------------------------- widgets

    def _build(self, *, zoom: float, slice_index: int, height: int, uncertainty_opacity: float) -> None:
        import ipywidgets as w
        from ipyniivue import NiiVue, SliceType

        # no crosshair lines: at a cord zoom a 1-voxel-wide line would cover the GM being edited
        # (the slice slider says where the view is)
        self.nv = NiiVue(height=height, slice_type=SliceType.AXIAL, drawing_enabled=True, pen_value=1,
                         is_filled_pen=False, is_colorbar=False, show_3d_crosshair=False, crosshair_width=0.0)
        volumes = [{"path": str(self._image_path), "colormap": "gray"}]
        if self._uncertainty_path is not None:
            top = self._uncertainty_max if self._uncertainty_max and self._uncertainty_max > 0 else 1.0
            volumes.append({"path": str(self._uncertainty_path), "colormap": "warm",
                            "opacity": uncertainty_opacity, "cal_min": 0.05 * top, "cal_max": top})
        self.nv.load_volumes(volumes)
        self._image_volume = self.nv.volumes[0]
        self._uncertainty_volume = self.nv.volumes[1] if self._uncertainty_path is not None else None

        wide = {"description_width": "initial"}
        auto = {"description_width": "initial", "button_width": "auto"}
        self.tool_buttons = w.ToggleButtons(options=[("pen (GM = 1)", 1), ("erase (0)", 0)], value=1,
                                            description="tool", style=auto, layout=w.Layout(width="auto"))
        self.filled_checkbox = w.Checkbox(value=False, description="filled pen", indent=False,
                                          layout=w.Layout(width="auto"))
        self.undo_button = w.Button(description="Undo", icon="undo", layout=w.Layout(width="auto"))
        self.revert_button = w.Button(description="Revert to draft", icon="refresh", layout=w.Layout(width="auto"))
        n_slices = self._image.shape[self._slice_axis]
        self.slice_slider = w.IntSlider(value=slice_index, min=0, max=n_slices - 1, step=1, description="slice",
                                        style=wide, layout=w.Layout(width="360px"))
        self.slice_slider.add_class("pedgm-annotate-slice")
        self.mask_opacity_slider = w.FloatSlider(value=0.6, min=0.1, max=1.0, step=0.05, description="mask opacity",
                                                 readout_format=".2f", style=wide)
        self.nv.draw_opacity = self.mask_opacity_slider.value
        self.zoom_buttons = w.ToggleButtons(options=list(ZOOM_LEVELS.items()), value=zoom, description="zoom",
                                            style=auto, layout=w.Layout(width="auto"))
        self.save_button = w.Button(description="Save", button_style="success", icon="save",
                                    tooltip=f"write {self._output.name}")
        self.accept_button = w.Button(description="Accept", button_style="primary", icon="check",
                                      disabled=self._accept_to is None,
                                      tooltip=(f"save, then copy to {self._accept_to}" if self._accept_to
                                               else "no manual-mask path (accept_to) was given"))
        self.status = w.Label(value="loading the image...")
        self.status.add_class("pedgm-annotate-status")
        rows = [
            w.HBox([self.tool_buttons, self.filled_checkbox, self.undo_button, self.revert_button,
                    self.mask_opacity_slider]),
            w.HBox([self.slice_slider, self.zoom_buttons]),
        ]
        if self._uncertainty_volume is not None:
            self.uncertainty_checkbox = w.Checkbox(value=True, description="uncertainty overlay", indent=False,
                                                   layout=w.Layout(width="auto"))
            self.opacity_slider = w.FloatSlider(value=uncertainty_opacity, min=0.0, max=1.0, step=0.05,
                                                description="opacity", readout_format=".2f", style=wide)
            rows.append(w.HBox([self.uncertainty_checkbox, self.opacity_slider]))
        rows += [self.nv, w.HBox([self.save_button, self.accept_button, self.status])]
        self.widget = w.VBox(rows)
        self.widget.add_class("pedgm-annotate")
        self._wire()

    def _wire(self) -> None:
        self.nv.on_image_loaded(self._on_image_loaded)
        self.nv.on_location_change(self._on_location)
        self.nv.observe(self._on_bitmap, names="draw_bitmap")
        self.tool_buttons.observe(self._on_pen, names="value")
        self.filled_checkbox.observe(self._on_pen, names="value")
        self.undo_button.on_click(lambda _b: self.nv.draw_undo())
        self.revert_button.on_click(lambda _b: self._send_draft("reverting to the draft..."))
        self.slice_slider.observe(self._on_slice, names="value")
        self.mask_opacity_slider.observe(lambda change: setattr(self.nv, "draw_opacity", float(change["new"])),
                                         names="value")
        self.zoom_buttons.observe(self._on_zoom, names="value")
        self.save_button.on_click(lambda _b: self._request("save"))
        self.accept_button.on_click(lambda _b: self._request("accept"))
        if self._uncertainty_volume is not None:
            self.uncertainty_checkbox.observe(self._on_overlay, names="value")
            self.opacity_slider.observe(self._on_overlay, names="value")

    # ---------------------------------------------------------------------------- behaviour

    def _on_image_loaded(self, volume) -> None:
        """The background image is in the browser (so is the canvas): send the draft, set the view."""
        if getattr(volume, "id", None) != self._image_volume.id:
            return
        self._send_draft("loading the draft...")
        self._on_slice({"new": self.slice_slider.value})
        self._apply_zoom(self.zoom_buttons.value)

    def _send_draft(self, message: str) -> None:
        self._loading = True
        self.status.value = message
        self.nv.send({"type": "load_drawing_from_url", "data": [f"local>{self.scan_id}_draft.nii.gz", False]},
                     buffers=[self._drawing_bytes])

    def _request(self, action: str) -> None:
        """Ask the browser for the drawing; :meth:`_on_bitmap` saves (and accepts) when it arrives."""
        if self._drawing is None:
            self.status.value = "the draft is not loaded in the viewer yet; wait for 'ready'"
            return
        if action == "accept":
            try:
                self._check_manual_free()
            except OutputExistsError as err:
                self.status.value = f"not accepted: {err}"
                return
        self._pending = action
        self.status.value = "saving..."
        # the Python method sends nothing when the value is unchanged; the raw message always
        # makes the browser send the whole drawing bitmap back
        self.nv.send({"type": "set_drawing_enabled", "data": [True]})

    def _on_bitmap(self, change) -> None:
        bitmap = change["new"]
        if bitmap is None:
            return
        action, self._pending = self._pending, None
        try:
            data = bitmap_to_stored(bitmap, self._stored)
        except PedgmError as err:
            self.status.value = f"error: {err}"
            return
        self._drawing = data
        n_gm = int(np.count_nonzero(data))
        if action is None:
            if self._loading:
                self._loading = False
                self.status.value = f"ready: draft {self._draft_path.name} has {n_gm} GM voxels"
            else:
                self.status.value = f"drawing: {n_gm} GM voxels (not saved)"
            return
        try:
            path = self._write(check_binary(data, name="the drawing", what="drawing",
                                            hint="use the pen (1) and erase (0) tools only"))
            message = f"saved #{self.n_saved}: {n_gm} GM voxels in {path.name}"
            if action == "accept":
                message = f"accepted: {self.accept().name} ({message})"
        except (PedgmError, OSError) as err:
            message = f"error: {err}"
        self.status.value = message

    def _on_pen(self, _change=None) -> None:
        value, filled = int(self.tool_buttons.value), bool(self.filled_checkbox.value)
        self.nv.set_pen_value(value, filled)
        tool = "pen (GM = 1)" if value else "erase (0)"
        self.status.value = f"tool: {tool}{', filled' if filled else ''}"

    def _on_zoom(self, change) -> None:
        self._apply_zoom(change["new"])
        label = next(k for k, v in ZOOM_LEVELS.items() if v == change["new"])
        self.status.value = f"zoom: {label}"

    def _slice_frac(self, k: int) -> float:
        n = self._image.shape[self._slice_axis]
        v = k if self._perm[2] > 0 else n - 1 - k
        return (v + 0.5) / n

    def _on_slice(self, change) -> None:
        if self._quiet:
            return
        frac = [float(v) for v in self.nv.scene.crosshair_pos]
        frac[2] = self._slice_frac(int(change["new"]))
        self.nv.scene.crosshair_pos = frac

    def _on_location(self, location) -> None:
        """NiiVue moved the crosshair (click, scroll): follow it with the slice slider."""
        frac = location.get("frac") if isinstance(location, dict) else None
        if isinstance(frac, dict):
            frac = [frac.get(str(i)) for i in range(3)]
        if not frac or len(frac) < 3 or any(v is None or not math.isfinite(float(v)) for v in frac[:3]):
            return
        k = frac_to_stored(frac[:3], self._stored)[self._slice_axis]
        if k != self.slice_slider.value:
            self._quiet = True
            try:
                self.slice_slider.value = k
            finally:
                self._quiet = False

    def _apply_zoom(self, factor: float) -> None:
        """NiiVue's 2D pan/zoom: 1 is the full view; above 1, centred on the draft's centroid.

        NiiVue shows the ortho-mm box ``[(lo - pan) / zoom, (hi - pan) / zoom]``, whose centre is
        ``(mid - pan) / zoom``; ``pan = mid - zoom * c`` puts the point ``c`` in the middle.
        """
        factor = float(factor)
        if factor == 1.0:
            self.nv.scene.pan2d_xyzmm = [0.0, 0.0, 0.0, 1.0]
            return
        volume = self._image_volume
        if volume.frac2mm_ortho is None:  # not loaded in the browser yet: applied on load
            return
        frac = list(self._centre_frac)
        frac[2] = self._slice_frac(int(self.slice_slider.value))
        centre = volume.convert_frac2mm(frac)[:3]
        mid = volume.convert_frac2mm([0.5, 0.5, 0.5])[:3]
        self.nv.scene.pan2d_xyzmm = [float(m - factor * c) for m, c in zip(mid, centre)] + [factor]

    def _on_overlay(self, _change=None) -> None:
        shown = self.uncertainty_checkbox.value
        self._uncertainty_volume.opacity = float(self.opacity_slider.value) if shown else 0.0
